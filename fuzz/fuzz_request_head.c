/*
 * fuzz_request_head.c - what a client sends, through the path a request head
 * takes in the daemon: src/request.c's reader (the raw-byte head scan, llhttp,
 * the capture into struct http_head with folding and CR/LF in values refused,
 * the head checks, chunk_check beside llhttp for chunked bodies) and its
 * routing with the same-origin check, then rewrite_request_head as proxy.c
 * calls it (a chunked body is collected and its head gets Content-Length
 * afterwards). Pipelined requests are handled in turn.
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
 * The reader and the routing are the very code the server runs; what stands
 * in for server.c and proxy.c here is their use of the reader's events (the
 * feeding loop, what each route does with a request, and, for half of the
 * inputs, holding each proxied request at its head and releasing it with one
 * more parse, as when qBittorrent is being connected).
 *
 * Each captured head is also checked against an independent capture, made by
 * a plain llhttp over the whole input beforehand, and the whole input is run
 * twice, in one piece and in pieces whose sizes come from the input: what the
 * upstream would receive must not depend on how reads were split.
 * FUZZ_DEBUG=1 in the environment prints that capture's callbacks, for triage.
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
#include "endpoints.h"
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

/*
 * The independent capture: each request's head as a plain llhttp reports it,
 * over the whole input in one piece.
 */
struct capture {
    struct fuzz_msg msgs[MAX_MESSAGES];
    unsigned head_fields[MAX_MESSAGES]; /* how many of a msg's fields are its head's (the rest: trailers) */
    unsigned count;                     /* requests complete */
    unsigned heads;                     /* requests whose head is complete */
};
static struct capture captured;

/* The part of server.c's client_conn (and proxy.c's exchange) that the reader's events use. */
struct client {
    struct request_reader req;
    const struct url *up;
    const char *client_addr;
    bool stop;       /* the connection would be closed */
    bool hold_heads; /* pause at proxied heads, as the server does until qBittorrent is connected */
    bool held;       /* paused at a head now */
    bool collect;
    struct buf pending; /* a collected request's head, waiting for its body's length */
    struct buf stash;   /* bytes held while a head is held */
    uint64_t body_len;
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

/*
 * Returns true when a Connection header among m's first fields (the head's, not
 * the trailers) names this header (tokens split on comma, space and tab).
 */
static bool named_by_connection(const struct fuzz_msg *m, unsigned fields, const char *name, size_t len)
{
    for (unsigned i = 0; i < fields; i++) {
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

static void verify(struct client *c, const char *out, size_t len, bool has_length, uint64_t length)
{
    const struct fuzz_msg *in = &captured.msgs[c->messages];
    unsigned head_fields = captured.head_fields[c->messages];
    /* Only what qBittorrent's HTTP/1.1 server can take is passed on as HTTP/1.1. */
    FUZZ_CHECK(c->req.parser.http_major == 1 && c->req.parser.http_minor <= 1,
               "an HTTP/%d.%d request (%s) was passed on as HTTP/1.1", c->req.parser.http_major,
               c->req.parser.http_minor, llhttp_method_name(llhttp_get_method(&c->req.parser)));
    llhttp_t p;
    struct fuzz_msg *m = &reparsed;
    enum llhttp_errno err = fuzz_reparse(&p, m, 0, out, len);
    /* request-line = method SP request-target SP HTTP-version */
    const char *sp1 = memchr(out, ' ', len), *eol = memchr(out, '\r', len);
    FUZZ_HEAD_CHECK(sp1 && eol && sp1 < eol && eol - sp1 > 10 && memcmp(eol - 9, " HTTP/1.1", 9) == 0 &&
                        memchr(sp1 + 1, ' ', (size_t)(eol - 9 - sp1 - 1)) == NULL,
                    "the request line is not method SP target SP HTTP/1.1");
    for (const char *k = out; k < sp1; k++)
        FUZZ_HEAD_CHECK(fuzz_is_tchar((unsigned char)*k), "the method is not a token");
    FUZZ_HEAD_CHECK(err == HPE_PAUSED && m->heads == 1,
                    "the rewritten head does not parse as a request head");
    FUZZ_HEAD_CHECK(llhttp_get_error_pos(&p) == out + len, "bytes after the rewritten head");
    FUZZ_HEAD_CHECK(!m->overflow, "too many headers");
    FUZZ_HEAD_CHECK(p.http_major == 1 && p.http_minor == 1, "not HTTP/1.1");
    FUZZ_HEAD_CHECK(llhttp_get_method(&p) == llhttp_get_method(&c->req.parser), "method changed");
    FUZZ_HEAD_CHECK(!(p.flags & F_CHUNKED) && !(p.flags & F_TRANSFER_ENCODING), "Transfer-Encoding upstream");

    /* The target: the prefix, then the client's target unchanged. */
    size_t plen = strlen(c->up->prefix);
    FUZZ_HEAD_CHECK(m->url_len == plen + in->url_len && memcmp(m->text + m->url, c->up->prefix, plen) == 0 &&
                        memcmp(m->text + m->url + plen, in->text + in->url, in->url_len) == 0,
                    "target is not prefix + client target");

    unsigned i = 0;
    FUZZ_HEAD_CHECK(fuzz_msg_count(m, "host", &i) == 1 && fuzz_value_is(m, i, c->up->authority), "Host");
    FUZZ_HEAD_CHECK(fuzz_msg_count(m, "x-forwarded-for", &i) == 1 && fuzz_value_is(m, i, c->client_addr),
                    "X-Forwarded-For");
    FUZZ_HEAD_CHECK(fuzz_msg_count(m, "x-forwarded-proto", &i) == 1 && fuzz_value_is(m, i, "http"),
                    "X-Forwarded-Proto");
    FUZZ_HEAD_CHECK(fuzz_msg_count(m, "forwarded", NULL) == 0, "Forwarded");
    FUZZ_HEAD_CHECK(fuzz_msg_count(m, "x-forwarded-host", NULL) == 0, "X-Forwarded-Host");
    FUZZ_HEAD_CHECK(fuzz_msg_count(m, "x-real-ip", NULL) == 0, "X-Real-IP");
    FUZZ_HEAD_CHECK(fuzz_msg_count(m, "transfer-encoding", NULL) == 0, "Transfer-Encoding");
    FUZZ_HEAD_CHECK(
        fuzz_msg_count(m, "te", NULL) == 0 && fuzz_msg_count(m, "trailer", NULL) == 0 &&
            fuzz_msg_count(m, "keep-alive", NULL) == 0 && fuzz_msg_count(m, "proxy-connection", NULL) == 0 &&
            fuzz_msg_count(m, "proxy-authorization", NULL) == 0 && fuzz_msg_count(m, "expect", NULL) == 0,
        "hop-by-hop header");
    bool upgrade = llhttp_get_upgrade(&c->req.parser);
    FUZZ_HEAD_CHECK(fuzz_msg_count(m, "connection", &i) == 1 &&
                        fuzz_value_is(m, i, upgrade ? "Upgrade" : "keep-alive"),
                    "Connection");
    if (!upgrade)
        FUZZ_HEAD_CHECK(fuzz_msg_count(m, "upgrade", NULL) == 0, "Upgrade without an upgrade");
    if (has_length) {
        char want[32];
        snprintf(want, sizeof want, "%llu", (unsigned long long)length);
        FUZZ_HEAD_CHECK(fuzz_msg_count(m, "content-length", &i) == 1 && fuzz_value_is(m, i, want),
                        "Content-Length");
        FUZZ_HEAD_CHECK((p.flags & F_CONTENT_LENGTH) && p.content_length == length, "framing");
    } else {
        FUZZ_HEAD_CHECK(fuzz_msg_count(m, "content-length", NULL) == 0, "Content-Length without a body");
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
            FUZZ_HEAD_CHECK(vl == olen && memcmp(v, c->up->origin, olen) == 0, "Origin not upstream's");
            continue;
        }
        if (fuzz_name_is(n, nl, "referer")) {
            FUZZ_HEAD_CHECK(vl >= olen + 1 && memcmp(v, c->up->origin, olen) == 0 &&
                                (v[olen] == '/' || v[olen] == '?' || v[olen] == '#'),
                            "Referer not on upstream's origin");
            continue;
        }
        bool found = false;
        for (unsigned j = 0; j < head_fields && !found; j++)
            found = in->fields[j].name_len == nl && in->fields[j].value_len == vl &&
                    strncasecmp(fuzz_field_name(in, j), n, nl) == 0 &&
                    memcmp(fuzz_field_value(in, j), v, vl) == 0;
        FUZZ_HEAD_CHECK(found, "a header the client did not send");
    }
    /* And every end-to-end header of the client's is passed on. */
    for (unsigned j = 0; j < head_fields; j++) {
        const char *n = fuzz_field_name(in, j), *v = fuzz_field_value(in, j);
        size_t nl = in->fields[j].name_len, vl = in->fields[j].value_len;
        if (dropped_name(n, nl) || named_by_connection(in, head_fields, n, nl) ||
            fuzz_name_is(n, nl, "origin") || fuzz_name_is(n, nl, "referer"))
            continue;
        bool found = false;
        for (unsigned k = 0; k < m->count && !found; k++)
            found = m->fields[k].name_len == nl && m->fields[k].value_len == vl &&
                    strncasecmp(fuzz_field_name(m, k), n, nl) == 0 &&
                    memcmp(fuzz_field_value(m, k), v, vl) == 0;
        if (!found)
            fuzz_dump("missing header", n, nl);
        FUZZ_HEAD_CHECK(found, "a client header was not passed on");
    }
}

/* ---- the independent capture ---- */

static bool debug; /* FUZZ_DEBUG=1: print the capture's callbacks, for triage */

static struct fuzz_msg *capturing(llhttp_t *p)
{
    struct capture *cap = p->data;
    return &cap->msgs[cap->count];
}

static int cap_begin(llhttp_t *p)
{
    struct capture *cap = p->data;
    if (cap->count == MAX_MESSAGES)
        return HPE_USER; /* the reader is never let further */
    fuzz_msg_reset(capturing(p));
    return 0;
}

static int cap_url(llhttp_t *p, const char *at, size_t len)
{
    return fuzz_msg_url(capturing(p), at, len);
}

static int cap_field(llhttp_t *p, const char *at, size_t len)
{
    if (debug)
        fprintf(stderr, "field[%.*s]\n", (int)len, at);
    return fuzz_msg_field(capturing(p), at, len);
}

static int cap_value(llhttp_t *p, const char *at, size_t len)
{
    if (debug)
        fprintf(stderr, "value[%.*s]\n", (int)len, at);
    return fuzz_msg_value(capturing(p), at, len);
}

static int cap_value_complete(llhttp_t *p)
{
    fuzz_msg_value_complete(capturing(p));
    return 0;
}

static int cap_headers_complete(llhttp_t *p)
{
    struct capture *cap = p->data;
    cap->head_fields[cap->count] = capturing(p)->count;
    cap->heads = cap->count + 1;
    return 0;
}

static int cap_message_complete(llhttp_t *p)
{
    struct capture *cap = p->data;
    cap->count++;
    return 0;
}

/* Captures every request of the input with a plain llhttp, in one piece. */
static void capture_all(const uint8_t *data, size_t size)
{
    static const llhttp_settings_t settings = {
        .on_message_begin = cap_begin,
        .on_url = cap_url,
        .on_header_field = cap_field,
        .on_header_value = cap_value,
        .on_header_value_complete = cap_value_complete,
        .on_headers_complete = cap_headers_complete,
        .on_message_complete = cap_message_complete,
    };
    captured.count = captured.heads = 0;
    for (unsigned i = 0; i < MAX_MESSAGES; i++)
        fuzz_msg_prepare(&captured.msgs[i], size + 1);
    llhttp_t p;
    llhttp_init(&p, HTTP_REQUEST, &settings);
    p.data = &captured;
    llhttp_execute(&p, (const char *)data, size);
}

/* The reader's capture of the head of request number c->messages must be the plain llhttp's. */
static void compare_captures(const struct client *c)
{
    FUZZ_CHECK(c->messages < captured.heads, "the reader completed a head a plain llhttp did not");
    const struct http_head *h = &c->req.head;
    const struct fuzz_msg *m = &captured.msgs[c->messages];
    size_t url_len;
    const char *url = http_head_url(h, &url_len);
    FUZZ_CHECK(url_len == m->url_len && memcmp(url, m->text + m->url, url_len) == 0,
               "captured target differs");
    unsigned fields = captured.head_fields[c->messages];
    FUZZ_CHECK(h->count == fields, "http_head has %u headers, llhttp reported %u", h->count, fields);
    for (unsigned i = 0; i < h->count; i++) {
        FUZZ_CHECK(h->headers[i].name_len == m->fields[i].name_len &&
                       memcmp(http_header_name(h, i), fuzz_field_name(m, i), m->fields[i].name_len) == 0,
                   "header %u's name differs", i);
        FUZZ_CHECK(h->headers[i].value_len == m->fields[i].value_len &&
                       memcmp(http_header_value(h, i), fuzz_field_value(m, i), m->fields[i].value_len) == 0,
                   "header %u's value differs", i);
    }
}

/* ---- server.c's and proxy.c's use of the reader's events ---- */

static void note(struct client *c, const char *what)
{
    buf_printf(&c->transcript, "[%s]\n", what);
}

static int on_begin(struct request_reader *r)
{
    struct client *c = r->owner;
    c->collect = false;
    c->body_len = 0;
    buf_reset(&c->pending);
    return 0;
}

static int on_head(struct request_reader *r)
{
    struct client *c = r->owner;
    llhttp_t *p = &r->parser;
    compare_captures(c);

    /* server.c's on_request_head, for an allowed peer with the port sync and the proxy configured. */
    char why[256];
    memset(why, 'Z', sizeof why);
    struct request req = {0};
    request_describe(r, &req);
    req.peer = "127.0.0.1";
    req.peer_allowed = true;
    req.local = NULL;
    bool body = req.framing != FRAMING_NONE;
    FUZZ_CHECK(body == ((p->flags & F_CHUNKED) || ((p->flags & F_CONTENT_LENGTH) && p->content_length > 0)),
               "request_describe's framing disagrees with the parser");
    const struct route_context ctx = {.have_sync = true, .have_proxy = true};
    switch (endpoints_route_of(&req, &ctx, why, sizeof why)) {
    case ROUTE_HEALTHZ:
    case ROUTE_READYZ:
        note(c, "local");
        return 0;
    case ROUTE_SYNC:
    case ROUTE_METRICS:
        note(c, "sync");
        return 0;
    case ROUTE_BAD_TARGET:
        note(c, "refused");
        c->stop = true;
        return HPE_USER;
    case ROUTE_BAD_HOST:
    case ROUTE_HOST_UNCHECKED:
    case ROUTE_CROSS_ORIGIN:
        FUZZ_CHECK(memchr(why, '\0', sizeof why) && why[0], "refused without a reason");
        note(c, "401 cross-origin");
        if (body) {
            c->stop = true;
            return HPE_USER;
        }
        return 0;
    case ROUTE_DENIED:
    case ROUTE_NO_UPSTREAM:
        FUZZ_CHECK(0, "an allowed peer with a proxy configured was not proxied");
        return HPE_USER;
    case ROUTE_PROXY:
        break;
    }

    /* proxy_begin: a chunked body is collected, a Content-Length body streams. */
    uint8_t method = llhttp_get_method(p);
    c->collect = (p->flags & F_CHUNKED) != 0;
    bool has_body = !c->collect && (p->flags & F_CONTENT_LENGTH) && p->content_length > 0;
    struct rewrite_request rw = {
        .method = llhttp_method_name(method),
        .upstream = c->up,
        .client_addr = c->client_addr,
        .has_body = has_body,
        .content_length = p->content_length,
        .upgrade = llhttp_get_upgrade(p),
    };
    struct buf out;
    buf_init(&out, 64 * 1024 + HEAD_LIMIT);
    int rc = rewrite_request_head(&out, &r->head, &rw);
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
    if (c->hold_heads) {
        c->held = true;
        return HPE_PAUSED;
    }
    return 0;
}

static int on_body(struct request_reader *r, const char *at, size_t len)
{
    struct client *c = r->owner;
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

static int on_complete(struct request_reader *r)
{
    struct client *c = r->owner;
    if (c->collect) {
        buf_printf(&c->pending, "Content-Length: %llu\r\n\r\n", (unsigned long long)c->body_len);
        verify(c, c->pending.data, c->pending.len, true, c->body_len);
        buf_append(&c->transcript, c->pending.data, c->pending.len);
    }
    c->messages++;
    if (c->messages >= MAX_MESSAGES)
        c->stop = true;
    /* After an upgrade request the connection is a tunnel (101) or closed, never HTTP again. */
    if (llhttp_get_upgrade(&r->parser)) {
        note(c, "upgrade");
        c->stop = true;
    }
    return HPE_PAUSED;
}

static const struct request_events events = {
    .on_begin = on_begin,
    .on_head = on_head,
    .on_body = on_body,
    .on_complete = on_complete,
};

/* server.c's request_feed, for this client: held heads keep the rest, as a waiting exchange does. */
static bool feed_done(void *owner)
{
    return ((struct client *)owner)->stop;
}

static bool feed_busy(void *owner)
{
    return ((struct client *)owner)->held;
}

static void feed_hold(void *owner, const char *data, size_t len)
{
    struct client *c = owner;
    FUZZ_CHECK(buf_append(&c->stash, data, len) == 0, "more held than two reads");
}

static void feed_upgraded(void *owner)
{
    struct client *c = owner;
    if (!c->stop)
        note(c, "upgrade");
    c->stop = true;
}

static void feed_refused(void *owner, int status, const char *reason)
{
    struct client *c = owner;
    /* Which check refuses first may depend on the pieces (llhttp's token check or our header cap,
     * say); that a request is refused, and where, may not. */
    FUZZ_CHECK(c->req.status == status && c->req.reason && reason, "a request refused without its status");
    note(c, "refused");
    c->stop = true;
}

static const struct request_feed feed_events = {
    .done = feed_done,
    .busy = feed_busy,
    .hold = feed_hold,
    .upgraded = feed_upgraded,
    .refused = feed_refused,
};

/*
 * Feeds one read through the server's own feed loop; a head held (as until qBittorrent is
 * connected) is released at once, as client_continue does: resumed, and what was held parsed,
 * even when nothing was.
 */
static void feed(struct client *c, const char *data, size_t len)
{
    request_reader_feed(&c->req, data, len, &feed_events, c);
    while (c->held && !c->stop) {
        c->held = false;
        request_reader_resume(&c->req);
        struct buf held = c->stash;
        buf_init(&c->stash, held.limit);
        request_reader_feed(&c->req, held.data ? held.data : "", held.len, &feed_events, c);
        buf_free(&held);
    }
}

/* Feeds the input in pieces of the given sizes (max_piece 0: all at once). */
static void run(struct client *c, const uint8_t *data, size_t size, uint64_t seed, size_t max_piece)
{
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
    return 0;
}

static void client_init(struct client *c, size_t size, uint64_t h)
{
    memset(c, 0, sizeof *c);
    request_reader_init(&c->req, HEAD_LIMIT, &events, c);
    c->up = &parsed_upstreams[h % (sizeof upstreams / sizeof upstreams[0])];
    c->client_addr = client_addrs[(h >> 8) % 2];
    c->hold_heads = (h >> 9) & 1;
    buf_init(&c->pending, 2 * 1024 * 1024);
    buf_init(&c->stash, 4 * 1024 * 1024);
    buf_init(&c->transcript, 64 * 1024 * 1024);
}

static void client_free(struct client *c)
{
    request_reader_free(&c->req);
    buf_free(&c->pending);
    buf_free(&c->stash);
    buf_free(&c->transcript);
}

static struct client whole, pieces;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t h = fuzz_hash(data, size);
    static const size_t max_pieces[] = {1, 2, 3, 5, 8, 16, 64, 512};

    capture_all(data, size);
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
    for (unsigned i = 0; i < MAX_MESSAGES; i++) {
        free(captured.msgs[i].text);
        captured.msgs[i].text = NULL;
    }
    return 0;
}
