/*
 * test_http.c - unit tests for http.c: the capture of a head from llhttp's fragments and its bounds,
 * header lookup and lists, the strict chunked framing check, the response checks, and the heads the
 * sidecar writes itself.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "http.h"
#include "unit_head.h"

static void test_fragments_make_one_field(void **state)
{
    (void)state;
    struct http_head h;
    http_head_init(&h, 1024);
    /* llhttp hands a field over in pieces where a read ended: they join. */
    assert_int_equal(http_head_add_url(&h, "/a", 2), 0);
    assert_int_equal(http_head_add_url(&h, "pi", 2), 0);
    assert_int_equal(http_head_add_field(&h, "Con", 3), 0);
    assert_int_equal(http_head_add_field(&h, "tent-Type", 9), 0);
    assert_int_equal(http_head_add_value(&h, "text/", 5), 0);
    assert_int_equal(http_head_add_value(&h, "plain", 5), 0);
    assert_int_equal(http_head_add_field(&h, "X", 1), 0);
    assert_int_equal(http_head_add_value(&h, "1", 1), 0);
    size_t len;
    const char *url = http_head_url(&h, &len);
    assert_int_equal(len, 4);
    assert_memory_equal(url, "/api", 4);
    assert_int_equal(h.count, 2);
    const char *v = http_head_find(&h, "content-type", &len);
    assert_non_null(v);
    assert_int_equal(len, 10);
    assert_memory_equal(v, "text/plain", 10);
    assert_true(http_header_is(&h, 0, "CONTENT-TYPE"));
    assert_false(http_header_is(&h, 1, "content-type"));
    assert_null(http_head_find(&h, "content", &len)); /* whole names only */
    http_head_reset(&h);
    assert_int_equal(h.count, 0);
    assert_null(http_head_find(&h, "x", &len));
    http_head_free(&h);
}

static void test_head_bounds(void **state)
{
    (void)state;
    struct http_head h;
    http_head_init(&h, 64);
    char big[65];
    memset(big, 'a', sizeof big);
    assert_int_equal(http_head_add_url(&h, big, 60), 0);
    assert_int_equal(http_head_add_field(&h, big, 10), -E2BIG); /* past the byte limit */
    http_head_free(&h);

    http_head_init(&h, 1 << 20);
    int rc = 0;
    unsigned i = 0;
    for (; i <= HTTP_MAX_HEADERS && rc == 0; i++) {
        rc = http_head_add_field(&h, "X", 1);
        if (rc == 0)
            rc = http_head_add_value(&h, "v", 1);
    }
    assert_int_equal(rc, -E2BIG); /* past the field count */
    assert_int_equal(i, HTTP_MAX_HEADERS + 1);
    http_head_free(&h);
}

static void test_list_tokens(void **state)
{
    (void)state;
    static const struct {
        const char *value;
        const char *tokens; /* joined with '|' */
    } cases[] = {
        {"keep-alive", "keep-alive"},
        {"a, b,,c", "a|b|c"},
        {"  close ,\tUpgrade  ", "close|Upgrade"},
        {"", ""},
        {" , ,", ""},
        {"gzip, chunked", "gzip|chunked"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *pos = cases[i].value, *end = pos + strlen(pos), *tok;
        char got[64] = "";
        size_t len, at = 0;
        while ((tok = http_list_next(&pos, end, &len)) != NULL)
            at += (size_t)snprintf(got + at, sizeof got - at, "%s%.*s", at ? "|" : "", (int)len, tok);
        if (strcmp(got, cases[i].tokens) != 0)
            fail_msg("\"%s\": tokens \"%s\", want \"%s\"", cases[i].value, got, cases[i].tokens);
    }
}

/* Feeds body (a NUL-free string) to a chunk check in pieces of piece bytes; returns its last result. */
static int check_chunks(const char *body, size_t piece, size_t *used_total)
{
    struct chunk_check cc;
    memset(&cc, 0, sizeof cc);
    size_t len = strlen(body), at = 0;
    while (at < len) {
        size_t n = piece < len - at ? piece : len - at, used = 0;
        int rc = chunk_check_feed(&cc, body + at, n, &used);
        if (rc != 0) {
            *used_total = at + (rc == 1 ? used : 0);
            return rc;
        }
        at += n;
    }
    *used_total = at;
    return 0;
}

static void test_chunk_framing(void **state)
{
    (void)state;
    static const struct {
        const char *body;
        int result;  /* 1 ends, 0 wants more, -1 malformed */
        size_t used; /* with 1: where the body ended */
    } cases[] = {
        {"5\r\nhello\r\n0\r\n\r\nGET", 1, 15},
        {"5;a=b\r\nhello\r\n0\r\nX-T: 1\r\n\r\n", 1, 27},
        {"A\r\n0123456789\r\n0\r\n\r\n", 1, 20},
        {"5\r\nhello\r\n", 0, 0},
        {"5\nhello\r\n0\r\n\r\n", -1, 0},                         /* bare LF after the size */
        {"5\r\nhello\n0\r\n\r\n", -1, 0},                         /* bare LF after the data */
        {"5\r\nhelloX\r\n", -1, 0},                               /* data longer than its size */
        {"x\r\n", -1, 0},                                         /* no size */
        {"10000000000000000\r\n", -1, 0},                         /* 17 significant digits */
        {"00000000000000000000005\r\nhello\r\n0\r\n\r\n", 1, 37}, /* leading zeros do not count */
        {"5\r\nhello\r\n0\r\nX-T: 1\r\n 2\r\n\r\n", -1, 0},       /* a folded trailer */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        for (size_t piece = 1; piece <= 64; piece *= 4) {
            size_t used = 0;
            int rc = check_chunks(cases[i].body, piece, &used);
            if (rc != cases[i].result || (rc == 1 && used != cases[i].used))
                fail_msg("case %zu in pieces of %zu: %d (used %zu), want %d (used %zu)", i, piece, rc, used,
                         cases[i].result, cases[i].used);
        }
    }
}

static void test_response_checks(void **state)
{
    (void)state;
    assert_null(http_reason_problem("OK", 2));
    assert_null(http_reason_problem("Not\tFound", 9));
    assert_non_null(http_reason_problem("O\x01K", 3));
    assert_non_null(http_reason_problem("OK\x7f", 3));

    static const struct {
        int status;
        const char *const fields[6];
        int problem;
    } cases[] = {
        {200, {"Content-Length", "2", NULL}, 0},
        {200, {"Transfer-Encoding", "chunked", NULL}, 0},
        {200, {"Transfer-Encoding", "Chunked", NULL}, 0},
        {99, {NULL}, 1},
        {600, {NULL}, 1},
        {200, {"", "v", NULL}, 1},
        {200, {"Transfer-Encoding", "gzip", NULL}, 1},
        {200, {"Transfer-Encoding", "gzip, chunked", NULL}, 1},
        {200, {"Transfer-Encoding", "chunked", "Transfer-Encoding", "chunked", NULL}, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct http_head h;
        http_head_init(&h, 1024);
        assert_int_equal(unit_head(&h, "OK", cases[i].fields), 0);
        const char *why = http_response_problem(&h, cases[i].status);
        if ((why != NULL) != cases[i].problem)
            fail_msg("case %zu: %s", i, why ? why : "no problem");
        http_head_free(&h);
    }
}

static void test_own_heads(void **state)
{
    (void)state;
    char buf[512];
    int n = http_format_head(buf, sizeof buf, 421, NULL, "Retry-After: 5\r\n", 12, 1);
    assert_true(n > 0);
    assert_string_equal(buf, "HTTP/1.1 421 Misdirected Request\r\n"
                             "Content-Type: text/plain; charset=utf-8\r\n"
                             "Content-Length: 12\r\n"
                             "Cache-Control: no-store\r\n"
                             "X-Content-Type-Options: nosniff\r\n"
                             "Retry-After: 5\r\n"
                             "Connection: keep-alive\r\n\r\n");
    n = http_format_head(buf, sizeof buf, 200, "application/json", NULL, 0, 0);
    assert_non_null(strstr(buf, "Content-Type: application/json\r\n"));
    assert_non_null(strstr(buf, "Connection: close\r\n\r\n"));
    assert_int_equal(http_format_head(buf, 40, 200, NULL, NULL, 0, 1),
                     -1); /* does not fit: refused, not cut */
    assert_string_equal(http_status_reason(503), "Service Unavailable");
    assert_string_equal(http_status_reason(299), "Unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fragments_make_one_field),
        cmocka_unit_test(test_head_bounds),
        cmocka_unit_test(test_list_tokens),
        cmocka_unit_test(test_chunk_framing),
        cmocka_unit_test(test_response_checks),
        cmocka_unit_test(test_own_heads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
