/* test_allowlist.c - unit tests for allowlist.c: parsing ALLOWED_IPS and matching peers. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "unit_addr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "allowlist.h"

/* The peer address in text; a text that is no address is a mistake in the table. */
static const struct sockaddr *peer_from(const char *text, struct sockaddr_storage *ss)
{
    const struct sockaddr *sa = unit_sockaddr(text, 40000, ss);
    if (!sa)
        fail_msg("bad peer address in test table: %s", text);
    return sa;
}

/* Parses text, failing the test with the parser's message when it is rejected. */
static struct allowlist *parse_ok(const char *text)
{
    struct allowlist *list = NULL;
    char err[256] = "";
    int rc = allowlist_parse(text, &list, err, sizeof err);
    if (rc != 0) {
        fail_msg("allowlist_parse(\"%s\") failed: %s", text, err);
    }
    assert_non_null(list);
    return list;
}

struct match_case {
    const char *list;
    const char *peer;
    int expect;
};

/*
 * Every row is one list, one peer and whether the peer is allowed. Edge
 * prefixes are checked with the addresses just inside and just outside.
 */
static const struct match_case match_cases[] = {
    /* A bare IPv4 address is a /32. */
    {"10.0.0.1", "10.0.0.1", 1},
    {"10.0.0.1", "10.0.0.2", 0},
    {"10.0.0.1", "10.0.0.0", 0},
    {"10.0.0.1", "11.0.0.1", 0},
    /* A bare IPv6 address is a /128. */
    {"::1", "::1", 1},
    {"::1", "::2", 0},
    {"::1", "::", 0},
    {"2001:db8::1", "2001:db8::1", 1},
    {"2001:db8::1", "2001:db8:0:0:1::1", 0},
    /* Plain CIDRs. */
    {"10.0.0.0/8", "10.0.0.0", 1},
    {"10.0.0.0/8", "10.255.255.255", 1},
    {"10.0.0.0/8", "10.1.2.3", 1},
    {"10.0.0.0/8", "9.255.255.255", 0},
    {"10.0.0.0/8", "11.0.0.0", 0},
    {"172.16.0.0/12", "172.16.0.0", 1},
    {"172.16.0.0/12", "172.31.255.255", 1},
    {"172.16.0.0/12", "172.15.255.255", 0},
    {"172.16.0.0/12", "172.32.0.0", 0},
    {"192.168.1.0/24", "192.168.1.77", 1},
    {"192.168.1.0/24", "192.168.2.77", 0},
    {"fd00::/8", "fd12:3456::1", 1},
    {"fd00::/8", "fe00::1", 0},
    {"2001:db8:8000::/33", "2001:db8:ffff:ffff::1", 1},
    {"2001:db8:8000::/33", "2001:db8:7fff:ffff::1", 0},
    /* Several entries, spaces around entries and commas. */
    {"10.0.0.0/8 , 192.168.1.0/24", "10.9.8.7", 1},
    {"10.0.0.0/8 , 192.168.1.0/24", "192.168.1.200", 1},
    {"10.0.0.0/8 , 192.168.1.0/24", "192.168.2.1", 0},
    {"10.0.0.0/8 , 192.168.1.0/24", "::1", 0},
    {"  10.0.0.1  ", "10.0.0.1", 1},
    {" 10.0.0.1 ,  ::1 ", "::1", 1},
    {"127.0.0.1/32,10.0.0.0/8,192.168.0.0/16", "192.168.200.1", 1},
    {"192.168.1.0/24, 10.0.0.1", "10.0.0.1", 1},
    {"10.0.0.0/8, ::1", "::1", 1},
    {"10.0.0.0/8, ::1", "::2", 0},
    /* IPv6 in brackets, with and without a prefix. */
    {"[::1]", "::1", 1},
    {"[::1]", "::2", 0},
    {"[fd00::]/8", "fd00::1", 1},
    {"[fd00::]/8", "fdff:ffff::1", 1},
    {"[fd00::]/8", "fc00::1", 0},
    {"[fd00::]/8", "fe00::1", 0},
    {" [2001:db8::]/32 ", "2001:db8:1::1", 1},
    /* Upper-case hex is an IPv6 address like any other. */
    {"FD00::/8", "fd00::1", 1},
    /* /0 */
    {"0.0.0.0/0", "0.0.0.0", 1},
    {"0.0.0.0/0", "1.2.3.4", 1},
    {"0.0.0.0/0", "255.255.255.255", 1},
    {"::/0", "::", 1},
    {"::/0", "::1", 1},
    {"::/0", "2001:db8::1", 1},
    {"::/0", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 1},
    /* /1 */
    {"128.0.0.0/1", "128.0.0.0", 1},
    {"128.0.0.0/1", "255.255.255.255", 1},
    {"128.0.0.0/1", "127.255.255.255", 0},
    {"0.0.0.0/1", "127.255.255.255", 1},
    {"0.0.0.0/1", "128.0.0.0", 0},
    {"8000::/1", "8000::", 1},
    {"8000::/1", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 1},
    {"8000::/1", "7fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 0},
    /* /31 */
    {"10.0.0.2/31", "10.0.0.2", 1},
    {"10.0.0.2/31", "10.0.0.3", 1},
    {"10.0.0.2/31", "10.0.0.1", 0},
    {"10.0.0.2/31", "10.0.0.4", 0},
    /* /32 */
    {"10.0.0.7/32", "10.0.0.7", 1},
    {"10.0.0.7/32", "10.0.0.6", 0},
    {"10.0.0.7/32", "10.0.0.8", 0},
    {"255.255.255.255/32", "255.255.255.255", 1},
    {"255.255.255.255/32", "255.255.255.254", 0},
    /* /127 */
    {"2001:db8::2/127", "2001:db8::2", 1},
    {"2001:db8::2/127", "2001:db8::3", 1},
    {"2001:db8::2/127", "2001:db8::1", 0},
    {"2001:db8::2/127", "2001:db8::4", 0},
    /* /128 */
    {"2001:db8::5/128", "2001:db8::5", 1},
    {"2001:db8::5/128", "2001:db8::4", 0},
    {"2001:db8::5/128", "2001:db8::6", 0},
    {"::1/128", "::1", 1},
    /* Host bits set: accepted, and the whole network matches. */
    {"192.168.1.5/24", "192.168.1.200", 1},
    {"192.168.1.5/24", "192.168.1.0", 1},
    {"192.168.1.5/24", "192.168.1.5", 1},
    {"192.168.1.5/24", "192.168.2.5", 0},
    {"fd00::1234/8", "fdaa::1", 1},
    {"fd00::1234/8", "fe00::1234", 0},
    /* An IPv4-mapped IPv6 peer is matched as IPv4. */
    {"10.0.0.0/8", "::ffff:10.1.2.3", 1},
    {"10.0.0.0/8", "::ffff:11.1.2.3", 0},
    {"127.0.0.1", "::ffff:127.0.0.1", 1},
    {"127.0.0.1/32", "::ffff:127.0.0.2", 0},
    {"0.0.0.0/0", "::ffff:1.2.3.4", 1},
    {"::/0", "::ffff:10.1.2.3", 0},
    {"::1", "::ffff:127.0.0.1", 0},
    /* 0.0.0.0/0 covers IPv4 only and ::/0 IPv6 only. */
    {"::/0", "10.1.2.3", 0},
    {"::/0", "127.0.0.1", 0},
    {"0.0.0.0/0", "::1", 0},
    {"0.0.0.0/0", "2001:db8::1", 0},
    {"0.0.0.0/0,::/0", "::1", 1},
    {"0.0.0.0/0,::/0", "10.1.2.3", 1},
    /* Empty and blank lists deny everyone. */
    {"", "10.0.0.1", 0},
    {"", "::1", 0},
    {"", "::ffff:10.0.0.1", 0},
    {"  ", "127.0.0.1", 0},
    {"  ", "::1", 0},
};

static void test_match_table(void **state)
{
    (void)state;
    int failures = 0;
    for (size_t i = 0; i < sizeof match_cases / sizeof match_cases[0]; i++) {
        const struct match_case *c = &match_cases[i];
        struct sockaddr_storage ss;
        struct allowlist *list = parse_ok(c->list);
        int got = allowlist_match(list, peer_from(c->peer, &ss));
        allowlist_free(list);
        if (got != c->expect) {
            print_error("list \"%s\", peer %s: got %d, want %d\n", c->list, c->peer, got, c->expect);
            failures++;
        }
    }
    assert_int_equal(failures, 0);
}

struct reject_case {
    const char *list;
    const char *needle; /* text the error message must contain */
};

static const struct reject_case reject_cases[] = {
    {"10.0.0.256", "10.0.0.256"},
    {"256.0.0.0/8", "256.0.0.0/8"},
    {"10.0.0.0/33", "10.0.0.0/33"},
    {"::1/129", "::1/129"},
    {"fe80::1%eth0", "fe80::1%eth0"},
    {"[fe80::1%eth0]", "fe80::1%eth0"},
    {"localhost", "localhost"},
    {"example.com", "example.com"},
    {"10.0.0.0/", "10.0.0.0/"},
    {"10.0.0.0/-1", "10.0.0.0/-1"},
    {"10.0.0.0/+8", "10.0.0.0/+8"},
    {"10.0.0.0/8/8", "10.0.0.0/8/8"},
    {"10.0.0.0/8a", "10.0.0.0/8a"},
    {"10.0.0.0/0x8", "10.0.0.0/0x8"},
    {"10.0.0.0/4294967304", "10.0.0.0/4294967304"},
    {"/8", "/8"},
    {"1.2.3", "1.2.3"},
    {"1.2.3.4.5", "1.2.3.4.5"},
    {"[10.0.0.1]", "[10.0.0.1]"},
    {"[10.0.0.0]/8", "[10.0.0.0]/8"},
    {"[::1", "[::1"},
    {"::1]", "::1]"},
    {"[::1]x", "[::1]x"},
    {":::1", ":::1"},
    {"10.0.0.1 10.0.0.2", "10.0.0.1 10.0.0.2"},
    /* A bad entry after good ones is named, not its neighbours. */
    {"10.0.0.0/8, 300.1.1.1", "300.1.1.1"},
    {"::1, 10.0.0.0/8, bogus, 192.168.0.0/16", "bogus"},
};

static void test_reject_table(void **state)
{
    (void)state;
    int failures = 0;
    for (size_t i = 0; i < sizeof reject_cases / sizeof reject_cases[0]; i++) {
        const struct reject_case *c = &reject_cases[i];
        struct allowlist *list = NULL;
        char err[256] = "";
        int rc = allowlist_parse(c->list, &list, err, sizeof err);
        if (rc != -1) {
            allowlist_free(list);
            print_error("allowlist_parse(\"%s\") returned %d, want -1\n", c->list, rc);
            failures++;
        } else if (strstr(err, c->needle) == NULL) {
            print_error("allowlist_parse(\"%s\"): error \"%s\" does not name \"%s\"\n", c->list, err,
                        c->needle);
            failures++;
        }
    }
    assert_int_equal(failures, 0);
}

/* An empty entry (doubled or trailing comma) is a mistake, not a no-op. */
static void test_reject_empty_entries(void **state)
{
    (void)state;
    static const char *const lists[] = {
        ",", ",,", "10.0.0.1,", ",10.0.0.1", "10.0.0.1,,10.0.0.2", "10.0.0.1, ,10.0.0.2",
    };
    for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++) {
        struct allowlist *list = NULL;
        char err[256] = "";
        int rc = allowlist_parse(lists[i], &list, err, sizeof err);
        if (rc != -1) {
            allowlist_free(list);
            fail_msg("allowlist_parse(\"%s\") returned %d, want -1", lists[i], rc);
        }
        if (strstr(err, "empty") == NULL) {
            fail_msg("allowlist_parse(\"%s\"): error \"%s\" does not mention an empty entry", lists[i], err);
        }
    }
}

static void test_empty_and_blank_are_empty_lists(void **state)
{
    (void)state;
    static const char *const texts[] = {"", " ", "  "};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        struct allowlist *list = parse_ok(texts[i]);
        assert_int_equal(allowlist_count(list), 0);
        allowlist_free(list);
    }
}

static void test_count_and_format(void **state)
{
    (void)state;
    char buf[64];
    struct allowlist *list = parse_ok("10.0.0.0/8, ::1, 192.168.1.7, [fd00::]/8, FD12::/16");
    assert_int_equal(allowlist_count(list), 5);
    assert_string_equal(allowlist_entry_format(list, 0, buf, sizeof buf), "10.0.0.0/8");
    assert_string_equal(allowlist_entry_format(list, 1, buf, sizeof buf), "::1/128");
    assert_string_equal(allowlist_entry_format(list, 2, buf, sizeof buf), "192.168.1.7/32");
    assert_string_equal(allowlist_entry_format(list, 3, buf, sizeof buf), "fd00::/8");
    assert_string_equal(allowlist_entry_format(list, 4, buf, sizeof buf), "fd12::/16");
    allowlist_free(list);
}

/* entry_format returns the caller's buffer, and never writes past a small one. */
static void test_format_small_buffer(void **state)
{
    (void)state;
    char buf[8];
    memset(buf, 'x', sizeof buf);
    struct allowlist *list = parse_ok("192.168.100.100/32");
    char *got = allowlist_entry_format(list, 0, buf, 6);
    assert_ptr_equal(got, buf);
    assert_true(memchr(buf, '\0', 6) != NULL);
    assert_int_equal(buf[6], 'x');
    assert_int_equal(buf[7], 'x');
    allowlist_free(list);
}

static void test_free_null_is_noop(void **state)
{
    (void)state;
    allowlist_free(NULL);
}

/* A peer of another family (AF_UNIX, say) is simply not matched. */
static void test_unknown_family_denied(void **state)
{
    (void)state;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    ss.ss_family = AF_UNIX;
    struct allowlist *list = parse_ok("0.0.0.0/0, ::/0");
    assert_int_equal(allowlist_match(list, (const struct sockaddr *)&ss), 0);
    allowlist_free(list);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_match_table),          cmocka_unit_test(test_reject_table),
        cmocka_unit_test(test_reject_empty_entries), cmocka_unit_test(test_empty_and_blank_are_empty_lists),
        cmocka_unit_test(test_count_and_format),     cmocka_unit_test(test_format_small_buffer),
        cmocka_unit_test(test_free_null_is_noop),    cmocka_unit_test(test_unknown_family_denied),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
