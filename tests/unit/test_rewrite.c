/*
 * test_rewrite.c - unit tests for rewrite.c, which decides what crosses the proxy: the same-origin
 * check at the edge, and the heads sent to qBittorrent and to the client.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "rewrite.h"
#include "unit_head.h"
#include "url.h"

struct origin_case {
    const char *const fields[8];
    int ok;          /* 0: passes, -1: refused */
    const char *why; /* a part of the reason when refused */
};

static const struct origin_case origin_cases[] = {
    {{"Host", "nas:9090", NULL}, 0, NULL},                                   /* neither: nothing to check */
    {{"Host", "nas:9090", "Origin", "http://nas:9090", NULL}, 0, NULL},      /* same origin */
    {{"Host", "NAS:9090", "Origin", "http://nas:9090", NULL}, 0, NULL},      /* host names have no case */
    {{"Host", "nas", "Origin", "http://nas", NULL}, 0, NULL},                /* no port: 80 on both sides */
    {{"Host", "nas:80", "Origin", "http://nas", NULL}, 0, NULL},             /* ... written or not */
    {{"Host", "[::1]:9090", "Origin", "http://[::1]:9090", NULL}, 0, NULL},  /* IPv6 */
    {{"Host", "nas:9090", "Referer", "http://nas:9090/x?y", NULL}, 0, NULL}, /* Referer when no Origin */
    {{"Host", "nas:9090", "Origin", "http://nas:9091", NULL}, -1, "Origin"},
    {{"Host", "nas:9090", "Origin", "http://evil.example:9090", NULL}, -1, "evil.example"},
    {{"Host", "nas:9090", "Origin", "https://nas:9090", NULL}, -1, "Origin"}, /* the scheme counts too */
    {{"Host", "nas", "Origin", "https://nas", NULL}, -1, "Origin"},           /* ... and its default port */

    {{"Host", "nas:9090", "Origin", "null", NULL}, -1, "Origin"},
    {{"Host", "nas:9090", "Referer", "http://evil/", NULL}, -1, "Referer"},
    {{"Host", "nas:9090", "Origin", "http://nas:9090", "Referer", "http://evil/", NULL},
     0,
     NULL}, /* Origin wins */
    {{"Origin", "http://nas:9090", NULL}, -1, "Host"},
    {{"Host", "nas:9090", "Origin", "http://nas:0", NULL}, -1, "Origin"},
};

/* Over TLS: https:// origins, 443 when Host has no port. */
static const struct origin_case tls_origin_cases[] = {
    {{"Host", "nas:9090", "Origin", "https://nas:9090", NULL}, 0, NULL},
    {{"Host", "nas", "Origin", "https://nas", NULL}, 0, NULL},
    {{"Host", "nas:443", "Origin", "https://nas", NULL}, 0, NULL},
    {{"Host", "nas:9090", "Referer", "https://nas:9090/x", NULL}, 0, NULL},
    {{"Host", "nas:9090", "Origin", "http://nas:9090", NULL}, -1, "Origin"},
    {{"Host", "nas", "Origin", "http://nas", NULL}, -1, "Origin"},
};

static void check_origin_cases(const struct origin_case *cases, size_t n, int https)
{
    for (size_t i = 0; i < n; i++) {
        const struct origin_case *c = &cases[i];
        struct http_head h;
        http_head_init(&h, 4096);
        assert_int_equal(unit_head(&h, "/api", c->fields), 0);
        char why[300] = "";
        int rc = rewrite_check_origin(&h, https, why, sizeof why);
        if (rc != c->ok)
            fail_msg("%s case %zu: %d, want %d (%s)", https ? "TLS" : "plain", i, rc, c->ok, why);
        if (c->ok && !strstr(why, c->why))
            fail_msg("%s case %zu: reason \"%s\" does not name \"%s\"", https ? "TLS" : "plain", i, why,
                     c->why);
        http_head_free(&h);
    }
}

static void test_check_origin(void **state)
{
    (void)state;
    check_origin_cases(origin_cases, sizeof origin_cases / sizeof origin_cases[0], 0);
    check_origin_cases(tls_origin_cases, sizeof tls_origin_cases / sizeof tls_origin_cases[0], 1);
}

/* The head sent to qBittorrent for a request with these fields. */
static void request_head(const char *const *fields, const struct rewrite_request *r, char *out, size_t outlen)
{
    struct http_head h;
    http_head_init(&h, 8192);
    assert_int_equal(unit_head(&h, "/api/v2/app/version?x=1", fields), 0);
    struct buf b;
    buf_init(&b, 16384);
    assert_int_equal(rewrite_request_head(&b, &h, r), 0);
    snprintf(out, outlen, "%.*s", (int)b.len, b.data);
    buf_free(&b);
    http_head_free(&h);
}

static void test_request_head_is_qbittorrents_own(void **state)
{
    (void)state;
    struct url up;
    char err[128], out[4096];
    assert_int_equal(url_parse("http://127.0.0.1:8080/qbt", &up, err, sizeof err), 0);
    static const char *const fields[] = {"Host",
                                         "nas:9090",
                                         "Origin",
                                         "http://nas:9090",
                                         "Referer",
                                         "http://nas:9090/index.html?a=b",
                                         "User-Agent",
                                         "Firefox",
                                         "Cookie",
                                         "SID=abc",
                                         "Connection",
                                         "keep-alive, X-Secret",
                                         "X-Secret",
                                         "1",
                                         "Keep-Alive",
                                         "timeout=5",
                                         "TE",
                                         "trailers",
                                         "Upgrade",
                                         "h2c",
                                         "Expect",
                                         "100-continue",
                                         "Transfer_Encoding",
                                         "chunked",
                                         "X-Forwarded-For",
                                         "6.6.6.6",
                                         "X-Forwarded-Host",
                                         "evil",
                                         "Forwarded",
                                         "for=6.6.6.6",
                                         "X-Real-IP",
                                         "6.6.6.6",
                                         "Content-Length",
                                         "5",
                                         NULL};
    const struct rewrite_request r = {
        .method = "POST", .upstream = &up, .client_addr = "192.168.1.20", .has_body = 1, .content_length = 5};
    request_head(fields, &r, out, sizeof out);
    const char *want = "POST /qbt/api/v2/app/version?x=1 HTTP/1.1\r\n"
                       "Host: 127.0.0.1:8080\r\n"
                       "Origin: http://127.0.0.1:8080\r\n"
                       "Referer: http://127.0.0.1:8080/index.html?a=b\r\n"
                       "User-Agent: Firefox\r\n"
                       "Cookie: SID=abc\r\n"
                       "X-Forwarded-For: 192.168.1.20\r\n"
                       "X-Forwarded-Proto: http\r\n"
                       "Connection: keep-alive\r\n"
                       "Content-Length: 5\r\n"
                       "\r\n";
    assert_string_equal(out, want);
}

static void test_request_head_for_an_upgrade_keeps_upgrade(void **state)
{
    (void)state;
    struct url up;
    char err[128], out[4096];
    assert_int_equal(url_parse("http://127.0.0.1:8080", &up, err, sizeof err), 0);
    static const char *const fields[] = {"Host",      "nas:9090",          "Connection", "Upgrade", "Upgrade",
                                         "websocket", "Sec-WebSocket-Key", "k",          NULL};
    const struct rewrite_request r = {.method = "GET", .upstream = &up, .client_addr = "::1", .upgrade = 1};
    request_head(fields, &r, out, sizeof out);
    assert_non_null(strstr(out, "\r\nUpgrade: websocket\r\n"));
    assert_non_null(strstr(out, "\r\nSec-WebSocket-Key: k\r\n"));
    assert_non_null(strstr(out, "\r\nConnection: Upgrade\r\n\r\n"));
    assert_null(strstr(out, "Content-Length"));
}

static void test_request_head_referer_without_a_path(void **state)
{
    (void)state;
    struct url up;
    char err[128], out[4096];
    assert_int_equal(url_parse("http://[::1]:8080", &up, err, sizeof err), 0);
    static const char *const fields[] = {"Host", "nas:9090", "Referer", "http://nas:9090", NULL};
    const struct rewrite_request r = {.method = "GET", .upstream = &up, .client_addr = "10.0.0.2"};
    request_head(fields, &r, out, sizeof out);
    assert_non_null(strstr(out, "\r\nHost: [::1]:8080\r\n"));
    assert_non_null(strstr(out, "\r\nReferer: http://[::1]:8080/\r\n"));
}

static void test_request_head_says_https_for_a_tls_client(void **state)
{
    (void)state;
    struct url up;
    char err[128], out[4096];
    assert_int_equal(url_parse("https://qbt.lan:8443", &up, err, sizeof err), 0);
    static const char *const fields[] = {"Host", "nas:9090", "Origin", "https://nas:9090", NULL};
    const struct rewrite_request r = {
        .method = "GET", .upstream = &up, .client_addr = "10.0.0.2", .https = 1};
    request_head(fields, &r, out, sizeof out);
    assert_non_null(strstr(out, "\r\nHost: qbt.lan:8443\r\n"));
    assert_non_null(strstr(out, "\r\nOrigin: https://qbt.lan:8443\r\n"));
    assert_non_null(strstr(out, "\r\nX-Forwarded-Proto: https\r\n"));
}

/* The head sent to the client for a response with these fields. */
static void response_head(const char *reason, const char *const *fields, const struct rewrite_response *r,
                          char *out, size_t outlen)
{
    struct http_head h;
    http_head_init(&h, 8192);
    assert_int_equal(unit_head(&h, reason, fields), 0);
    struct buf b;
    buf_init(&b, 16384);
    assert_int_equal(rewrite_response_head(&b, &h, r), 0);
    snprintf(out, outlen, "%.*s", (int)b.len, b.data);
    buf_free(&b);
    http_head_free(&h);
}

static void test_response_head_reframed(void **state)
{
    (void)state;
    char out[4096];
    static const char *const fields[] = {
        "content-type", "text/plain", "set-cookie", "SID=x; HttpOnly",   "connection",
        "close, x-hop", "x-hop",      "1",          "transfer-encoding", "chunked",
        "keep-alive",   "timeout=7",  NULL};
    /* chunked from qBittorrent, re-chunked for an HTTP/1.1 client that keeps the connection */
    const struct rewrite_response chunked = {.status = 200, .framing = FRAMING_CHUNKED, .keep_alive = 1};
    response_head("OK", fields, &chunked, out, sizeof out);
    assert_string_equal(out, "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nset-cookie: SID=x; HttpOnly\r\n"
                             "Transfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n");
    /* read to close for an HTTP/1.0 client: no length, and the connection closes */
    const struct rewrite_response to_close = {.status = 200, .framing = FRAMING_CLOSE, .keep_alive = 1};
    response_head("OK", fields, &to_close, out, sizeof out);
    assert_string_equal(out, "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nset-cookie: SID=x; HttpOnly\r\n"
                             "Connection: close\r\n\r\n");
}

static void test_response_head_lengths(void **state)
{
    (void)state;
    char out[4096];
    static const char *const fields[] = {"Content-Length", "12", NULL};
    const struct rewrite_response length = {.status = 404, .framing = FRAMING_LENGTH, .content_length = 12};
    /* an empty reason phrase (qBittorrent 5.3 sends "HTTP/1.1 200 ") gets the standard one */
    response_head("", fields, &length, out, sizeof out);
    assert_string_equal(out, "HTTP/1.1 404 Not Found\r\nContent-Length: 12\r\nConnection: close\r\n\r\n");
    /* no body (a HEAD, a 304): qBittorrent's Content-Length passes as it is */
    const struct rewrite_response none = {.status = 200, .framing = FRAMING_NONE, .keep_alive = 1};
    response_head("OK", fields, &none, out, sizeof out);
    assert_string_equal(out, "HTTP/1.1 200 OK\r\nContent-Length: 12\r\nConnection: keep-alive\r\n\r\n");
}

static void test_response_head_cookie_secure_follows_the_client(void **state)
{
    (void)state;
    char out[4096];
    static const char *const plain_cookie[] = {"Set-Cookie", "SID=x; HttpOnly; SameSite=Strict; path=/",
                                               NULL};
    static const char *const secure_cookie[] = {"set-cookie", "SID=y;HttpOnly; secure ;path=/", NULL};
    const struct rewrite_response tls = {.status = 200, .framing = FRAMING_NONE, .keep_alive = 1, .https = 1};
    const struct rewrite_response plain = {.status = 200, .framing = FRAMING_NONE, .keep_alive = 1};
    /* Over TLS: Secure added where qBittorrent (4.5, or without reverse-proxy support) left it out. */
    response_head("OK", plain_cookie, &tls, out, sizeof out);
    assert_non_null(strstr(out, "\r\nSet-Cookie: SID=x; HttpOnly; SameSite=Strict; path=/; Secure\r\n"));
    response_head("OK", secure_cookie, &tls, out, sizeof out);
    assert_non_null(strstr(out, "\r\nset-cookie: SID=y; HttpOnly; secure; path=/\r\n"));
    /* Over plain HTTP: Secure removed (an HTTPS qBittorrent sets it), else the browser drops the cookie. */
    response_head("OK", secure_cookie, &plain, out, sizeof out);
    assert_non_null(strstr(out, "\r\nset-cookie: SID=y; HttpOnly; path=/\r\n"));
    response_head("OK", plain_cookie, &plain, out, sizeof out);
    assert_non_null(strstr(out, "\r\nSet-Cookie: SID=x; HttpOnly; SameSite=Strict; path=/\r\n"));
}

static void test_response_head_upgrade(void **state)
{
    (void)state;
    char out[4096];
    static const char *const fields[] = {
        "Upgrade", "websocket", "Connection", "Upgrade", "Sec-WebSocket-Accept", "a", NULL};
    const struct rewrite_response r = {.status = 101, .framing = FRAMING_NONE, .upgrade = 1};
    response_head("Switching Protocols", fields, &r, out, sizeof out);
    assert_string_equal(
        out, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: a\r\n"
             "Connection: Upgrade\r\n\r\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_origin),
        cmocka_unit_test(test_request_head_says_https_for_a_tls_client),
        cmocka_unit_test(test_response_head_cookie_secure_follows_the_client),
        cmocka_unit_test(test_request_head_is_qbittorrents_own),
        cmocka_unit_test(test_request_head_for_an_upgrade_keeps_upgrade),
        cmocka_unit_test(test_request_head_referer_without_a_path),
        cmocka_unit_test(test_response_head_reframed),
        cmocka_unit_test(test_response_head_lengths),
        cmocka_unit_test(test_response_head_upgrade),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
