/* test_portfile.c - unit tests for portfile.c: parsing Gluetun's forwarded-port file. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "portfile.h"

struct parse_case {
    const char *name; /* shown when the case fails */
    const char *data;
    size_t len;                    /* the bytes of data parsed (may hold NULs) */
    enum portfile_result expected; /* the result */
    uint16_t port;                 /* for PORTFILE_PORT */
};

/* A case whose data is a string literal, NULs included (sizeof - 1 keeps embedded NULs). */
#define CASE(data, expected, port) {#data, data, sizeof(data) - 1, expected, port}

static const struct parse_case cases[] = {
    /* one port, as Gluetun writes it (no trailing newline), and with whitespace around it */
    CASE("51413", PORTFILE_PORT, 51413), CASE("51413\n", PORTFILE_PORT, 51413),
    CASE("  51413  ", PORTFILE_PORT, 51413), CASE("\t51413\r\n", PORTFILE_PORT, 51413),
    CASE("1", PORTFILE_PORT, 1), CASE("65535", PORTFILE_PORT, 65535),
    /* several ports (ProtonVPN): the first counts */
    CASE("51413\n51414\n51415", PORTFILE_PORT, 51413), CASE("40000\n30000", PORTFILE_PORT, 40000),
    /* nothing but whitespace: forwarding is down, or the file is being rewritten */
    CASE("", PORTFILE_EMPTY, 0), CASE("\n  ", PORTFILE_EMPTY, 0), CASE(" \t\r\n", PORTFILE_EMPTY, 0),
    /* everything else is refused */
    CASE("0", PORTFILE_INVALID, 0), CASE("00000", PORTFILE_INVALID, 0), CASE("65536", PORTFILE_INVALID, 0),
    /* one rule for leading zeros, whatever the length: Gluetun never writes them */
    CASE("00001", PORTFILE_INVALID, 0), CASE("040000", PORTFILE_INVALID, 0),
    CASE("0080", PORTFILE_INVALID, 0), CASE("01", PORTFILE_INVALID, 0),
    CASE("51413\n040000", PORTFILE_INVALID, 0), CASE("-1", PORTFILE_INVALID, 0),
    CASE("+80", PORTFILE_INVALID, 0), CASE("80a", PORTFILE_INVALID, 0), CASE("8 0", PORTFILE_INVALID, 0),
    CASE("0x50", PORTFILE_INVALID, 0), CASE("abc", PORTFILE_INVALID, 0), CASE("hello", PORTFILE_INVALID, 0),
    CASE("\x00", PORTFILE_INVALID, 0),
    CASE("514\x00"
         "13",
         PORTFILE_INVALID, 0),
    CASE("51413\x00", PORTFILE_INVALID, 0), CASE("99999999999999999999", PORTFILE_INVALID, 0),
    CASE("4294967297", PORTFILE_INVALID, 0), CASE("80.5", PORTFILE_INVALID, 0),
    CASE("\xd9\xa8\xd9\xa0", PORTFILE_INVALID, 0), /* Arabic-Indic "80": digits, but not ASCII */
};

static const char *result_name(enum portfile_result r)
{
    switch (r) {
    case PORTFILE_PORT:
        return "PORT";
    case PORTFILE_EMPTY:
        return "EMPTY";
    case PORTFILE_INVALID:
        return "INVALID";
    }
    return "?";
}

static void check_case(const struct parse_case *c)
{
    uint16_t port = 0;
    char err[256];
    memset(err, 0, sizeof err);
    enum portfile_result r = portfile_parse(c->data, c->len, &port, err, sizeof err);
    if (r != c->expected)
        fail_msg("portfile_parse(%s): got %s, expected %s (port %u, err \"%s\")", c->name, result_name(r),
                 result_name(c->expected), port, err);
    if (c->expected == PORTFILE_PORT && port != c->port)
        fail_msg("portfile_parse(%s): port %u, expected %u", c->name, port, c->port);
    if (c->expected == PORTFILE_INVALID && err[0] == '\0')
        fail_msg("portfile_parse(%s): INVALID without a reason in err", c->name);
}

static void test_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_case(&cases[i]);
}

/* Only len bytes count: a valid port followed by junk outside len is still valid. */
static void test_len_bounds_the_input(void **state)
{
    (void)state;
    uint16_t port = 0;
    char err[128] = "";
    assert_int_equal(portfile_parse("8080junk", 4, &port, err, sizeof err), PORTFILE_PORT);
    assert_int_equal(port, 8080);
    assert_int_equal(portfile_parse("   8080", 3, &port, err, sizeof err), PORTFILE_EMPTY);
}

/* The reason quotes the bad content, with control bytes escaped, and fits any err buffer. */
static void test_reason_quotes_content(void **state)
{
    (void)state;
    uint16_t port = 0;
    char err[256] = "";
    assert_int_equal(portfile_parse("hello", 5, &port, err, sizeof err), PORTFILE_INVALID);
    assert_non_null(strstr(err, "hello"));

    static const char nul[] = "514\x00"
                              "13";
    memset(err, 0, sizeof err);
    assert_int_equal(portfile_parse(nul, sizeof nul - 1, &port, err, sizeof err), PORTFILE_INVALID);
    assert_true(strlen(err) > 0);
    assert_null(memchr(err, '\n', strlen(err)));

    char small[8];
    memset(small, 'x', sizeof small);
    assert_int_equal(portfile_parse("hello world", 11, &port, small, sizeof small), PORTFILE_INVALID);
    assert_non_null(memchr(small, '\0', sizeof small));
}

/* The most the watcher hands over: PORTFILE_MAX bytes of digits is not a port. */
static void test_large_input(void **state)
{
    (void)state;
    static char digits[PORTFILE_MAX];
    memset(digits, '7', sizeof digits);
    uint16_t port = 0;
    char err[256] = "";
    assert_int_equal(portfile_parse(digits, sizeof digits, &port, err, sizeof err), PORTFILE_INVALID);
    assert_true(strlen(err) > 0);
    assert_true(strlen(err) < 200);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_len_bounds_the_input),
        cmocka_unit_test(test_reason_quotes_content),
        cmocka_unit_test(test_large_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
