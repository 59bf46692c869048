/* rewrite.c - hop-by-hop filtering, forwarding headers and the edge same-origin check. */
#include "rewrite.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int name_is(const char *name, size_t len, const char *want)
{
    return strlen(want) == len && strncasecmp(name, want, len) == 0;
}

/* Headers that describe one connection, never passed on (RFC 9110, 7.6.1). */
static int hop_by_hop(const char *name, size_t len)
{
    static const char *const names[] = {"connection",
                                        "keep-alive",
                                        "proxy-connection",
                                        "proxy-authenticate",
                                        "proxy-authorization",
                                        "te",
                                        "trailer",
                                        "transfer-encoding",
                                        "upgrade",
                                        "content-length"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (name_is(name, len, names[i]))
            return 1;
    }
    return 0;
}

/* Returns 1 when a Connection header of h lists this header name as a token. */
static int named_by_connection(const struct http_head *h, const char *name, size_t len)
{
    for (unsigned i = 0; i < h->count; i++) {
        const struct http_header *hd = &h->headers[i];
        if (!name_is(h->text.data + hd->name, hd->name_len, "connection"))
            continue;
        const char *v = h->text.data + hd->value, *end = v + hd->value_len, *tok;
        size_t tok_len;
        for (tok = http_list_next(&v, end, &tok_len); tok; tok = http_list_next(&v, end, &tok_len)) {
            if (tok_len == len && strncasecmp(tok, name, len) == 0)
                return 1;
        }
    }
    return 0;
}

/* Splits "scheme://host[:port]..." into scheme (1 for https), host and port, defaulting the port by scheme.
 */
static int parse_origin(const char *s, size_t len, int *https, char *host, size_t hostlen, unsigned *port)
{
    unsigned default_port;
    size_t skip;
    if (len >= 7 && strncasecmp(s, "http://", 7) == 0) {
        default_port = 80;
        skip = 7;
        *https = 0;
    } else if (len >= 8 && strncasecmp(s, "https://", 8) == 0) {
        default_port = 443;
        skip = 8;
        *https = 1;
    } else {
        return -1;
    }
    s += skip;
    len -= skip;
    size_t auth = 0;
    while (auth < len && s[auth] != '/' && s[auth] != '?' && s[auth] != '#')
        auth++;
    char tmp[300];
    if (auth == 0 || auth >= sizeof tmp)
        return -1;
    memcpy(tmp, s, auth);
    tmp[auth] = '\0';
    char *colon = strrchr(tmp, ':');
    char *bracket = strrchr(tmp, ']');
    *port = default_port;
    if (colon && (!bracket || colon > bracket)) {
        char *end;
        unsigned long p = strtoul(colon + 1, &end, 10);
        if (*end != '\0' || colon[1] == '\0' || p == 0 || p > 65535)
            return -1;
        *port = (unsigned)p;
        *colon = '\0';
    }
    if (strlen(tmp) >= hostlen || tmp[0] == '\0')
        return -1;
    snprintf(host, hostlen, "%s", tmp);
    return 0;
}

int rewrite_check_origin(const struct http_head *req, int https, char *why, size_t whylen)
{
    size_t len;
    const char *which = "Origin";
    const char *v = http_head_find(req, "origin", &len);
    if (!v) {
        which = "Referer";
        v = http_head_find(req, "referer", &len);
    }
    if (!v)
        return 0;

    char want_host[300], got_host[300];
    unsigned want_port, got_port;
    size_t host_len;
    const char *host = http_head_find(req, "host", &host_len);
    char hostbuf[320];
    if (!host || host_len == 0 || host_len + 8 > sizeof hostbuf) {
        snprintf(why, whylen, "%s given without a usable Host header", which);
        return -1;
    }
    /* The origin the client reached: our scheme, and Host (without a port, the scheme's default). */
    snprintf(hostbuf, sizeof hostbuf, "%s://%.*s", https ? "https" : "http", (int)host_len, host);
    int want_https, got_https;
    if (parse_origin(hostbuf, strlen(hostbuf), &want_https, want_host, sizeof want_host, &want_port) != 0) {
        snprintf(why, whylen, "invalid Host header");
        return -1;
    }
    if (parse_origin(v, len, &got_https, got_host, sizeof got_host, &got_port) != 0 ||
        got_https != want_https || got_port != want_port || strcasecmp(got_host, want_host) != 0) {
        snprintf(why, whylen, "cross-origin request refused: %s \"%.*s\" does not match Host \"%.*s\"", which,
                 (int)(len > 100 ? 100 : len), v, (int)host_len, host);
        return -1;
    }
    return 0;
}

/* Appends a Referer pointing at the same path on qBittorrent's own origin. */
static int put_referer(struct buf *out, const struct url *up, const char *v, size_t len)
{
    const char *p = memchr(v, ':', len);
    const char *path = NULL;
    if (p && (size_t)(p - v) + 3 <= len && p[1] == '/' && p[2] == '/') {
        const char *auth = p + 3, *end = v + len;
        path = auth;
        while (path < end && *path != '/' && *path != '?' && *path != '#')
            path++;
        if (path == end)
            path = NULL;
    }
    if (!path)
        return buf_printf(out, "Referer: %s/\r\n", up->origin);
    return buf_printf(out, "Referer: %s%.*s\r\n", up->origin, (int)(v + len - path), path);
}

int rewrite_request_head(struct buf *out, const struct http_head *req, const struct rewrite_request *r)
{
    size_t url_len;
    const char *url = http_head_url(req, &url_len);
    int rc = buf_printf(out, "%s %s%.*s HTTP/1.1\r\nHost: %s\r\n", r->method, r->upstream->prefix,
                        (int)url_len, url, r->upstream->authority);
    for (unsigned i = 0; rc == 0 && i < req->count; i++) {
        const struct http_header *hd = &req->headers[i];
        const char *name = http_header_name(req, i), *value = http_header_value(req, i);
        size_t nlen = hd->name_len;
        if (name_is(name, nlen, "upgrade") && r->upgrade) {
            rc = buf_printf(out, "Upgrade: %.*s\r\n", (int)hd->value_len, value);
            continue;
        }
        /* Names with '_' are dropped, as nginx does: some servers read Transfer_Encoding as
         * Transfer-Encoding. */
        if (memchr(name, '_', nlen) || hop_by_hop(name, nlen) || named_by_connection(req, name, nlen) ||
            name_is(name, nlen, "host") || name_is(name, nlen, "expect") ||
            name_is(name, nlen, "forwarded") || name_is(name, nlen, "x-real-ip") ||
            (nlen >= 12 && strncasecmp(name, "x-forwarded-", 12) == 0))
            continue;
        if (name_is(name, nlen, "origin"))
            rc = buf_printf(out, "Origin: %s\r\n", r->upstream->origin);
        else if (name_is(name, nlen, "referer"))
            rc = put_referer(out, r->upstream, value, hd->value_len);
        else
            rc = buf_printf(out, "%.*s: %.*s\r\n", (int)nlen, name, (int)hd->value_len, value);
    }
    if (rc == 0)
        rc = buf_printf(out, "X-Forwarded-For: %s\r\nX-Forwarded-Proto: %s\r\nConnection: %s\r\n",
                        r->client_addr, r->https ? "https" : "http", r->upgrade ? "Upgrade" : "keep-alive");
    /* Content-Length comes last, so a collected body's length can be appended to a finished head. */
    if (rc == 0 && r->has_body)
        rc = buf_printf(out, "Content-Length: %llu\r\n", (unsigned long long)r->content_length);
    if (rc == 0)
        rc = buf_puts(out, "\r\n");
    return rc;
}

/*
 * Appends a Set-Cookie whose Secure attribute says how the client reached us:
 * set over TLS (whatever qBittorrent's version knows of X-Forwarded-Proto),
 * removed over plain HTTP, where a browser would drop a Secure cookie from a
 * LAN address and the login would never stick (nginx's proxy_cookie_flags).
 */
static int put_set_cookie(struct buf *out, const char *name, size_t nlen, const char *v, size_t len,
                          int https)
{
    int rc = buf_printf(out, "%.*s: ", (int)nlen, name);
    const char *end = v + len, *p = v;
    bool first = true, secure = false;
    while (rc == 0 && p < end) {
        const char *semi = memchr(p, ';', (size_t)(end - p));
        const char *stop = semi ? semi : end;
        const char *a = p, *b = stop;
        while (a < b && (*a == ' ' || *a == '\t'))
            a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
            b--;
        bool is_secure = !first && b - a == 6 && strncasecmp(a, "secure", 6) == 0;
        if (is_secure)
            secure = true;
        if ((first || a < b) && (!is_secure || https))
            rc = buf_printf(out, "%s%.*s", first ? "" : "; ", (int)(b - a), a);
        first = false;
        p = semi ? semi + 1 : end;
    }
    if (rc == 0 && https && !secure)
        rc = buf_puts(out, "; Secure");
    return rc == 0 ? buf_puts(out, "\r\n") : rc;
}

int rewrite_response_head(struct buf *out, const struct http_head *resp, const struct rewrite_response *r)
{
    size_t reason_len;
    const char *reason = http_head_url(resp, &reason_len);
    int rc = reason_len ? buf_printf(out, "HTTP/1.1 %d %.*s\r\n", r->status, (int)reason_len, reason)
                        : buf_printf(out, "HTTP/1.1 %d %s\r\n", r->status, http_status_reason(r->status));
    for (unsigned i = 0; rc == 0 && i < resp->count; i++) {
        const struct http_header *hd = &resp->headers[i];
        const char *name = http_header_name(resp, i), *value = http_header_value(resp, i);
        size_t nlen = hd->name_len;
        int keep = 0;
        if (name_is(name, nlen, "upgrade"))
            keep = r->upgrade;
        else if (name_is(name, nlen, "content-length"))
            keep = r->framing == FRAMING_NONE;
        else
            keep = !hop_by_hop(name, nlen) && !named_by_connection(resp, name, nlen);
        if (keep && name_is(name, nlen, "set-cookie"))
            rc = put_set_cookie(out, name, nlen, value, hd->value_len, r->https);
        else if (keep)
            rc = buf_printf(out, "%.*s: %.*s\r\n", (int)nlen, name, (int)hd->value_len, value);
    }
    if (rc != 0)
        return rc;
    if (r->framing == FRAMING_LENGTH)
        rc = buf_printf(out, "Content-Length: %llu\r\n", (unsigned long long)r->content_length);
    else if (r->framing == FRAMING_CHUNKED)
        rc = buf_puts(out, "Transfer-Encoding: chunked\r\n");
    if (rc == 0)
        rc = buf_printf(out, "Connection: %s\r\n\r\n",
                        r->upgrade                                       ? "Upgrade"
                        : (r->keep_alive && r->framing != FRAMING_CLOSE) ? "keep-alive"
                                                                         : "close");
    return rc;
}
