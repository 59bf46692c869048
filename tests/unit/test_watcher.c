/*
 * test_watcher.c - the port file watcher on a real loop and a real directory:
 * what it reports for each way a writer finishes (FILEWATCH_WRITTEN, read at
 * once, for a close after writing and a rename into place; CHANGED after the
 * settle time otherwise), and that an empty file closed by a writer that
 * writes the port next is never reported as forwarding down.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "filewatch.h"
#include "watcher.h"

#define DEADLINE_MS 2000

struct seen {
    int count;
    enum filewatch_event last;
};

static void on_event(void *ctx, enum filewatch_event event, int err)
{
    (void)err;
    struct seen *s = ctx;
    s->count++;
    s->last = event;
}

static void on_deadline(uv_timer_t *t)
{
    (void)t;
}

/* Runs the loop until *count exceeds before, or the deadline passes. */
static void run_until(uv_loop_t *loop, const int *count, int before)
{
    uv_timer_t t;
    uv_timer_init(loop, &t);
    uv_timer_start(&t, on_deadline, DEADLINE_MS, 0);
    while (*count == before && uv_is_active((uv_handle_t *)&t))
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
}

static void write_file(const char *path, const char *text, bool close_it, int *fd_out)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    if (close_it)
        close(fd);
    else
        *fd_out = fd;
}

struct dir {
    char path[64], file[96];
};

static void make_dir(struct dir *d)
{
    snprintf(d->path, sizeof d->path, "/tmp/qgs-test-watch-XXXXXX");
    assert_non_null(mkdtemp(d->path));
    snprintf(d->file, sizeof d->file, "%s/forwarded_port", d->path);
}

static void remove_dir(struct dir *d)
{
    char other[128];
    snprintf(other, sizeof other, "%s/tmp", d->path);
    unlink(other);
    unlink(d->file);
    rmdir(d->path);
}

static void test_complete_writes_are_reported_as_written(void **state)
{
    (void)state;
    struct dir d;
    make_dir(&d);
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct seen seen = {0};
    struct filewatch *w;
    assert_int_equal(filewatch_start(&loop, d.file, FILEWATCH_AT_ONCE, on_event, &seen, &w), 0);
    filewatch_look(w);
    assert_int_equal(seen.count, 1); /* the owner's first look reports before returning */

    /* Gluetun's os.WriteFile: open, truncate, write, close. */
    int before = seen.count;
    write_file(d.file, "40001", true, NULL);
    run_until(&loop, &seen.count, before);
    assert_int_equal(seen.last, FILEWATCH_WRITTEN);

    /* An atomic writer: a temporary file renamed over the port file. */
    char tmp[128];
    snprintf(tmp, sizeof tmp, "%s/tmp", d.path);
    write_file(tmp, "40002", true, NULL);
    run_until(&loop, &seen.count, seen.count); /* the temporary file's own events: settled */
    before = seen.count;
    assert_int_equal(rename(tmp, d.file), 0);
    run_until(&loop, &seen.count, before);
    assert_int_equal(seen.last, FILEWATCH_WRITTEN);

    /* A writer that keeps the file open: only the settle time says the write is over. */
    int fd = -1;
    before = seen.count;
    write_file(d.file, "40003", false, &fd);
    run_until(&loop, &seen.count, before);
    assert_int_equal(seen.last, FILEWATCH_CHANGED);
    close(fd);
    run_until(&loop, &seen.count, seen.count);

    filewatch_stop(w);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    remove_dir(&d);
}

static void test_without_at_once_everything_is_settled(void **state)
{
    (void)state;
    struct dir d;
    make_dir(&d);
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct seen seen = {0};
    struct filewatch *w;
    assert_int_equal(filewatch_start(&loop, d.file, 0, on_event, &seen, &w), 0);
    filewatch_look(w);
    int before = seen.count;
    write_file(d.file, "40001", true, NULL);
    run_until(&loop, &seen.count, before);
    assert_int_equal(seen.last, FILEWATCH_CHANGED);
    filewatch_stop(w);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    remove_dir(&d);
}

struct reports {
    int count, empty;
    enum watcher_state last;
    uint16_t port;
};

static void on_report(void *ctx, enum watcher_state state, uint16_t port, const char *detail)
{
    (void)detail;
    struct reports *r = ctx;
    r->count++;
    r->last = state;
    r->port = port;
    if (state == WATCH_EMPTY)
        r->empty++;
}

static void test_an_empty_close_waits_for_the_write_that_follows(void **state)
{
    (void)state;
    struct dir d;
    make_dir(&d);
    write_file(d.file, "40001", true, NULL);
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct reports r = {0};
    struct watcher *w;
    assert_int_equal(watcher_start(&loop, d.file, on_report, &r, &w), 0);
    assert_int_equal(r.last, WATCH_PORT);
    int before = r.count;

    /* A writer that truncates and closes, then opens again and writes: the loop sees the empty close
     * first (UV_RUN_NOWAIT processes that event alone), and must not call it "forwarding down". */
    write_file(d.file, "", true, NULL);
    for (int i = 0; i < 3; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    write_file(d.file, "40002", true, NULL);
    run_until(&loop, &r.count, before);
    assert_int_equal(r.empty, 0);
    assert_int_equal(r.last, WATCH_PORT);
    assert_int_equal(r.port, 40002);

    /* An empty file that stays empty is forwarding down, after the settle time. */
    before = r.count;
    write_file(d.file, "", true, NULL);
    run_until(&loop, &r.count, before);
    assert_int_equal(r.last, WATCH_EMPTY);

    watcher_stop(w);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    remove_dir(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_complete_writes_are_reported_as_written),
        cmocka_unit_test(test_without_at_once_everything_is_settled),
        cmocka_unit_test(test_an_empty_close_waits_for_the_write_that_follows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
