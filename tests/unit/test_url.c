/* test_url.c - unit tests for url.c: parsing QBIT_ADDR into host, port and prefix. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "url.h"

/* Parses text, failing the test with the parser's message when it is rejected. */
static void parse_ok(const char *text, struct url *u)
{
    char err[256] = "";
    memset(u, 0x5a, sizeof *u);
    int rc = url_parse(text, u, err, sizeof err);
    if (rc != 0) {
        fail_msg("url_parse(\"%s\") failed: %s", text, err);
    }
}

static void test_name_with_port(void **state)
{
    (void)state;
    struct url u;
    parse_ok("http://localhost:8080", &u);
    assert_int_equal(u.https, 0);
    assert_string_equal(u.host, "localhost");
    assert_int_equal(u.host_is_ipv6, 0);
    assert_int_equal(u.port, 8080);
    assert_int_equal(u.port_explicit, 1);
    assert_string_equal(u.prefix, "");
    assert_string_equal(u.authority, "localhost:8080");
    assert_string_equal(u.origin, "http://localhost:8080");
}

static void test_ipv4_default_port(void **state)
{
    (void)state;
    struct url u;
    parse_ok("http://127.0.0.1", &u);
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.host_is_ipv6, 0);
    assert_int_equal(u.port, 80);
    assert_int_equal(u.port_explicit, 0);
    assert_string_equal(u.prefix, "");
    assert_string_equal(u.authority, "127.0.0.1");
    assert_string_equal(u.origin, "http://127.0.0.1");
}

static void test_ipv6_with_prefix(void **state)
{
    (void)state;
    struct url u;
    parse_ok("http://[::1]:8080/qbt/", &u);
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.host_is_ipv6, 1);
    assert_int_equal(u.port, 8080);
    assert_int_equal(u.port_explicit, 1);
    assert_string_equal(u.prefix, "/qbt");
    assert_string_equal(u.authority, "[::1]:8080");
    assert_string_equal(u.origin, "http://[::1]:8080");
}

static void test_ipv6_default_port(void **state)
{
    (void)state;
    struct url u;
    parse_ok("http://[2001:db8::1]", &u);
    assert_string_equal(u.host, "2001:db8::1");
    assert_int_equal(u.host_is_ipv6, 1);
    assert_int_equal(u.port, 80);
    assert_string_equal(u.authority, "[2001:db8::1]");
    assert_string_equal(u.origin, "http://[2001:db8::1]");
}

static void test_prefix_forms(void **state)
{
    (void)state;
    struct url u;
    parse_ok("http://localhost:8080/", &u);
    assert_string_equal(u.prefix, "");
    parse_ok("http://host/qbt", &u);
    assert_string_equal(u.prefix, "/qbt");
    assert_int_equal(u.port, 80);
    parse_ok("http://host/a/b/", &u);
    assert_string_equal(u.prefix, "/a/b");
}

/* The scheme is case-insensitive (RFC 3986 section 3.1); so is the host name. */
static void test_scheme_case_insensitive(void **state)
{
    (void)state;
    struct url u;
    parse_ok("HTTP://Example.com:1", &u);
    assert_int_equal(u.https, 0);
    assert_true(strcasecmp(u.host, "example.com") == 0);
    assert_int_equal(u.port, 1);
    assert_int_equal(u.port_explicit, 1);
    assert_true(strcasecmp(u.authority, "example.com:1") == 0);
    assert_true(strcasecmp(u.origin, "http://example.com:1") == 0);
}

static void test_https_parses(void **state)
{
    (void)state;
    struct url u;
    parse_ok("https://x", &u);
    assert_int_equal(u.https, 1);
    assert_string_equal(u.host, "x");
    assert_int_equal(u.port, 443);
    assert_int_equal(u.port_explicit, 0);
    assert_string_equal(u.authority, "x");
    assert_string_equal(u.origin, "https://x");
}

static void test_port_bounds_accepted(void **state)
{
    (void)state;
    struct url u;
    parse_ok("http://host:65535", &u);
    assert_int_equal(u.port, 65535);
    parse_ok("http://host:1", &u);
    assert_int_equal(u.port, 1);
    /* An explicit default port is still explicit, and kept in Host. */
    parse_ok("http://host:80", &u);
    assert_int_equal(u.port, 80);
    assert_int_equal(u.port_explicit, 1);
    assert_string_equal(u.authority, "host:80");
}

struct error_case {
    const char *text;
    /* The message must contain one of these words (case-insensitive), '|'-separated; NULL for any. */
    const char *words;
};

static const struct error_case error_cases[] = {
    {"", NULL},
    {"localhost:8080", "scheme|http://"},
    {"ftp://x", "scheme|ftp"},
    {"http:/x", "scheme|http://"},
    {"http://", "host"},
    {"http://:8080", "host"},
    {"http:///qbt", "host"},
    {"http://host:", "port"},
    {"http://host:0", "port"},
    {"http://host:65536", "port"},
    {"http://host:4294967376", "port"},
    {"http://host:80a", "port"},
    {"http://host:-1", "port"},
    {"http://host:+80", "port"},
    {"http://host: 80", "port"},
    {"http://user@host", "user|@|credential"},
    {"http://user:pw@host:80", "user|@|credential"},
    {"http://[::1", "]|bracket"},
    {"http://[::1]x", "]|bracket|port"},
    {"http://[fe80::1%25eth0]", "zone|%|scope"},
    {"http://[not-an-ip]", "ipv6|address|not-an-ip"},
    {"http://[10.0.0.1]", "ipv6|address|10.0.0.1"},
    {"http://::1:8080", "bracket|[|ipv6|host|port"},
    {"http://host/path?query", "query|?"},
    {"http://host?query", "query|?"},
    {"http://host/#frag", "fragment|#"},
    {"http://ho st", "host|space|character"},
    {"http://host/pa th", "path|prefix|space|character"},
};

/* Returns 1 when haystack contains one of the '|'-separated words, ignoring case. */
static int contains_any(const char *haystack, const char *words)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s", words);
    char *save = NULL;
    for (char *w = strtok_r(buf, "|", &save); w != NULL; w = strtok_r(NULL, "|", &save)) {
        if (strcasestr(haystack, w) != NULL) {
            return 1;
        }
    }
    return 0;
}

static void test_error_table(void **state)
{
    (void)state;
    int failures = 0;
    for (size_t i = 0; i < sizeof error_cases / sizeof error_cases[0]; i++) {
        const struct error_case *c = &error_cases[i];
        struct url u;
        char err[256] = "";
        int rc = url_parse(c->text, &u, err, sizeof err);
        if (rc != -1) {
            print_error("url_parse(\"%s\") returned %d, want -1\n", c->text, rc);
            failures++;
        } else if (err[0] == '\0') {
            print_error("url_parse(\"%s\") gave no error message\n", c->text);
            failures++;
        } else if (c->words != NULL && !contains_any(err, c->words)) {
            print_error("url_parse(\"%s\"): error \"%s\" mentions none of %s\n", c->text, err, c->words);
            failures++;
        }
    }
    assert_int_equal(failures, 0);
}

/* A host or prefix too long for struct url is refused, never truncated. */
static void test_too_long_refused(void **state)
{
    (void)state;
    static char text[URL_PREFIX_MAX + 64];
    struct url u;
    char err[256];

    memset(text, 0, sizeof text);
    memcpy(text, "http://", 7);
    memset(text + 7, 'a', URL_HOST_MAX + 10);
    err[0] = '\0';
    assert_int_equal(url_parse(text, &u, err, sizeof err), -1);
    assert_true(err[0] != '\0');

    memset(text, 0, sizeof text);
    memcpy(text, "http://h/", 9);
    memset(text + 9, 'p', URL_PREFIX_MAX + 10);
    err[0] = '\0';
    assert_int_equal(url_parse(text, &u, err, sizeof err), -1);
    assert_true(err[0] != '\0');
}

/* The longest host that fits (URL_HOST_MAX - 1 characters) is accepted whole. */
static void test_longest_host_fits(void **state)
{
    (void)state;
    static char text[URL_HOST_MAX + 32];
    static char host[URL_HOST_MAX];
    memset(host, 'a', URL_HOST_MAX - 1);
    host[URL_HOST_MAX - 1] = '\0';
    /* A DNS label is at most 63 characters; dots keep the name plausible. */
    for (size_t i = 63; i < URL_HOST_MAX - 1; i += 64) {
        host[i] = '.';
    }
    snprintf(text, sizeof text, "http://%s:8080", host);
    struct url u;
    parse_ok(text, &u);
    assert_string_equal(u.host, host);
    assert_int_equal(strlen(u.authority), strlen(host) + 5);
}

/* A small err buffer is filled but never overrun. */
static void test_small_err_buffer(void **state)
{
    (void)state;
    char err[8];
    struct url u;
    memset(err, 'x', sizeof err);
    assert_int_equal(url_parse("ftp://some-long-host-name", &u, err, 4), -1);
    assert_true(memchr(err, '\0', 4) != NULL);
    assert_int_equal(err[4], 'x');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_name_with_port),    cmocka_unit_test(test_ipv4_default_port),
        cmocka_unit_test(test_ipv6_with_prefix),  cmocka_unit_test(test_ipv6_default_port),
        cmocka_unit_test(test_prefix_forms),      cmocka_unit_test(test_scheme_case_insensitive),
        cmocka_unit_test(test_https_parses),      cmocka_unit_test(test_port_bounds_accepted),
        cmocka_unit_test(test_error_table),       cmocka_unit_test(test_too_long_refused),
        cmocka_unit_test(test_longest_host_fits), cmocka_unit_test(test_small_err_buffer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
