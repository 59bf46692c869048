/*
 * fuzz_request_head.c - what a client sends, through the path a request head
 * takes in the daemon: server.c's raw-byte head scan (bare LF, size cap),
 * llhttp (HTTP_REQUEST), the capture into struct http_head with server.c's
 * callback rules (folding and CR/LF in values refused, the header cap), its
 * head checks (version, empty names, Host, Transfer-Encoding, Content-Length
 * cap) and routing, the same-origin check, chunk_check beside llhttp for
 * chunked bodies, and rewrite_request_head as proxy.c calls it (a chunked body
 * is collected and its head gets Content-Length afterwards). Pipelined
 * requests are handled in turn.
 *
 * Each rewritten head must be, by an RFC 9112 reading independent of llhttp,
 * a request line and "token: value" lines without control bytes, and must
 * parse again in a fresh llhttp as exactly one request head: HTTP/1.1, only
 * for an HTTP/1.0 or 1.1 request, with the client's method, the prefix plus
 * the client's target, one Host equal to the upstream authority, no
 * Transfer-Encoding, one Connection that is keep-alive (or Upgrade), no
 * Keep-Alive, Proxy-Connection, TE, Trailer or Expect, none of Forwarded,
 * X-Forwarded-Host or X-Real-IP, one X-Forwarded-For (the client address) and
 * one X-Forwarded-Proto, Content-Length only for a body and then equal to it,
 * Origin and Referer only on the upstream's origin, and every other header of
 * the client's passed through unchanged.
 *
 * The head checks are src/request.c's, the very code the server runs. The
 * feeding loop, routing and parser callbacks are a copy of server.c's static
 * functions (conn_feed, route_request, the callbacks); keep them in step.
 *
 * The capture is also checked against an independent one, and the whole input
 * is run twice, in one piece and in pieces whose sizes come from the input:
 * what the upstream would receive must not depend on how reads were split.
 * FUZZ_DEBUG=1 in the environment prints the callbacks, for triage.
 */
#include <errno.h>
#include <llhttp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "fuzz.h"
#include "http.h"
#include "request.h"
#include "rewrite.h"
#include "url.h"

#define HEAD_LIMIT 16384         /* MAX_HEADER_SIZE's default */
#define BODY_LIMIT (1024 * 1024) /* collected chunked bodies, kept small here */
#define MAX_MESSAGES 16

static const char *const upstreams[] = {"http://localhost:8080", "http://[::1]:8080/qbt",
                                        "http://qbittorrent", "http://127.0.0.1:8080/a/b"};
static const char *const client_addrs[] = {"192.0.2.7", "2001:db8::7"};
static struct url parsed_upstreams[sizeof upstreams / sizeof upstreams[0]];

/* The part of server.c's client_conn (and proxy.c's exchange) that the parser callbacks use. */
struct client {
    llhttp_t parser;
    struct http_head head;
    struct fuzz_msg raw;  /* the independent capture */
    unsigned head_fields; /* how many of raw's fields are the head's (the rest are trailers) */
    const struct url *up;
    const char *client_addr;
    int head_error;
    bool value_started, value_piece_at_end;
    const char *feed_end;
    struct head_scan scan; /* raw-byte checks of the current head */
    bool checking_chunks;
    struct chunk_check chunks;
    bool stop; /* the connection would be closed */
    bool collect;
    struct buf pending; /* a collected request's head, waiting for its body's length */
    uint64_t body_len;
    bool body_too_large;
    unsigned messages;
    struct buf transcript; /* what the upstream would get, and why requests were refused */
};

/* ---- checking a rewritten head ---- */

static struct fuzz_msg reparsed;

static bool dropped_name(const char *n, size_t len)
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
                                        "content-length",
                                        "host",
                                        "expect",
                                        "forwarded",
                                        "x-real-ip"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (fuzz_name_is(n, len, names[i]))
            return true;
    }
    return memchr(n, '_', len) != NULL || (len >= 12 && strncasecmp(n, "x-forwarded-", 12) == 0);
}

/* Returns true when a Connection header of m names this header (tokens split on comma, space and tab). */
static bool named_by_connection(const struct fuzz_msg *m, const char *name, size_t len)
{
    for (unsigned i = 0; i < m->count; i++) {
        if (!fuzz_name_is(fuzz_field_name(m, i), m->fields[i].name_len, "connection"))
            continue;
        const char *v = fuzz_field_value(m, i), *end = v + m->fields[i].value_len;
        while (v < end) {
            while (v < end && (*v == ',' || *v == ' ' || *v == '\t'))
                v++;
            const char *tok = v;
            while (v < end && *v != ',' && *v != ' ' && *v != '\t')
                v++;
            if (v > tok && (size_t)(v - tok) == len && strncasecmp(tok, name, len) == 0)
                return true;
        }
    }
    return false;
}

static bool value_is(const struct fuzz_msg *m, unsigned i, const char *want)
{
    return m->fields[i].value_len == strlen(want) && memcmp(fuzz_field_value(m, i), want, strlen(want)) == 0;
}

static void fail_head(const char *what, const char *out, size_t len)
{
    fuzz_dump("rewritten head", out, len);
    FUZZ_CHECK(0, "%s", what);
}

#define HEAD_CHECK(cond, what)                                                                               \
    do {                                                                                                     \
        if (!(cond))                                                                                         \
            fail_head(what ": " #cond, out, len);                                                            \
    } while (0)

static void verify(struct client *c, const char *out, size_t len, bool has_length, uint64_t length)
{
    const struct fuzz_msg *in = &c->raw;
    /* Only what qBittorrent's HTTP/1.1 server can take is passed on as HTTP/1.1. */
    FUZZ_CHECK(c->parser.http_major == 1 && c->parser.http_minor <= 1,
               "an HTTP/%d.%d request (%s) was passed on as HTTP/1.1", c->parser.http_major,
               c->parser.http_minor, llhttp_method_name(llhttp_get_method(&c->parser)));
    llhttp_settings_t s;
    fuzz_reparse_settings(&s, 0);
    llhttp_t p;
    llhttp_init(&p, HTTP_REQUEST, &s);
    struct fuzz_msg *m = &reparsed;
    free(m->text);
    memset(m, 0, sizeof *m);
    m->text = malloc(len + 1);
    m->cap = len + 1;
    FUZZ_CHECK(m->text != NULL, "out of memory");
    p.data = m;

    const char *bad = fuzz_head_syntax(out, len);
    if (bad)
        fail_head(bad, out, len);
    /* request-line = method SP request-target SP HTTP-version */
    const char *sp1 = memchr(out, ' ', len), *eol = memchr(out, '\r', len);
    HEAD_CHECK(sp1 && eol && sp1 < eol && eol - sp1 > 10 && memcmp(eol - 9, " HTTP/1.1", 9) == 0 &&
                   memchr(sp1 + 1, ' ', (size_t)(eol - 9 - sp1 - 1)) == NULL,
               "the request line is not method SP target SP HTTP/1.1");
    for (const char *k = out; k < sp1; k++)
        HEAD_CHECK(fuzz_is_tchar((unsigned char)*k), "the method is not a token");

    enum llhttp_errno err = llhttp_execute(&p, out, len);
    if (err != HPE_PAUSED)
        fprintf(stderr, "==FUZZ== re-parse: %s (%s)\n", llhttp_errno_name(err), llhttp_get_error_reason(&p));
    HEAD_CHECK(err == HPE_PAUSED && m->heads == 1, "the rewritten head does not parse as a request head");
    HEAD_CHECK(llhttp_get_error_pos(&p) == out + len, "bytes after the rewritten head");
    HEAD_CHECK(!m->overflow, "too many headers");
    HEAD_CHECK(p.http_major == 1 && p.http_minor == 1, "not HTTP/1.1");
    HEAD_CHECK(llhttp_get_method(&p) == llhttp_get_method(&c->parser), "method changed");
    HEAD_CHECK(!(p.flags & F_CHUNKED) && !(p.flags & F_TRANSFER_ENCODING), "Transfer-Encoding upstream");

    /* The target: the prefix, then the client's target unchanged. */
    size_t plen = strlen(c->up->prefix);
    HEAD_CHECK(m->url_len == plen + in->url_len && memcmp(m->text + m->url, c->up->prefix, plen) == 0 &&
                   memcmp(m->text + m->url + plen, in->text + in->url, in->url_len) == 0,
               "target is not prefix + client target");

    unsigned i = 0;
    HEAD_CHECK(fuzz_msg_count(m, "host", &i) == 1 && value_is(m, i, c->up->authority), "Host");
    HEAD_CHECK(fuzz_msg_count(m, "x-forwarded-for", &i) == 1 && value_is(m, i, c->client_addr),
               "X-Forwarded-For");
    HEAD_CHECK(fuzz_msg_count(m, "x-forwarded-proto", &i) == 1 && value_is(m, i, "http"),
               "X-Forwarded-Proto");
    HEAD_CHECK(fuzz_msg_count(m, "forwarded", NULL) == 0, "Forwarded");
    HEAD_CHECK(fuzz_msg_count(m, "x-forwarded-host", NULL) == 0, "X-Forwarded-Host");
    HEAD_CHECK(fuzz_msg_count(m, "x-real-ip", NULL) == 0, "X-Real-IP");
    HEAD_CHECK(fuzz_msg_count(m, "transfer-encoding", NULL) == 0, "Transfer-Encoding");
    HEAD_CHECK(
        fuzz_msg_count(m, "te", NULL) == 0 && fuzz_msg_count(m, "trailer", NULL) == 0 &&
            fuzz_msg_count(m, "keep-alive", NULL) == 0 && fuzz_msg_count(m, "proxy-connection", NULL) == 0 &&
            fuzz_msg_count(m, "proxy-authorization", NULL) == 0 && fuzz_msg_count(m, "expect", NULL) == 0,
        "hop-by-hop header");
    bool upgrade = llhttp_get_upgrade(&c->parser);
    HEAD_CHECK(fuzz_msg_count(m, "connection", &i) == 1 && value_is(m, i, upgrade ? "Upgrade" : "keep-alive"),
               "Connection");
    if (!upgrade)
        HEAD_CHECK(fuzz_msg_count(m, "upgrade", NULL) == 0, "Upgrade without an upgrade");
    if (has_length) {
        char want[32];
        snprintf(want, sizeof want, "%llu", (unsigned long long)length);
        HEAD_CHECK(fuzz_msg_count(m, "content-length", &i) == 1 && value_is(m, i, want), "Content-Length");
        HEAD_CHECK((p.flags & F_CONTENT_LENGTH) && p.content_length == length, "framing");
    } else {
        HEAD_CHECK(fuzz_msg_count(m, "content-length", NULL) == 0, "Content-Length without a body");
    }

    /* Every header upstream is one the client sent, or one of ours; Origin and Referer point upstream. */
    size_t olen = strlen(c->up->origin);
    for (unsigned k = 0; k < m->count; k++) {
        const char *n = fuzz_field_name(m, k), *v = fuzz_field_value(m, k);
        size_t nl = m->fields[k].name_len, vl = m->fields[k].value_len;
        if (fuzz_name_is(n, nl, "host") || fuzz_name_is(n, nl, "x-forwarded-for") ||
            fuzz_name_is(n, nl, "x-forwarded-proto") || fuzz_name_is(n, nl, "connection") ||
            fuzz_name_is(n, nl, "content-length"))
            continue;
        if (fuzz_name_is(n, nl, "origin")) {
            HEAD_CHECK(vl == olen && memcmp(v, c->up->origin, olen) == 0, "Origin not upstream's");
            continue;
        }
        if (fuzz_name_is(n, nl, "referer")) {
            HEAD_CHECK(vl >= olen + 1 && memcmp(v, c->up->origin, olen) == 0 &&
                           (v[olen] == '/' || v[olen] == '?' || v[olen] == '#'),
                       "Referer not on upstream's origin");
            continue;
        }
        bool found = false;
        for (unsigned j = 0; j < c->head_fields && !found; j++)
            found = in->fields[j].name_len == nl && in->fields[j].value_len == vl &&
                    strncasecmp(fuzz_field_name(in, j), n, nl) == 0 &&
                    memcmp(fuzz_field_value(in, j), v, vl) == 0;
        HEAD_CHECK(found, "a header the client did not send");
    }
    /* And every end-to-end header of the client's is passed on. */
    for (unsigned j = 0; j < c->head_fields; j++) {
        const char *n = fuzz_field_name(in, j), *v = fuzz_field_value(in, j);
        size_t nl = in->fields[j].name_len, vl = in->fields[j].value_len;
        if (dropped_name(n, nl) || named_by_connection(in, n, nl) || fuzz_name_is(n, nl, "origin") ||
            fuzz_name_is(n, nl, "referer"))
            continue;
        bool found = false;
        for (unsigned k = 0; k < m->count && !found; k++)
            found = m->fields[k].name_len == nl && m->fields[k].value_len == vl &&
                    strncasecmp(fuzz_field_name(m, k), n, nl) == 0 &&
                    memcmp(fuzz_field_value(m, k), v, vl) == 0;
        if (!found)
            fuzz_dump("missing header", n, nl);
        HEAD_CHECK(found, "a client header was not passed on");
    }
}

/* ---- server.c's callbacks, with proxy.c's use of rewrite_request_head ---- */

static llhttp_settings_t settings;

static void note(struct client *c, const char *what)
{
    buf_printf(&c->transcript, "[%s]\n", what);
}

static int head_add_result(struct client *c, int rc)
{
    if (rc == 0)
        return 0;
    c->head_error = rc == -E2BIG ? 431 : 500;
    return HPE_USER;
}

static int on_message_begin(llhttp_t *p)
{
    struct client *c = p->data;
    c->head_error = 0;
    http_head_reset(&c->head);
    fuzz_msg_reset(&c->raw);
    c->collect = false;
    c->body_len = 0;
    c->body_too_large = false;
    buf_reset(&c->pending);
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    struct client *c = p->data;
    fuzz_msg_url(&c->raw, at, len);
    return head_add_result(c, http_head_add_url(&c->head, at, len));
}

static bool debug; /* FUZZ_DEBUG=1: print the callbacks, for triage */

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    struct client *c = p->data;
    if (debug)
        fprintf(stderr, "field[%.*s]%s count=%u in_value=%d\n", (int)len, at,
                at + len == c->feed_end ? " (at end)" : "", c->head.count, c->head.in_value);
    fuzz_msg_field(&c->raw, at, len);
    return head_add_result(c, http_head_add_field(&c->head, at, len));
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    struct client *c = p->data;
    /* As server.c: a second piece of a value that did not start where a read ended is a fold. */
    if (debug)
        fprintf(stderr, "value[%.*s]%s\n", (int)len, at, at + len == c->feed_end ? " (at end)" : "");
    bool fold = c->value_started && !c->value_piece_at_end;
    c->value_started = true;
    c->value_piece_at_end = at + len == c->feed_end;
    if (fold || memchr(at, '\n', len) || memchr(at, '\r', len)) {
        c->head_error = 400;
        return HPE_USER;
    }
    fuzz_msg_value(&c->raw, at, len);
    return head_add_result(c, http_head_add_value(&c->head, at, len));
}

static int on_header_value_complete(llhttp_t *p)
{
    struct client *c = p->data;
    if (debug)
        fprintf(stderr, "value complete\n");
    c->value_started = false;
    fuzz_msg_value_complete(&c->raw);
    return 0;
}

/* The capture src/http.c made must be what llhttp reported. */
static void compare_captures(const struct client *c)
{
    const struct http_head *h = &c->head;
    const struct fuzz_msg *m = &c->raw;
    size_t url_len;
    const char *url = http_head_url(h, &url_len);
    FUZZ_CHECK(url_len == m->url_len && memcmp(url, m->text + m->url, url_len) == 0,
               "captured target differs");
    FUZZ_CHECK(h->count == m->count, "http_head has %u headers, llhttp reported %u", h->count, m->count);
    for (unsigned i = 0; i < h->count; i++) {
        FUZZ_CHECK(h->headers[i].name_len == m->fields[i].name_len &&
                       memcmp(http_header_name(h, i), fuzz_field_name(m, i), m->fields[i].name_len) == 0,
                   "header %u's name differs", i);
        FUZZ_CHECK(h->headers[i].value_len == m->fields[i].value_len &&
                       memcmp(http_header_value(h, i), fuzz_field_value(m, i), m->fields[i].value_len) == 0,
                   "header %u's value differs", i);
    }
}

static bool url_path_is(const char *url, size_t len, const char *path)
{
    size_t plen = strlen(path);
    return len >= plen && memcmp(url, path, plen) == 0 && (len == plen || url[plen] == '?');
}

static int on_headers_complete(llhttp_t *p)
{
    struct client *c = p->data;
    compare_captures(c);
    c->head_fields = c->raw.count;

    const char *ambiguity = request_ambiguity(&c->head, p);
    if (ambiguity) {
        note(c, "refused");
        c->stop = true;
        return HPE_USER;
    }
    if ((p->flags & F_CONTENT_LENGTH) && p->content_length > (UINT64_C(1) << 50)) {
        note(c, "refused");
        c->stop = true;
        return HPE_USER;
    }
    if (p->flags & F_CHUNKED) {
        memset(&c->chunks, 0, sizeof c->chunks);
        c->checking_chunks = true;
    }

    /* server.c's route_request, for an allowed peer with the port sync running. */
    size_t url_len;
    const char *url = http_head_url(&c->head, &url_len);
    uint8_t method = llhttp_get_method(p);
    bool body = (p->flags & F_CHUNKED) || ((p->flags & F_CONTENT_LENGTH) && p->content_length > 0);
    if (url_path_is(url, url_len, "/healthz") || url_path_is(url, url_len, "/readyz")) {
        note(c, "local");
        return 0;
    }
    if (method == HTTP_CONNECT || url_len == 0 || url[0] != '/') {
        note(c, "refused");
        c->stop = true;
        return HPE_USER;
    }
    if (url_path_is(url, url_len, "/sync") || url_path_is(url, url_len, "/metrics")) {
        note(c, "sync");
        return 0;
    }
    char why[256];
    memset(why, 'Z', sizeof why);
    if (rewrite_check_origin(&c->head, why, sizeof why) != 0) {
        FUZZ_CHECK(memchr(why, '\0', sizeof why) && why[0], "refused without a reason");
        note(c, "401 cross-origin");
        if (body) {
            c->stop = true;
            return HPE_USER;
        }
        return 0;
    }

    /* proxy_begin: a chunked body is collected, a Content-Length body streams. */
    c->collect = (p->flags & F_CHUNKED) != 0;
    bool has_body = !c->collect && (p->flags & F_CONTENT_LENGTH) && p->content_length > 0;
    struct rewrite_request r = {
        .method = llhttp_method_name(method),
        .upstream = c->up,
        .client_addr = c->client_addr,
        .has_body = has_body,
        .content_length = p->content_length,
        .upgrade = llhttp_get_upgrade(p),
    };
    struct buf out;
    buf_init(&out, 64 * 1024 + HEAD_LIMIT);
    int rc = rewrite_request_head(&out, &c->head, &r);
    FUZZ_CHECK(rc == 0, "rewrite_request_head failed: %d", rc);
    if (c->collect) {
        /* proxy.c keeps the head without its blank line; proxy_end adds Content-Length. */
        FUZZ_CHECK(out.len >= 4 && memcmp(out.data + out.len - 4, "\r\n\r\n", 4) == 0, "head does not end");
        out.len -= 2;
        buf_append(&c->pending, out.data, out.len);
    } else {
        verify(c, out.data, out.len, has_body, p->content_length);
        buf_append(&c->transcript, out.data, out.len);
    }
    buf_free(&out);
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    struct client *c = p->data;
    (void)at;
    if (c->collect) {
        c->body_len += len;
        if (c->body_len > BODY_LIMIT) {
            note(c, "refused");
            c->stop = true;
            return HPE_USER;
        }
    }
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    struct client *c = p->data;
    head_scan_reset(&c->scan);
    c->checking_chunks = false;
    if (c->collect) {
        buf_printf(&c->pending, "Content-Length: %llu\r\n\r\n", (unsigned long long)c->body_len);
        verify(c, c->pending.data, c->pending.len, true, c->body_len);
        buf_append(&c->transcript, c->pending.data, c->pending.len);
    }
    c->messages++;
    if (c->messages >= MAX_MESSAGES)
        c->stop = true;
    /* After an upgrade request the connection is a tunnel (101) or closed, never HTTP again. */
    if (llhttp_get_upgrade(p)) {
        note(c, "upgrade");
        c->stop = true;
    }
    return HPE_PAUSED;
}

/* Feeds one read as server.c's conn_feed does. */
static void feed(struct client *c, const char *data, size_t len)
{
    while (len > 0 && !c->stop) {
        size_t n = len;
        if (!c->scan.done) {
            if (head_scan_feed(&c->scan, HEAD_LIMIT, data, len, &n) != 0) {
                note(c, "refused");
                c->stop = true;
                break;
            }
        } else if (c->checking_chunks) {
            size_t used = 0;
            int rc = chunk_check_feed(&c->chunks, data, len, &used);
            if (rc < 0) {
                note(c, "refused");
                c->stop = true;
                break;
            }
            if (rc == 1)
                c->checking_chunks = false;
        }
        c->feed_end = data + n;
        enum llhttp_errno err = llhttp_execute(&c->parser, data, n);
        if (err == HPE_OK) {
            data += n;
            len -= n;
            continue;
        }
        if (err == HPE_PAUSED) {
            const char *pos = llhttp_get_error_pos(&c->parser);
            len -= (size_t)(pos - data);
            data = pos;
            llhttp_resume(&c->parser);
            continue;
        }
        if (err == HPE_PAUSED_UPGRADE) {
            if (!c->stop)
                note(c, "upgrade");
            c->stop = true;
            break;
        }
        /* Which check refuses first may depend on the pieces (llhttp's token check or our header
         * cap, say); that a request is refused, and where, may not. */
        if (!c->stop)
            note(c, "refused");
        c->stop = true;
    }
}

/* Feeds the input in pieces of the given sizes (max_piece 0: all at once). */
static void run(struct client *c, const uint8_t *data, size_t size, uint64_t seed, size_t max_piece)
{
    llhttp_init(&c->parser, HTTP_REQUEST, &settings);
    c->parser.data = c;
    const char *d = (const char *)data;
    size_t left = size;
    while (left > 0 && !c->stop) {
        size_t piece = left;
        if (max_piece) {
            piece = 1 + (size_t)(fuzz_rand(&seed) % max_piece);
            if (piece > left)
                piece = left;
        }
        feed(c, d, piece);
        d += piece;
        left -= piece;
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    for (size_t i = 0; i < sizeof upstreams / sizeof upstreams[0]; i++) {
        char err[256];
        FUZZ_CHECK(url_parse(upstreams[i], &parsed_upstreams[i], err, sizeof err) == 0, "%s", err);
    }
    const char *d = getenv("FUZZ_DEBUG");
    debug = d && strcmp(d, "1") == 0;
    llhttp_settings_init(&settings);
    settings.on_message_begin = on_message_begin;
    settings.on_url = on_url;
    settings.on_header_field = on_header_field;
    settings.on_header_value = on_header_value;
    settings.on_header_value_complete = on_header_value_complete;
    settings.on_headers_complete = on_headers_complete;
    settings.on_body = on_body;
    settings.on_message_complete = on_message_complete;
    return 0;
}

static void client_init(struct client *c, size_t size, uint64_t h)
{
    memset(c, 0, sizeof *c);
    http_head_init(&c->head, HEAD_LIMIT);
    c->raw.text = malloc(size + 1);
    c->raw.cap = size + 1;
    c->up = &parsed_upstreams[h % (sizeof upstreams / sizeof upstreams[0])];
    c->client_addr = client_addrs[(h >> 8) % 2];
    buf_init(&c->pending, 2 * 1024 * 1024);
    buf_init(&c->transcript, 64 * 1024 * 1024);
}

static void client_free(struct client *c)
{
    http_head_free(&c->head);
    free(c->raw.text);
    buf_free(&c->pending);
    buf_free(&c->transcript);
}

static struct client whole, pieces;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t h = fuzz_hash(data, size);
    static const size_t max_pieces[] = {1, 2, 3, 5, 8, 16, 64, 512};

    client_init(&whole, size, h);
    run(&whole, data, size, 0, 0);
    if (debug)
        fprintf(stderr, "---- in pieces\n");
    client_init(&pieces, size, h);
    run(&pieces, data, size, h | 1, max_pieces[(h >> 16) % 8]);

    if (!fuzz_same(whole.transcript.data, whole.transcript.len, pieces.transcript.data,
                   pieces.transcript.len)) {
        fuzz_dump("in one piece", whole.transcript.data, whole.transcript.len);
        fuzz_dump("in pieces", pieces.transcript.data, pieces.transcript.len);
        FUZZ_CHECK(0, "the result depends on how the bytes were split into reads");
    }
    client_free(&whole);
    client_free(&pieces);
    free(reparsed.text);
    reparsed.text = NULL;
    return 0;
}
