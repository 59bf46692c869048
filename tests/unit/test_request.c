/* test_request.c - unit tests for request.c (the request reader's checks, what it describes) and for
 * endpoints_route_of (where a described request goes). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "endpoints.h"
#include "request.h"
#include "unit_addr.h"

#define HEAD_LIMIT 1024

/* What the events reported, for one connection. */
struct seen {
    unsigned begins, heads, completes;
    size_t body_bytes;
    char last_url[64];
};

static int on_begin(struct request_reader *r)
{
    ((struct seen *)r->owner)->begins++;
    return 0;
}

static int on_head(struct request_reader *r)
{
    struct seen *s = r->owner;
    size_t len;
    const char *url = http_head_url(&r->head, &len);
    snprintf(s->last_url, sizeof s->last_url, "%.*s", (int)len, url);
    s->heads++;
    return 0;
}

static int on_body(struct request_reader *r, const char *at, size_t len)
{
    (void)at;
    ((struct seen *)r->owner)->body_bytes += len;
    return 0;
}

static int on_complete(struct request_reader *r)
{
    ((struct seen *)r->owner)->completes++;
    return HPE_PAUSED; /* as the server does: one request at a time */
}

static const struct request_events events = {
    .on_begin = on_begin,
    .on_head = on_head,
    .on_body = on_body,
    .on_complete = on_complete,
};

/*
 * Feeds data in pieces of at most piece bytes (0: all at once), resuming after
 * each request as the server does. Returns the refusal status, or 0.
 */
static int feed(struct request_reader *r, const char *data, size_t len, size_t piece)
{
    while (len > 0) {
        size_t n = piece && piece < len ? piece : len;
        const char *p = data;
        size_t left = n;
        while (left > 0) {
            size_t used = 0;
            enum llhttp_errno err = request_reader_execute(r, p, left, &used);
            assert_true(used <= left);
            p += used;
            left -= used;
            if (err == HPE_PAUSED) {
                request_reader_resume(r);
            } else if (err != HPE_OK) {
                assert_int_not_equal(r->status, 0);
                assert_non_null(r->reason);
                return r->status;
            }
        }
        data += n;
        len -= n;
    }
    return 0;
}

struct read_case {
    const char *name;
    const char *data;
    int status;         /* the refusal, or 0 */
    const char *reason; /* a part of the refusal's reason */
    unsigned heads;     /* heads reported (before any refusal) */
};

static const struct read_case read_cases[] = {
    {"plain GET", "GET /api?x=1 HTTP/1.1\r\nHost: a:8080\r\n\r\n", 0, NULL, 1},
    {"HTTP/1.0 without Host", "GET / HTTP/1.0\r\n\r\n", 0, NULL, 1},
    {"pipelined", "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n", 0, NULL, 2},
    {"Content-Length body", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello", 0, NULL, 1},
    {"chunked body",
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 0, NULL, 1},
    {"bare LF", "GET / HTTP/1.1\nHost: a\n\n", 400, "bare LF", 0},
    {"tab in the target", "GET /x\ty HTTP/1.1\r\nHost: a\r\n\r\n", 400, "url", 0},
    {"obsolete line folding", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n", 400, "line folding", 0},
    {"folding with a tab", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n\tc\r\n\r\n", 400, "line folding", 0},
    {"a fold right after the request line", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400, "line folding", 0},
    {"blank lines before the request line", "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 0, NULL, 1},
    {"chunked body with a trailer",
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n", 0,
     NULL, 1},
    {"a Content-Length among the trailers (it frames nothing)",
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nContent-Length: 9\r\n\r\n"
     "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
     0, NULL, 2},
    {"a folded trailer",
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: 1\r\n "
     "2\r\n\r\n",
     400, "chunked", 1},
    {"no Host in HTTP/1.1", "GET / HTTP/1.1\r\nX: y\r\n\r\n", 400, "missing Host", 0},
    {"two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "more than one Host", 0},
    {"a Host with a path", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400, "invalid Host", 0},
    {"gzip coding", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 400,
     "Transfer-Encoding", 0},
    {"chunked twice", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400,
     "Transfer-Encoding", 0},
    {"chunked in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "HTTP/1.0", 0},
    {"Content-Length and chunked",
     "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "", 0},
    {"two Content-Lengths", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
     400, "", 0},
    {"absurd Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9999999999999999\r\n\r\n", 413,
     "Content-Length too large", 0},
    {"chunk line with a bare LF",
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n", 400, "chunked",
     1},
    {"HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 400, "", 0},
    {"RTSP/1.0", "OPTIONS / RTSP/1.0\r\nCSeq: 1\r\n\r\n", 400, "HTTP/1.x", 0},
    {"ICE/1.0", "SOURCE / ICE/1.0\r\nHost: a\r\n\r\n", 400, "HTTP/1.x", 0},
    {"lower-case http", "GET / http/1.1\r\nHost: a\r\n\r\n", 400, "", 0},
    {"empty Transfer-Encoding",
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\nContent-Length: 3\r\n\r\n", 400,
     "empty Transfer-Encoding", 0},
    {"blank Transfer-Encoding", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:  \t \r\n\r\n", 400,
     "empty Transfer-Encoding", 0},
    {"a comma for a Transfer-Encoding", "POST / HTTP/1.0\r\nTransfer-Encoding: ,\r\n\r\n", 400,
     "empty Transfer-Encoding", 0},
    {"chunked plus an empty Transfer-Encoding",
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding:\r\n\r\n0\r\n\r\n", 400,
     "empty Transfer-Encoding", 0},
    {"second request refused", "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\nHost: a\r\n\r\n", 400,
     "bare LF", 1},
};

/* Every case gives the same result whole, in small pieces and byte by byte. */
static void test_read_cases(void **state)
{
    (void)state;
    static const size_t pieces[] = {0, 7, 1};
    for (size_t i = 0; i < sizeof read_cases / sizeof read_cases[0]; i++) {
        const struct read_case *rc = &read_cases[i];
        for (size_t k = 0; k < sizeof pieces / sizeof pieces[0]; k++) {
            struct seen seen = {0};
            struct request_reader r;
            request_reader_init(&r, HEAD_LIMIT, &events, &seen);
            int status = feed(&r, rc->data, strlen(rc->data), pieces[k]);
            if (status != rc->status || seen.heads != rc->heads ||
                (rc->reason && (!r.reason || !strstr(r.reason, rc->reason))))
                fail_msg("%s (pieces of %zu): status %d, %u heads, reason \"%s\"", rc->name, pieces[k],
                         status, seen.heads, r.reason ? r.reason : "");
            if (status == 0)
                assert_int_equal(seen.completes, rc->heads);
            request_reader_free(&r);
        }
    }
}

static void test_head_limit(void **state)
{
    (void)state;
    char req[HEAD_LIMIT + 200];
    int n = snprintf(req, sizeof req, "GET / HTTP/1.1\r\nHost: a\r\nX-Pad: ");
    memset(req + n, 'p', sizeof req - (size_t)n - 5);
    memcpy(req + sizeof req - 5, "\r\n\r\n", 5);
    struct seen seen = {0};
    struct request_reader r;
    request_reader_init(&r, HEAD_LIMIT, &events, &seen);
    assert_int_equal(feed(&r, req, strlen(req), 0), 431);
    assert_int_equal(seen.heads, 0);
    request_reader_free(&r);

    /* More header lines than the capture holds is the same refusal, however short they are. */
    char many[HTTP_MAX_HEADERS * 6 + 64];
    size_t len = (size_t)snprintf(many, sizeof many, "GET / HTTP/1.1\r\n");
    for (int i = 0; i <= HTTP_MAX_HEADERS; i++)
        len += (size_t)snprintf(many + len, sizeof many - len, "H:%c\r\n", 'a' + i % 26);
    len += (size_t)snprintf(many + len, sizeof many - len, "\r\n");
    request_reader_init(&r, sizeof many, &events, &seen);
    assert_int_equal(feed(&r, many, len, 0), 431);
    request_reader_free(&r);
}

/* head_complete (what the server answers a HEAD request by) belongs to the request being read. */
static void test_head_complete_follows_the_request(void **state)
{
    (void)state;
    struct seen seen = {0};
    struct request_reader r;
    request_reader_init(&r, HEAD_LIMIT, &events, &seen);
    assert_false(r.head_complete);
    const char *first = "HEAD /1 HTTP/1.1\r\nHost: a\r\n\r\n";
    assert_int_equal(feed(&r, first, strlen(first), 0), 0);
    assert_true(r.head_complete);
    assert_int_equal(llhttp_get_method(&r.parser), HTTP_HEAD);
    /* The next request's first bytes, refused before llhttp begins it, are not a HEAD request's. */
    assert_int_equal(feed(&r, "\n", 1, 0), 400);
    assert_false(r.head_complete);
    request_reader_free(&r);

    request_reader_init(&r, HEAD_LIMIT, &events, &seen);
    const char *partial = "GET /2 HTTP/1.1\r\nHo";
    assert_int_equal(feed(&r, partial, strlen(partial), 0), 0);
    assert_false(r.head_complete);
    request_reader_free(&r);
}

static int go_on(struct request_reader *r)
{
    ((struct seen *)r->owner)->completes++;
    return 0;
}

static int hold_body(struct request_reader *r)
{
    ((struct seen *)r->owner)->heads++;
    return HPE_PAUSED;
}

/* The reader stops after each request even when the owner would go on: the next head is scanned. */
static void test_next_head_always_scanned(void **state)
{
    (void)state;
    static const struct request_events eager = {.on_complete = go_on};
    const char *data =
        "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nxGET /b HTTP/1.1\nHost: a\r\n\r\n";
    struct seen seen = {0};
    struct request_reader r;
    request_reader_init(&r, HEAD_LIMIT, &eager, &seen);
    assert_int_equal(feed(&r, data, strlen(data), 0), 400);
    assert_string_equal(r.reason, "bare LF as a line end in the head");
    assert_int_equal(seen.completes, 1);
    request_reader_free(&r);
}

/* Paused at its head (waiting for qBittorrent), a request without a body completes on an empty feed. */
static void test_paused_head_then_empty_feed(void **state)
{
    (void)state;
    static const struct request_events holding = {.on_head = hold_body, .on_complete = go_on};
    const char *data = "GET /a HTTP/1.1\r\nHost: a\r\n\r\n";
    struct seen seen = {0};
    struct request_reader r;
    request_reader_init(&r, HEAD_LIMIT, &holding, &seen);
    size_t used = 0;
    assert_int_equal(request_reader_execute(&r, data, strlen(data), &used), HPE_PAUSED); /* at the head */
    assert_int_equal(used, strlen(data));
    assert_int_equal(seen.heads, 1);
    assert_int_equal(seen.completes, 0);
    /* Not resumed: the same answer again, nothing consumed. */
    assert_int_equal(request_reader_execute(&r, "", 0, &used), HPE_PAUSED);
    assert_int_equal(used, 0);
    request_reader_resume(&r);
    assert_int_equal(request_reader_execute(&r, "", 0, &used), HPE_PAUSED); /* complete */
    assert_int_equal(seen.completes, 1);
    assert_true(r.head_complete);
    request_reader_free(&r);
}

/* After a refusal or an upgrade, more bytes get the same answer and nothing is consumed. */
static void test_done_stays_done(void **state)
{
    (void)state;
    const char *bad = "GET / HTTP/1.1\nHost: a\n\n";
    const char *upgrade =
        "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nraw";
    struct seen seen = {0};
    struct request_reader r;
    size_t used = 99;

    request_reader_init(&r, HEAD_LIMIT, &events, &seen);
    assert_int_equal(feed(&r, bad, strlen(bad), 0), 400);
    assert_int_not_equal(request_reader_execute(&r, "GET / HTTP/1.1\r\n", 16, &used), HPE_OK);
    assert_int_equal(used, 0);
    request_reader_free(&r);

    request_reader_init(&r, HEAD_LIMIT, &events, &seen);
    enum llhttp_errno err = HPE_OK;
    const char *p = upgrade;
    size_t left = strlen(upgrade);
    while (left > 0 && (err == HPE_OK || err == HPE_PAUSED)) {
        if (err == HPE_PAUSED)
            request_reader_resume(&r);
        err = request_reader_execute(&r, p, left, &used);
        p += used;
        left -= used;
    }
    assert_int_equal(err, HPE_PAUSED_UPGRADE);
    assert_int_equal(left, 3); /* "raw" is the tunnel's */
    request_reader_resume(&r);
    assert_int_equal(request_reader_execute(&r, "more", 4, &used), HPE_PAUSED_UPGRADE);
    assert_int_equal(used, 0);
    request_reader_free(&r);
}

struct route_case {
    const char *data;
    bool allowed, have_sync, have_proxy;
    enum route route;
    const char *domains; /* qBittorrent's server domains; NULL: no Host check */
    const char *peer;    /* the client's address; NULL: 192.0.2.7, not loopback */
};

static const struct route_case route_cases[] = {
    /* probes are answered whoever asks */
    {"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n", false, true, true, ROUTE_HEALTHZ, NULL, NULL},
    {"GET /readyz?verbose HTTP/1.1\r\nHost: a\r\n\r\n", false, true, true, ROUTE_READYZ, NULL, NULL},
    {"GET /readyz HTTP/1.1\r\nHost: a\r\n\r\n", false, false, true, ROUTE_DENIED, NULL, NULL},
    {"GET /healthzz HTTP/1.1\r\nHost: a\r\n\r\n", false, true, true, ROUTE_DENIED, NULL, NULL},
    {"GET /sync HTTP/1.1\r\nHost: a\r\n\r\n", false, true, true, ROUTE_DENIED, NULL, NULL},
    /* Gluetun's hooks call /sync from loopback, allowed or not; nothing else is let in that way */
    {"GET /sync HTTP/1.1\r\nHost: a\r\n\r\n", false, true, true, ROUTE_SYNC, NULL, "127.0.0.1"},
    {"POST /sync HTTP/1.1\r\nHost: a\r\n\r\n", false, true, true, ROUTE_SYNC, NULL, "::1"},
    {"GET /sync HTTP/1.1\r\nHost: a\r\n\r\n", false, true, true, ROUTE_SYNC, NULL, "::ffff:127.0.0.9"},
    {"GET /sync HTTP/1.1\r\nHost: a\r\n\r\n", false, true, true, ROUTE_DENIED, NULL, "::ffff:10.0.0.1"},
    {"GET /sync HTTP/1.1\r\nHost: a\r\n\r\n", false, true, true, ROUTE_DENIED, NULL, "128.0.0.1"},
    {"GET /sync HTTP/1.1\r\nHost: a\r\n\r\n", false, false, true, ROUTE_DENIED, NULL, "127.0.0.1"},
    {"GET /syncx HTTP/1.1\r\nHost: a\r\n\r\n", false, true, true, ROUTE_DENIED, NULL, "127.0.0.1"},
    {"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n", false, true, true, ROUTE_DENIED, NULL, "127.0.0.1"},
    {"GET /api HTTP/1.1\r\nHost: a\r\n\r\n", false, true, true, ROUTE_DENIED, NULL, "::1"},
    {"GET /sync HTTP/1.1\r\nHost: a\r\n\r\n", true, true, true, ROUTE_SYNC, NULL, NULL},
    {"POST /sync?now HTTP/1.1\r\nHost: a\r\n\r\n", true, true, true, ROUTE_SYNC, NULL, NULL},
    {"GET /sync HTTP/1.1\r\nHost: a\r\n\r\n", true, false, true, ROUTE_PROXY, NULL, NULL},
    {"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n", true, true, true, ROUTE_METRICS, NULL, NULL},
    {"GET http://a/x HTTP/1.1\r\nHost: a\r\n\r\n", true, true, true, ROUTE_BAD_TARGET, NULL, NULL},
    {"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", true, true, true, ROUTE_BAD_TARGET, NULL, NULL},
    {"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", true, true, true, ROUTE_BAD_TARGET, NULL, NULL},
    {"GET /api HTTP/1.1\r\nHost: a:9090\r\nOrigin: http://a:9090\r\n\r\n", true, true, true, ROUTE_PROXY,
     NULL, NULL},
    {"POST /api HTTP/1.1\r\nHost: a:9090\r\nOrigin: http://evil:9090\r\n\r\n", true, true, true,
     ROUTE_CROSS_ORIGIN, NULL, NULL},
    {"POST /api HTTP/1.1\r\nHost: a:9090\r\nReferer: http://a:9091/\r\n\r\n", true, true, true,
     ROUTE_CROSS_ORIGIN, NULL, NULL},
    {"GET /api HTTP/1.1\r\nHost: a\r\n\r\n", true, true, false, ROUTE_NO_UPSTREAM, NULL, NULL},
    /* Host names qBittorrent would refuse reach neither it nor our endpoints; probes still answer */
    {"GET /api HTTP/1.1\r\nHost: qbt.lan:9090\r\n\r\n", true, true, true, ROUTE_PROXY, "qbt.lan", NULL},
    {"GET /api HTTP/1.1\r\nHost: evil.example:9090\r\n\r\n", true, true, true, ROUTE_BAD_HOST, "qbt.lan",
     NULL},
    {"GET /api HTTP/1.1\r\nHost: 127.0.0.1:9090\r\n\r\n", true, true, true, ROUTE_PROXY, "qbt.lan", NULL},
    {"POST /sync HTTP/1.1\r\nHost: evil.example\r\n\r\n", true, true, true, ROUTE_SYNC, "qbt.lan", NULL},
    {"GET /metrics HTTP/1.1\r\nHost: evil.example\r\n\r\n", true, true, true, ROUTE_METRICS, "qbt.lan", NULL},
    {"GET /api HTTP/1.1\r\nHost: evil.example\r\n\r\n", true, true, false, ROUTE_NO_UPSTREAM, "qbt.lan",
     NULL},
    {"GET /healthz HTTP/1.1\r\nHost: evil.example\r\n\r\n", true, true, true, ROUTE_HEALTHZ, "qbt.lan", NULL},
    {"GET /api HTTP/1.1\r\nHost: evil.example\r\n\r\n", false, true, true, ROUTE_DENIED, "qbt.lan", NULL},
};

static void test_routes(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof route_cases / sizeof route_cases[0]; i++) {
        const struct route_case *rc = &route_cases[i];
        struct seen seen = {0};
        struct request_reader r;
        request_reader_init(&r, HEAD_LIMIT, &events, &seen);
        assert_int_equal(feed(&r, rc->data, strlen(rc->data), 0), 0);
        struct hostcheck *hosts = NULL;
        char why[512] = "";
        if (rc->domains) {
            assert_int_equal(hostcheck_parse("", &hosts, why, sizeof why), 0);
            hostcheck_set_qbt(hosts, true, rc->domains);
        }
        struct sockaddr_storage local;
        struct request req = {0};
        request_describe(&r, &req);
        req.peer = rc->peer ? rc->peer : "192.0.2.7";
        req.peer_allowed = rc->allowed;
        req.local = unit_sockaddr("127.0.0.1", 9090, &local);
        const struct route_context ctx = {rc->have_sync, rc->have_proxy, hosts};
        enum route route = endpoints_route_of(&req, &ctx, why, sizeof why);
        if (route != rc->route)
            fail_msg("case %zu (%.30s): route %d, want %d", i, rc->data, route, rc->route);
        if (route == ROUTE_CROSS_ORIGIN || route == ROUTE_BAD_HOST || route == ROUTE_HOST_UNCHECKED)
            assert_true(strlen(why) > 0);
        hostcheck_free(hosts);
        request_reader_free(&r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_cases),
        cmocka_unit_test(test_head_limit),
        cmocka_unit_test(test_head_complete_follows_the_request),
        cmocka_unit_test(test_next_head_always_scanned),
        cmocka_unit_test(test_paused_head_then_empty_feed),
        cmocka_unit_test(test_done_stays_done),
        cmocka_unit_test(test_routes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
