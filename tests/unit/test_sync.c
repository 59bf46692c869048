/*
 * test_sync.c - the reconciler's promise to /sync: its callback never runs inside sync_request,
 * even when the qBittorrent call fails before it could start (out of memory). qBittorrent's client
 * is replaced here by a stub whose calls fail at once; everything else is the real sync.c on a real
 * loop, watching a real port file.
 */
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
#include "qbt.h"
#include "sync.h"

/* ---- the stub: every call fails before it starts, as qbt.c does when it cannot allocate ---- */

static struct qbt_prefs stub_prefs;
static int stub_calls;

int qbt_get_port(struct qbt *q, qbt_cb cb, void *ctx)
{
    (void)q, (void)cb, (void)ctx;
    stub_calls++;
    return UV_ENOMEM;
}

int qbt_set_port(struct qbt *q, uint16_t port, qbt_cb cb, void *ctx)
{
    (void)q, (void)port, (void)cb, (void)ctx;
    stub_calls++;
    return UV_ENOMEM;
}

int qbt_reannounce(struct qbt *q, qbt_cb cb, void *ctx)
{
    (void)q, (void)cb, (void)ctx;
    return UV_ENOMEM;
}

int qbt_set_trusted_proxies(struct qbt *q, const char *list, qbt_cb cb, void *ctx)
{
    (void)q, (void)list, (void)cb, (void)ctx;
    return UV_ENOMEM;
}

const struct qbt_prefs *qbt_prefs(const struct qbt *q)
{
    (void)q;
    return &stub_prefs;
}

const char *qbt_local_addr(const struct qbt *q)
{
    (void)q;
    return "";
}

void qbt_cancel(struct qbt *q)
{
    (void)q;
}

const char *qbt_result_name(enum qbt_result result)
{
    static const char *const names[] = {"ok",          "unreachable", "timeout",
                                        "auth_failed", "banned",      "bad_response"};
    return names[result];
}

/* ---- the test ---- */

struct answer {
    struct sync_waiter w; /* first: the callback finds the answer from it */
    int calls, status;
    char json[1024];
};

static void on_answer(struct sync_waiter *w, int status, const char *json)
{
    struct answer *a = (struct answer *)w;
    a->calls++;
    a->status = status;
    snprintf(a->json, sizeof a->json, "%s", json);
}

static void on_timeout(uv_timer_t *t)
{
    uv_stop(t->loop);
}

static void test_sync_request_never_answers_inside_the_call(void **state)
{
    (void)state;
    char dir[] = "/tmp/qgs-test-sync-XXXXXX", path[64], err[1024];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/forwarded_port", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("40123", f);
    fclose(f);
    setenv("PORT_FILE", path, 1);
    setenv("QBIT_ADDR", "http://127.0.0.1:1", 1);
    setenv("RESYNC_INTERVAL", "0", 1);
    struct config cfg;
    assert_int_equal(config_load(&cfg, err, sizeof err), 0);

    uv_loop_t loop;
    uv_loop_init(&loop);
    struct sync *s = NULL;
    assert_int_equal(sync_new(&loop, &cfg, (struct qbt *)&stub_prefs, NULL, &s), 0);
    assert_int_equal(sync_start(s), 0);
    assert_true(stub_calls >= 1); /* the start-up run failed at once */

    struct answer a = {.w = {.cb = on_answer}};
    int rc = sync_request(s, &a.w, a.json, sizeof a.json);
    assert_int_equal(rc, 0);
    assert_int_equal(a.calls, 0); /* libuv's rule: never a callback before the call returns */

    uv_timer_t t;
    uv_timer_init(&loop, &t);
    uv_timer_start(&t, on_timeout, 2000, 0);
    while (a.calls == 0 && uv_timer_get_due_in(&t) > 0)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.status, 502);
    assert_non_null(strstr(a.json, "unreachable"));

    sync_stop(s);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    sync_free(s);
    assert_int_equal(uv_loop_close(&loop), 0);
    config_free(&cfg);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sync_request_never_answers_inside_the_call),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
