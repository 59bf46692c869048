/* test_qbt.c - unit tests for qbt.c's pure helpers: session cookie, login answer, listen_port. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "qbt.h"

/* ---- qbt_session_cookie ---- */

static int cookie(const char *set_cookie, char *out, size_t outlen)
{
    return qbt_session_cookie(set_cookie, strlen(set_cookie), out, outlen);
}

static void test_cookie_sid(void **state)
{
    (void)state;
    char out[128];
    assert_int_equal(cookie("SID=abc; HttpOnly; path=/", out, sizeof out), 0);
    assert_string_equal(out, "SID=abc");
    /* qBittorrent 4.5.2's exact header */
    assert_int_equal(
        cookie("SID=Yh2Ok7d0nYbF2U+3xWl9w6vH/8pM0uQ1; HttpOnly; path=/; SameSite=Strict", out, sizeof out),
        0);
    assert_string_equal(out, "SID=Yh2Ok7d0nYbF2U+3xWl9w6vH/8pM0uQ1");
}

static void test_cookie_any_name(void **state)
{
    (void)state;
    char out[128];
    assert_int_equal(cookie("QBT_SID_8080=xyz; path=/; SameSite=Strict", out, sizeof out), 0);
    assert_string_equal(out, "QBT_SID_8080=xyz");
    assert_int_equal(cookie("custom_name=v", out, sizeof out), 0);
    assert_string_equal(out, "custom_name=v");
}

static void test_cookie_leading_spaces(void **state)
{
    (void)state;
    char out[128];
    assert_int_equal(cookie("   SID=abc; path=/", out, sizeof out), 0);
    assert_string_equal(out, "SID=abc");
    assert_int_equal(cookie("\t SID=abc  ; path=/", out, sizeof out), 0);
    assert_string_equal(out, "SID=abc");
}

static void test_cookie_refused(void **state)
{
    (void)state;
    char out[128];
    assert_int_equal(cookie("SIDabc; path=/", out, sizeof out), -1);
    assert_int_equal(cookie("SIDabc", out, sizeof out), -1);
    assert_int_equal(cookie("", out, sizeof out), -1);
    assert_int_equal(cookie("; SID=abc", out, sizeof out), -1); /* the pair must come first */
    assert_int_equal(cookie("=abc; path=/", out, sizeof out), -1);
}

static void test_cookie_too_long(void **state)
{
    (void)state;
    char out[8];
    /* "SID=abc" and its NUL need 8 bytes */
    assert_int_equal(cookie("SID=abc; path=/", out, sizeof out), 0);
    assert_string_equal(out, "SID=abc");
    assert_int_equal(cookie("SID=abcd; path=/", out, sizeof out), -1);
    assert_int_equal(cookie("SID=abc; path=/", out, 7), -1);
    assert_int_equal(cookie("SID=0123456789abcdef0123456789abcdef", out, sizeof out), -1);
}

/* Only len bytes of the header value count (header values are not NUL-terminated). */
static void test_cookie_len_bounded(void **state)
{
    (void)state;
    char out[64];
    const char *v = "SID=abcdef; path=/";
    assert_int_equal(qbt_session_cookie(v, 7, out, sizeof out), 0);
    assert_string_equal(out, "SID=abc");
}

/* ---- qbt_login_result ---- */

static enum qbt_result login(int status, const char *body)
{
    return qbt_login_result(status, body, strlen(body));
}

static void test_login_results(void **state)
{
    (void)state;
    /* up to 5.1 */
    assert_int_equal(login(200, "Ok."), QBT_OK);
    assert_int_equal(login(200, "Fails."), QBT_AUTH_FAILED);
    /* from 5.2 */
    assert_int_equal(login(204, ""), QBT_OK);
    assert_int_equal(login(401, ""), QBT_AUTH_FAILED);
    assert_int_equal(login(401, "Unauthorized"), QBT_AUTH_FAILED);
    /* banned after failed logins */
    assert_int_equal(
        login(403, "Your IP address has been banned after too many failed authentication attempts."),
        QBT_BANNED);
    assert_int_equal(login(403, ""), QBT_BANNED);
    /* anything else is not understood */
    assert_int_equal(login(500, ""), QBT_BAD_RESPONSE);
    assert_int_equal(login(500, "Ok."), QBT_BAD_RESPONSE);
    assert_int_equal(login(404, "Not Found"), QBT_BAD_RESPONSE);
    assert_int_equal(login(200, "<html>login page</html>"), QBT_BAD_RESPONSE);
}

/* The body is bounded by len: "Ok." cut to "Ok" is not a success. */
static void test_login_len_bounded(void **state)
{
    (void)state;
    assert_int_not_equal(qbt_login_result(200, "Ok.", 2), QBT_OK);
    assert_int_not_equal(qbt_login_result(200, "Fails.", 0), QBT_OK);
}

/* ---- qbt_parse_listen_port ---- */

static int listen_port(const char *json, int *port)
{
    return qbt_parse_listen_port(json, strlen(json), port);
}

static void test_listen_port_found(void **state)
{
    (void)state;
    int port = -7;
    assert_int_equal(listen_port("{\"listen_port\":6881,\"save_path\":\"/downloads\",\"upnp\":false}", &port),
                     0);
    assert_int_equal(port, 6881);
    port = -7;
    assert_int_equal(listen_port("{\"add_trackers\":\"\",\"listen_port\":51413,\"web_ui_port\":8080}", &port),
                     0);
    assert_int_equal(port, 51413);
    port = -7;
    assert_int_equal(listen_port(" {\n  \"listen_port\" : 65535\n} ", &port), 0);
    assert_int_equal(port, 65535);
}

static void test_listen_port_refused(void **state)
{
    (void)state;
    int port = -7;
    assert_int_equal(listen_port("{\"web_ui_port\":8080}", &port), -1);
    assert_int_equal(listen_port("{}", &port), -1);
    assert_int_equal(listen_port("{\"listen_port\":\"6881\"}", &port), -1);
    assert_int_equal(listen_port("{\"listen_port\":6881.5}", &port), -1);
    assert_int_equal(listen_port("{\"listen_port\":null}", &port), -1);
    assert_int_equal(listen_port("{\"listen_port\":true}", &port), -1);
    assert_int_equal(listen_port("{\"listen_port\":-1}", &port), -1);
    assert_int_equal(listen_port("{\"listen_port\":-6881}", &port), -1);
    assert_int_equal(listen_port("{\"listen_port\":70000}", &port), -1);
    assert_int_equal(listen_port("{\"prefs\":{\"listen_port\":6881}}", &port), -1);
    assert_int_equal(listen_port("[{\"listen_port\":6881}]", &port), -1);
    assert_int_equal(listen_port("not json", &port), -1);
    assert_int_equal(listen_port("Forbidden", &port), -1);
    assert_int_equal(listen_port("", &port), -1);
    assert_int_equal(listen_port("{\"listen_port\":6881", &port), -1);
    assert_int_equal(port, -7); /* untouched by failures */
}

/* Only len bytes count. */
static void test_listen_port_len_bounded(void **state)
{
    (void)state;
    int port = -7;
    const char *json = "{\"listen_port\":6881}garbage";
    assert_int_equal(qbt_parse_listen_port(json, strlen("{\"listen_port\":6881}"), &port), 0);
    assert_int_equal(port, 6881);
    assert_int_equal(qbt_parse_listen_port(json, 10, &port), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cookie_sid),
        cmocka_unit_test(test_cookie_any_name),
        cmocka_unit_test(test_cookie_leading_spaces),
        cmocka_unit_test(test_cookie_refused),
        cmocka_unit_test(test_cookie_too_long),
        cmocka_unit_test(test_cookie_len_bounded),
        cmocka_unit_test(test_login_results),
        cmocka_unit_test(test_login_len_bounded),
        cmocka_unit_test(test_listen_port_found),
        cmocka_unit_test(test_listen_port_refused),
        cmocka_unit_test(test_listen_port_len_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
