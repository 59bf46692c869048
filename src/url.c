/* url.c - parsing of http://host[:port][/prefix], strict enough to reject typos early. */
#include "url.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "parse.h"

/* Every failure fills err and returns -1. */
#define FAIL(...)                                                                                            \
    do {                                                                                                     \
        snprintf(err, errlen, __VA_ARGS__);                                                                  \
        return -1;                                                                                           \
    } while (0)

/* A registered name: letters, digits, '-', '.', '_' (what DNS and /etc/hosts take). */
static int host_name_valid(const char *s, size_t len)
{
    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!isalnum(c) && c != '-' && c != '.' && c != '_')
            return 0;
    }
    return 1;
}

int url_parse(const char *text, struct url *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    const char *p;
    if (strncasecmp(text, "http://", 7) == 0) {
        p = text + 7;
        out->port = 80;
    } else if (strncasecmp(text, "https://", 8) == 0) {
        p = text + 8;
        out->https = 1;
        out->port = 443;
    } else {
        FAIL("expected http://host[:port][/prefix], got \"%s\"", text);
    }

    /* The authority ends at the first '/', or at the end. */
    const char *slash = strchr(p, '/');
    const char *auth_end = slash ? slash : p + strlen(p);
    if (memchr(p, '@', (size_t)(auth_end - p)))
        FAIL("user:password@ is not supported in \"%s\"; use QBIT_USER and QBIT_PASS", text);

    const char *host_start = p, *host_end, *port_start = NULL;
    if (*p == '[') {
        const char *close = memchr(p, ']', (size_t)(auth_end - p));
        if (!close)
            FAIL("missing ']' after the IPv6 address in \"%s\"", text);
        host_start = p + 1;
        host_end = close;
        if (close + 1 < auth_end) {
            if (close[1] != ':')
                FAIL("unexpected text after ']' in \"%s\"", text);
            port_start = close + 2;
        }
        size_t len = (size_t)(host_end - host_start);
        char tmp[INET6_ADDRSTRLEN];
        struct in6_addr a6;
        if (len == 0 || len >= sizeof tmp)
            FAIL("invalid IPv6 address in \"%s\"", text);
        memcpy(tmp, host_start, len);
        tmp[len] = '\0';
        if (strchr(tmp, '%'))
            FAIL("IPv6 zone ids are not supported in \"%s\"", text);
        if (inet_pton(AF_INET6, tmp, &a6) != 1)
            FAIL("invalid IPv6 address in \"%s\"", text);
        out->host_is_ipv6 = 1;
    } else {
        const char *colon = memchr(p, ':', (size_t)(auth_end - p));
        host_end = colon ? colon : auth_end;
        if (colon) {
            if (memchr(colon + 1, ':', (size_t)(auth_end - colon - 1)))
                FAIL("an IPv6 address must be in brackets, as in http://[::1]:8080, in \"%s\"", text);
            port_start = colon + 1;
        }
        if (!host_name_valid(host_start, (size_t)(host_end - host_start)))
            FAIL("missing or invalid host in \"%s\"", text);
    }
    size_t host_len = (size_t)(host_end - host_start);
    if (host_len >= sizeof out->host)
        FAIL("host name too long in \"%s\"", text);
    memcpy(out->host, host_start, host_len);
    out->host[host_len] = '\0';

    if (port_start) {
        char portbuf[8];
        size_t plen = (size_t)(auth_end - port_start);
        unsigned long port;
        if (plen == 0 || plen >= sizeof portbuf)
            FAIL("invalid port in \"%s\" (expected 1..65535)", text);
        memcpy(portbuf, port_start, plen);
        portbuf[plen] = '\0';
        if (parse_ulong(portbuf, 1, 65535, &port) != 0)
            FAIL("invalid port in \"%s\" (expected 1..65535)", text);
        out->port = (uint16_t)port;
        out->port_explicit = 1;
    }

    if (slash) {
        if (strpbrk(slash, "?#"))
            FAIL("a query or fragment is not allowed in \"%s\"", text);
        for (const char *c = slash; *c; c++) {
            if ((unsigned char)*c <= ' ' || (unsigned char)*c >= 0x7f)
                FAIL("invalid character in the path of \"%s\"", text);
        }
        size_t plen = strlen(slash);
        while (plen > 0 && slash[plen - 1] == '/')
            plen--;
        if (plen >= sizeof out->prefix)
            FAIL("path prefix too long in \"%s\"", text);
        memcpy(out->prefix, slash, plen);
        out->prefix[plen] = '\0';
    }

    const char *lb = out->host_is_ipv6 ? "[" : "", *rb = out->host_is_ipv6 ? "]" : "";
    if (out->port_explicit)
        snprintf(out->authority, sizeof out->authority, "%s%s%s:%u", lb, out->host, rb, out->port);
    else
        snprintf(out->authority, sizeof out->authority, "%s%s%s", lb, out->host, rb);
    snprintf(out->origin, sizeof out->origin, "%s://%s", out->https ? "https" : "http", out->authority);
    return 0;
}
