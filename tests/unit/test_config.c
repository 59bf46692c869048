/* test_config.c - unit tests for config.c: reading and validating the environment. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

/* Every test starts from an empty environment: a variable of ours (or a new one, not listed here)
 * set where the tests run must not change what they see. */
static int unset_all(void **state)
{
    (void)state;
    clearenv();
    return 0;
}

static void set(const char *name, const char *value)
{
    assert_int_equal(setenv(name, value, 1), 0);
}

/* Loads the configuration, failing the test with config_load's message if it is refused. */
static void load_ok(struct config *cfg)
{
    char err[1024] = "";
    memset(cfg, 0, sizeof *cfg);
    if (config_load(cfg, err, sizeof err) != 0) {
        fail_msg("config_load failed: %s", err);
    }
}

/*
 * Expects config_load to refuse the environment, with a message that contains
 * each of the given strings (a NULL-terminated list). Returns nothing: on
 * failure the config holds nothing to free.
 */
static void load_fails_with(char *err, size_t errlen, ...)
{
    struct config cfg;
    memset(&cfg, 0, sizeof cfg);
    memset(err, 0, errlen);
    int rc = config_load(&cfg, err, errlen);
    if (rc != -1) {
        config_free(&cfg);
        fail_msg("config_load returned %d, want -1", rc);
    }
    va_list ap;
    va_start(ap, errlen);
    for (const char *s = va_arg(ap, const char *); s != NULL; s = va_arg(ap, const char *)) {
        if (strstr(err, s) == NULL) {
            va_end(ap);
            fail_msg("config_load error \"%s\" does not contain \"%s\"", err, s);
        }
    }
    va_end(ap);
}

/* One variable set to one bad value: refused, naming both. */
static void expect_bad(const char *name, const char *value)
{
    char err[1024];
    unset_all(NULL);
    set(name, value);
    load_fails_with(err, sizeof err, name, value, (const char *)NULL);
}

/* Writes content into a new temporary file and returns its path (static storage). */
static const char *temp_file_with(const char *content)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/qgs-test-pass-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t len = strlen(content);
    assert_int_equal(write(fd, content, len), (ssize_t)len);
    close(fd);
    return path;
}

static void test_defaults(void **state)
{
    (void)state;
    struct config cfg;
    load_ok(&cfg);
    assert_int_equal(cfg.qbit.https, 0);
    assert_string_equal(cfg.qbit.host, "localhost");
    assert_int_equal(cfg.qbit.port, 8080);
    assert_string_equal(cfg.qbit.prefix, "");
    assert_null(cfg.qbit_user);
    assert_null(cfg.qbit_pass);
    assert_non_null(cfg.port_file);
    assert_string_equal(cfg.port_file, "/tmp/gluetun/forwarded_port");
    assert_int_equal(cfg.listen_port, 9090);
    assert_null(cfg.listen_addr);
    assert_non_null(cfg.allowed);
    assert_int_equal(allowlist_count(cfg.allowed), 0);
    assert_int_equal(cfg.log_level, LOG_INFO);
    assert_int_equal(cfg.header_timeout_ms, 10000);
    assert_int_equal(cfg.idle_timeout_ms, 60000);
    assert_int_equal(cfg.shutdown_timeout_ms, 10000);
    assert_int_equal(cfg.max_header_size, 16384);
    assert_int_equal(cfg.max_connections, 1024);
    config_free(&cfg);
}

static void test_values_read(void **state)
{
    (void)state;
    struct config cfg;
    set("QBIT_ADDR", "http://[::1]:8081/qbt/");
    set("QBIT_USER", "admin");
    set("QBIT_PASS", "adminadmin");
    set("PORT_FILE", "/run/gluetun/port");
    set("LISTEN_PORT", "8443");
    set("LISTEN_ADDR", "127.0.0.1");
    set("ALLOWED_IPS", "10.0.0.0/8, ::1");
    set("LOG_LEVEL", "debug");
    set("HEADER_TIMEOUT", "5");
    set("IDLE_TIMEOUT", "30");
    set("SHUTDOWN_TIMEOUT", "3");
    set("MAX_HEADER_SIZE", "2048");
    set("MAX_CONNECTIONS", "10");
    load_ok(&cfg);
    assert_string_equal(cfg.qbit.host, "::1");
    assert_int_equal(cfg.qbit.port, 8081);
    assert_string_equal(cfg.qbit.prefix, "/qbt");
    assert_string_equal(cfg.qbit_user, "admin");
    assert_string_equal(cfg.qbit_pass, "adminadmin");
    assert_string_equal(cfg.port_file, "/run/gluetun/port");
    assert_int_equal(cfg.listen_port, 8443);
    assert_string_equal(cfg.listen_addr, "127.0.0.1");
    assert_int_equal(allowlist_count(cfg.allowed), 2);
    assert_int_equal(cfg.log_level, LOG_DEBUG);
    assert_int_equal(cfg.header_timeout_ms, 5000);
    assert_int_equal(cfg.idle_timeout_ms, 30000);
    assert_int_equal(cfg.shutdown_timeout_ms, 3000);
    assert_int_equal(cfg.max_header_size, 2048);
    assert_int_equal(cfg.max_connections, 10);
    config_free(&cfg);
}

static void test_log_levels(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        enum log_level level;
    } cases[] = {
        {"debug", LOG_DEBUG},
        {"info", LOG_INFO},
        {"warn", LOG_WARN},
        {"error", LOG_ERROR},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct config cfg;
        set("LOG_LEVEL", cases[i].name);
        load_ok(&cfg);
        assert_int_equal(cfg.log_level, cases[i].level);
        config_free(&cfg);
    }
}

static void test_listen_port_bounds_accepted(void **state)
{
    (void)state;
    struct config cfg;
    set("LISTEN_PORT", "1");
    load_ok(&cfg);
    assert_int_equal(cfg.listen_port, 1);
    config_free(&cfg);
    set("LISTEN_PORT", "65535");
    load_ok(&cfg);
    assert_int_equal(cfg.listen_port, 65535);
    config_free(&cfg);
}

static void test_listen_port_rejected(void **state)
{
    (void)state;
    static const char *const values[] = {"0",   "65536", "abc",  "+80",       " 80",
                                         "80 ", "-1",    "0x50", "4294967376"};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        expect_bad("LISTEN_PORT", values[i]);
    }
}

static void test_log_level_rejected(void **state)
{
    (void)state;
    expect_bad("LOG_LEVEL", "verbose");
}

static void test_allowed_ips_rejected(void **state)
{
    (void)state;
    expect_bad("ALLOWED_IPS", "10.0.0.0/33");
}

static void test_qbit_addr_rejected(void **state)
{
    (void)state;
    expect_bad("QBIT_ADDR", "ftp://x");
}

static void test_https_qbit_addr_with_its_trust(void **state)
{
    (void)state;
    struct config cfg;
    set("QBIT_ADDR", "https://qbt.lan:8443");
    set("QBIT_CA_FILE", "/etc/qbt/ca.pem");
    load_ok(&cfg);
    assert_int_equal(cfg.qbit.https, 1);
    assert_int_equal(cfg.qbit.port, 8443);
    assert_string_equal(cfg.qbit_ca_file, "/etc/qbt/ca.pem");
    assert_int_equal(cfg.qbit_tls_insecure, 0);
    config_free(&cfg);
    unsetenv("QBIT_CA_FILE");
    set("QBIT_TLS_INSECURE", "true");
    load_ok(&cfg);
    assert_null(cfg.qbit_ca_file);
    assert_int_equal(cfg.qbit_tls_insecure, 1);
    config_free(&cfg);
}

static void test_tls_trust_needs_https_and_one_choice(void **state)
{
    (void)state;
    char err[1024];
    set("QBIT_CA_FILE", "/ca.pem");
    load_fails_with(err, sizeof err, "QBIT_CA_FILE", "not https://", (const char *)NULL);
    set("QBIT_ADDR", "https://x");
    set("QBIT_TLS_INSECURE", "true");
    load_fails_with(err, sizeof err, "QBIT_CA_FILE", "QBIT_TLS_INSECURE", "not both", (const char *)NULL);
}

static void test_front_door_pair_both_or_neither(void **state)
{
    (void)state;
    char err[1024];
    struct config cfg;
    set("TLS_CERT_FILE", "/tls/tls.crt");
    load_fails_with(err, sizeof err, "TLS_CERT_FILE", "/tls/tls.crt", "TLS_KEY_FILE", "both or neither",
                    (const char *)NULL);
    set("TLS_KEY_FILE", "/tls/tls.key");
    load_ok(&cfg);
    assert_string_equal(cfg.tls_cert_file, "/tls/tls.crt");
    assert_string_equal(cfg.tls_key_file, "/tls/tls.key");
    config_free(&cfg);
    unsetenv("TLS_CERT_FILE");
    load_fails_with(err, sizeof err, "TLS_KEY_FILE", "/tls/tls.key", "both or neither", (const char *)NULL);
}

static void test_user_without_pass(void **state)
{
    (void)state;
    char err[1024];
    set("QBIT_USER", "admin");
    load_fails_with(err, sizeof err, "QBIT_PASS", (const char *)NULL);
}

/* The message names the missing user but never repeats the password. */
static void test_pass_without_user(void **state)
{
    (void)state;
    char err[1024];
    set("QBIT_PASS", "hunter2-secret");
    load_fails_with(err, sizeof err, "QBIT_USER", (const char *)NULL);
    assert_null(strstr(err, "hunter2-secret"));
}

static void test_pass_and_pass_file_both_set(void **state)
{
    (void)state;
    char err[1024];
    const char *path = temp_file_with("fromfile\n");
    set("QBIT_USER", "admin");
    set("QBIT_PASS", "hunter2-secret");
    set("QBIT_PASS_FILE", path);
    load_fails_with(err, sizeof err, "QBIT_PASS_FILE", (const char *)NULL);
    assert_null(strstr(err, "hunter2-secret"));
    assert_null(strstr(err, "fromfile"));
    unlink(path);
}

static void test_pass_file_missing(void **state)
{
    (void)state;
    char err[1024];
    set("QBIT_USER", "admin");
    set("QBIT_PASS_FILE", "/nonexistent/qgs-test/password");
    load_fails_with(err, sizeof err, "QBIT_PASS_FILE", "/nonexistent/qgs-test/password", (const char *)NULL);
}

static void test_pass_file_contents(void **state)
{
    (void)state;
    static const char *const contents[] = {"s3cret\n", "s3cret\r\n", "s3cret"};
    for (size_t i = 0; i < sizeof contents / sizeof contents[0]; i++) {
        struct config cfg;
        const char *path = temp_file_with(contents[i]);
        set("QBIT_USER", "admin");
        set("QBIT_PASS_FILE", path);
        load_ok(&cfg);
        unlink(path);
        assert_non_null(cfg.qbit_pass);
        assert_string_equal(cfg.qbit_pass, "s3cret");
        assert_string_equal(cfg.qbit_user, "admin");
        config_free(&cfg);
    }
}

static void test_listen_addr_accepted(void **state)
{
    (void)state;
    static const char *const values[] = {"127.0.0.1", "::1", "0.0.0.0", "::"};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        struct config cfg;
        set("LISTEN_ADDR", values[i]);
        load_ok(&cfg);
        assert_string_equal(cfg.listen_addr, values[i]);
        config_free(&cfg);
    }
}

static void test_listen_addr_rejected(void **state)
{
    (void)state;
    expect_bad("LISTEN_ADDR", "localhost");
    expect_bad("LISTEN_ADDR", "1.2.3.4.5");
}

static void test_header_timeout(void **state)
{
    (void)state;
    struct config cfg;
    expect_bad("HEADER_TIMEOUT", "0");
    expect_bad("HEADER_TIMEOUT", "-5");
    unset_all(NULL);
    set("HEADER_TIMEOUT", "5");
    load_ok(&cfg);
    assert_int_equal(cfg.header_timeout_ms, 5000);
    config_free(&cfg);
}

static void test_other_timeouts_rejected(void **state)
{
    (void)state;
    expect_bad("IDLE_TIMEOUT", "0");
    expect_bad("IDLE_TIMEOUT", "abc");
    expect_bad("SHUTDOWN_TIMEOUT", "x1");
}

static void test_max_header_size(void **state)
{
    (void)state;
    struct config cfg;
    expect_bad("MAX_HEADER_SIZE", "100");
    expect_bad("MAX_HEADER_SIZE", "1023");
    unset_all(NULL);
    set("MAX_HEADER_SIZE", "1024");
    load_ok(&cfg);
    assert_int_equal(cfg.max_header_size, 1024);
    config_free(&cfg);
}

static void test_max_connections(void **state)
{
    (void)state;
    struct config cfg;
    expect_bad("MAX_CONNECTIONS", "0");
    unset_all(NULL);
    set("MAX_CONNECTIONS", "1");
    load_ok(&cfg);
    assert_int_equal(cfg.max_connections, 1);
    config_free(&cfg);
}

/* Every problem is reported at once, one line each, not only the first. */
static void test_several_errors_one_line_each(void **state)
{
    (void)state;
    char err[1024];
    set("LISTEN_PORT", "abc");
    set("LOG_LEVEL", "verbose");
    set("ALLOWED_IPS", "myhost");
    load_fails_with(err, sizeof err, "LISTEN_PORT", "abc", "LOG_LEVEL", "verbose", "ALLOWED_IPS", "myhost",
                    (const char *)NULL);

    int lines = 0;
    const char *names[] = {"LISTEN_PORT", "LOG_LEVEL", "ALLOWED_IPS"};
    char *save = NULL;
    for (char *line = strtok_r(err, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        int found = 0;
        for (size_t i = 0; i < 3; i++) {
            found += strstr(line, names[i]) != NULL;
        }
        if (found != 1) {
            fail_msg("error line \"%s\" names %d of the bad variables, want exactly 1", line, found);
        }
        lines++;
    }
    assert_int_equal(lines, 3);
}

/* Captures config_print's output into a heap string the caller frees. */
static char *print_to_string(const struct config *cfg)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    config_print(cfg, f);
    assert_int_equal(fclose(f), 0);
    assert_non_null(buf);
    return buf;
}

static void test_print_defaults(void **state)
{
    (void)state;
    struct config cfg;
    load_ok(&cfg);
    char *out = print_to_string(&cfg);
    assert_non_null(strstr(out, "QBIT_ADDR=http://localhost:8080\n"));
    assert_non_null(strstr(out, "LISTEN_PORT=9090\n"));
    assert_non_null(strstr(out, "PORT_FILE=/tmp/gluetun/forwarded_port\n"));
    free(out);
    config_free(&cfg);
}

static void test_print_masks_password(void **state)
{
    (void)state;
    struct config cfg;
    set("QBIT_USER", "admin");
    set("QBIT_PASS", "hunter2-secret");
    load_ok(&cfg);
    char *out = print_to_string(&cfg);
    assert_null(strstr(out, "hunter2"));
    assert_non_null(strstr(out, "QBIT_USER=admin\n"));
    /* The line is there, so an operator sees that a password is set. */
    char *line = strstr(out, "QBIT_PASS=");
    assert_non_null(line);
    assert_true(line[strlen("QBIT_PASS=")] != '\n');
    free(out);
    config_free(&cfg);
}

static void test_print_masks_password_from_file(void **state)
{
    (void)state;
    struct config cfg;
    const char *path = temp_file_with("s3cret-from-file\n");
    set("QBIT_USER", "admin");
    set("QBIT_PASS_FILE", path);
    load_ok(&cfg);
    unlink(path);
    char *out = print_to_string(&cfg);
    assert_null(strstr(out, "s3cret-from-file"));
    free(out);
    config_free(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_defaults, unset_all),
        cmocka_unit_test_setup(test_values_read, unset_all),
        cmocka_unit_test_setup(test_log_levels, unset_all),
        cmocka_unit_test_setup(test_listen_port_bounds_accepted, unset_all),
        cmocka_unit_test_setup(test_listen_port_rejected, unset_all),
        cmocka_unit_test_setup(test_log_level_rejected, unset_all),
        cmocka_unit_test_setup(test_allowed_ips_rejected, unset_all),
        cmocka_unit_test_setup(test_qbit_addr_rejected, unset_all),
        cmocka_unit_test_setup(test_https_qbit_addr_with_its_trust, unset_all),
        cmocka_unit_test_setup(test_tls_trust_needs_https_and_one_choice, unset_all),
        cmocka_unit_test_setup(test_front_door_pair_both_or_neither, unset_all),
        cmocka_unit_test_setup(test_user_without_pass, unset_all),
        cmocka_unit_test_setup(test_pass_without_user, unset_all),
        cmocka_unit_test_setup(test_pass_and_pass_file_both_set, unset_all),
        cmocka_unit_test_setup(test_pass_file_missing, unset_all),
        cmocka_unit_test_setup(test_pass_file_contents, unset_all),
        cmocka_unit_test_setup(test_listen_addr_accepted, unset_all),
        cmocka_unit_test_setup(test_listen_addr_rejected, unset_all),
        cmocka_unit_test_setup(test_header_timeout, unset_all),
        cmocka_unit_test_setup(test_other_timeouts_rejected, unset_all),
        cmocka_unit_test_setup(test_max_header_size, unset_all),
        cmocka_unit_test_setup(test_max_connections, unset_all),
        cmocka_unit_test_setup(test_several_errors_one_line_each, unset_all),
        cmocka_unit_test_setup(test_print_defaults, unset_all),
        cmocka_unit_test_setup(test_print_masks_password, unset_all),
        cmocka_unit_test_setup(test_print_masks_password_from_file, unset_all),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
