/* test_gluetun.c - unit tests for gluetun_parse: every answer shape of Gluetun 3.40 to 3.41.2, and garbage.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "gluetun.h"

static int parse(const char *json, uint16_t *port, char *err)
{
    *port = 12345; /* must be overwritten on success, left alone on failure */
    err[0] = '\0';
    return gluetun_parse(json, strlen(json), port, err, 256);
}

static void test_shapes_of_every_version(void **state)
{
    (void)state;
    static const struct {
        const char *json;
        uint16_t port;
    } cases[] = {
        {"{\"port\":51413}\n", 51413},                       /* 3.40 and 3.41.0, one port */
        {"{\"port\":0}\n", 0},                               /* 3.40 and 3.41.0, none: forwarding is down */
        {"{\"ports\":[40001,40002]}\n", 40001},              /* 3.40 and 3.41.0, several */
        {"{\"port\":40001,\"ports\":[40001,40002]}", 40001}, /* 3.41.2 */
        {"{\"port\":0,\"ports\":null}", 0},                  /* 3.41.2, none */
        {"{\"port\":0,\"ports\":[]}", 0},
        {"{\"ports\":[]}", 0},
        {"{\"port\":0,\"ports\":[50000]}", 50000}, /* "port" 0 says nothing when "ports" lists one */
        {"{\"port\":65535,\"other\":\"x\"}", 65535},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint16_t port;
        char err[256];
        if (parse(cases[i].json, &port, err) != 0)
            fail_msg("%s: refused (%s)", cases[i].json, err);
        assert_int_equal(port, cases[i].port);
    }
}

static void test_garbage_is_refused_with_a_reason(void **state)
{
    (void)state;
    static const char *const cases[] = {
        "",
        "not json",
        "51413",
        "[51413]",
        "{}",
        "{\"port\":\"51413\"}",
        "{\"port\":70000}",
        "{\"port\":-1}",
        "{\"port\":51413.5}",
        "{\"port\":null}",
        "{\"ports\":[0]}",
        "{\"ports\":[40000,\"x\"]}",
        "{\"ports\":40000}",
        "{\"port\":1,\"port\":2}",
        "{\"port\":51413",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint16_t port;
        char err[256];
        if (parse(cases[i], &port, err) == 0)
            fail_msg("%s: accepted as port %u", cases[i], port);
        assert_int_equal(port, 12345);
        assert_true(strlen(err) > 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shapes_of_every_version),
        cmocka_unit_test(test_garbage_is_refused_with_a_reason),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
