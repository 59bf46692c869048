/* test_hostcheck.c - unit tests for hostcheck.c: ALLOWED_HOSTS and qBittorrent's Host rule. */
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

#include "hostcheck.h"

/* The local address in text; a text that is no address is a mistake in the table. */
static const struct sockaddr *local_from(const char *text, struct sockaddr_storage *ss)
{
    const struct sockaddr *sa = unit_sockaddr(text, 9090, ss);
    if (!sa)
        fail_msg("bad local address in test table: %s", text);
    return sa;
}

static struct hostcheck *parse_ok(const char *text)
{
    struct hostcheck *hc = NULL;
    char err[256] = "";
    if (hostcheck_parse(text, &hc, err, sizeof err) != 0)
        fail_msg("ALLOWED_HOSTS \"%s\" refused: %s", text, err);
    return hc;
}

struct allow_case {
    const char *own;     /* ALLOWED_HOSTS */
    int qbt_known;       /* qBittorrent's settings read */
    int validation;      /* web_ui_host_header_validation_enabled */
    const char *domains; /* web_ui_domain_list */
    const char *local;   /* the address the request came in on */
    const char *host;    /* the Host header, NULL for none */
    int allowed;         /* 1 passes, 0 refused, -1 cannot be checked yet */
    const char *why;     /* a part of the reason, when it does not pass */
};

static const struct allow_case allow_cases[] = {
    /* qBittorrent's own rule: the address the browser connected to passes, whatever the list. */
    {"", 1, 1, "qbt.lan", "192.168.1.5", "192.168.1.5:9090", 1, NULL},
    {"", 0, 0, "", "192.168.1.5", "192.168.1.5", 1, NULL},
    {"", 0, 0, "", "::ffff:192.168.1.5", "192.168.1.5:9090", 1, NULL},
    {"", 1, 1, "qbt.lan", "fd00::5", "[fd00::5]:9090", 1, NULL},
    {"", 1, 1, "qbt.lan", "fd00::5", "[FD00:0::5]", 1, NULL},
    /* another address is a name like any other */
    {"", 1, 1, "qbt.lan", "192.168.1.5", "192.168.1.6:9090", 0, "web_ui_domain_list"},
    /* the default list (*) passes every name; validation off passes everything */
    {"", 1, 1, "*", "192.168.1.5", "rebind.attacker.example:9090", 1, NULL},
    {"", 1, 0, "qbt.lan", "192.168.1.5", "rebind.attacker.example:9090", 1, NULL},
    /* a restricted list: names, any case, wildcards, semicolons and blanks as qBittorrent splits them */
    {"", 1, 1, "127.0.0.1;qbt.lan", "192.168.1.5", "QBT.LAN:9090", 1, NULL},
    {"", 1, 1, "127.0.0.1;qbt.lan", "192.168.1.5", "rebind.attacker.example:9090", 0,
     "rebind.attacker.example"},
    {"", 1, 1, " nas.lan ; *.home.arpa ", "192.168.1.5", "box.home.arpa", 1, NULL},
    {"", 1, 1, "*.home.arpa", "192.168.1.5", "home.arpa", 0, "web_ui_domain_list"},
    {"", 1, 1, "nas?.lan", "192.168.1.5", "nas2.lan", 1, NULL},
    {"", 1, 1, "nas?.lan", "192.168.1.5", "nas.lan", 0, "web_ui_domain_list"},
    {"", 1, 1, "qbt.lan", "192.168.1.5", "qbt.lan.attacker.example", 0, "web_ui_domain_list"},
    {"", 1, 1, "", "192.168.1.5", "qbt.lan", 0, "web_ui_domain_list"},
    /* not known yet: only the own address (above) or ALLOWED_HOSTS */
    {"", 0, 0, "", "192.168.1.5", "qbt.lan:9090", -1, "not answered"},
    {"qbt.lan", 0, 0, "", "192.168.1.5", "qbt.lan:9090", 1, NULL},
    {"qbt.lan", 0, 0, "", "192.168.1.5", "other.lan", 0, "ALLOWED_HOSTS"},
    /* both lists apply once qBittorrent's is known */
    {"qbt.lan", 1, 1, "*", "192.168.1.5", "x.lan", 0, "ALLOWED_HOSTS"},
    {"*.lan", 1, 1, "nas.lan", "192.168.1.5", "x.lan", 0, "web_ui_domain_list"},
    {"*.lan", 1, 1, "nas.lan", "192.168.1.5", "nas.lan", 1, NULL},
    {"[fd00::7], qbt.lan", 1, 1, "*", "fd00::5", "[fd00::7]:9090", 1, NULL},
    /* no Host (HTTP/1.0) is an empty name, as qBittorrent sees it */
    {"", 1, 1, "*", "192.168.1.5", NULL, 1, NULL},
    {"", 1, 1, "qbt.lan", "192.168.1.5", NULL, 0, "web_ui_domain_list"},
    /* not a host at all */
    {"", 1, 1, "*", "192.168.1.5", "qbt.lan:90x", 0, "names no host"},
    {"", 1, 1, "*", "192.168.1.5", "[fd00::5", 0, "names no host"},
    {"", 1, 1, "*", "192.168.1.5", "[192.168.1.5]:9090", 0, "names no host"},
};

static void test_allow_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof allow_cases / sizeof allow_cases[0]; i++) {
        const struct allow_case *c = &allow_cases[i];
        struct hostcheck *hc = parse_ok(c->own);
        if (c->qbt_known)
            hostcheck_set_qbt(hc, c->validation, c->domains);
        struct sockaddr_storage ss;
        char why[512] = "";
        enum hostcheck_result rc = hostcheck_allows(hc, c->host, c->host ? strlen(c->host) : 0,
                                                    local_from(c->local, &ss), why, sizeof why);
        enum hostcheck_result want = c->allowed == 1   ? HOSTCHECK_OK
                                     : c->allowed == 0 ? HOSTCHECK_REFUSED
                                                       : HOSTCHECK_UNKNOWN;
        if (rc != want)
            fail_msg("case %zu (Host %s, own \"%s\", qBittorrent \"%s\"): result %d, want %d (%s)", i,
                     c->host ? c->host : "none", c->own, c->domains, rc, want, why);
        if (c->allowed != 1 && !strstr(why, c->why))
            fail_msg("case %zu: reason \"%s\" does not say \"%s\"", i, why, c->why);
        hostcheck_free(hc);
    }
}

static void test_parse_refuses(void **state)
{
    (void)state;
    static const char *const bad[][2] = {
        {"qbt.lan:8080", "qbt.lan:8080"}, {"qbt lan", "qbt lan"}, {"[zz]", "[zz]"},
        {"a,,b", "empty entry"},          {"a,", "empty entry"},  {"http://qbt.lan", "http"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct hostcheck *hc = NULL;
        char err[256] = "";
        if (hostcheck_parse(bad[i][0], &hc, err, sizeof err) == 0)
            fail_msg("ALLOWED_HOSTS \"%s\" accepted", bad[i][0]);
        if (!strstr(err, bad[i][1]))
            fail_msg("ALLOWED_HOSTS \"%s\": message \"%s\" does not name \"%s\"", bad[i][0], err, bad[i][1]);
        assert_null(hc);
    }
}

static void test_blank_is_no_list(void **state)
{
    (void)state;
    struct hostcheck *hc = parse_ok("  ");
    assert_int_equal(hostcheck_has_own_list(hc), 0);
    hostcheck_free(hc);
    hc = parse_ok("qbt.lan; nas.lan");
    assert_int_equal(hostcheck_has_own_list(hc), 1);
    hostcheck_free(hc);
    hostcheck_free(NULL);
}

static void test_set_qbt_reports_changes(void **state)
{
    (void)state;
    struct hostcheck *hc = parse_ok("");
    assert_int_equal(hostcheck_qbt_known(hc), 0);
    assert_int_equal(hostcheck_set_qbt(hc, 1, "*"), 1);
    assert_int_equal(hostcheck_qbt_known(hc), 1);
    assert_int_equal(hostcheck_set_qbt(hc, 1, "*"), 0);
    assert_int_equal(hostcheck_set_qbt(hc, 1, "qbt.lan"), 1);
    assert_int_equal(hostcheck_set_qbt(hc, 0, "qbt.lan"), 1);
    hostcheck_free(hc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_allow_table),
        cmocka_unit_test(test_parse_refuses),
        cmocka_unit_test(test_blank_is_no_list),
        cmocka_unit_test(test_set_qbt_reports_changes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
