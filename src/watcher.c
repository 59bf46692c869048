/* watcher.c - the port file: read it whenever filewatch says it may have changed, and report. */
#include "watcher.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "filewatch.h"
#include "log.h"
#include "portfile.h"

struct watcher {
    char *path;
    watcher_cb cb;
    void *ctx;
    struct filewatch *watch;
    char last_problem[512]; /* the last INVALID/UNREADABLE message, logged once */
};

const char *watcher_state_name(enum watcher_state state)
{
    static const char *const names[] = {"port", "empty", "missing", "invalid", "unreadable"};
    return names[state];
}

/* Logs a problem once, until it changes or goes away. */
static void problem(struct watcher *w, enum log_level level, const char *msg)
{
    if (strcmp(w->last_problem, msg) == 0)
        return;
    snprintf(w->last_problem, sizeof w->last_problem, "%s", msg);
    log_msg(level, "%s", msg);
}

static void report(struct watcher *w, enum watcher_state state, uint16_t port, const char *detail)
{
    if (state == WATCH_PORT || state == WATCH_EMPTY || state == WATCH_MISSING)
        w->last_problem[0] = '\0';
    w->cb(w->ctx, state, port, detail);
}

/* The file or its directory cannot be read: logged (once) as an error, and reported. */
static void unreadable(struct watcher *w, const char *msg)
{
    problem(w, LOG_ERROR, msg);
    report(w, WATCH_UNREADABLE, 0, msg);
}

/*
 * Reads the file. It is a few bytes on a local volume (tmpfs, emptyDir), so
 * a plain read in the loop costs less than a round trip through the thread pool.
 */
static void read_file(struct watcher *w, bool written)
{
    char msg[512];
    int fd = open(w->path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        if (errno == ENOENT || errno == ENOTDIR) {
            report(w, WATCH_MISSING, 0, NULL);
            return;
        }
        snprintf(msg, sizeof msg,
                 "cannot read PORT_FILE %s: %s (running as uid %u); make the file and its directory "
                 "readable by this user, or run the sidecar with Gluetun's PUID",
                 w->path, strerror(errno), (unsigned)getuid());
        unreadable(w, msg);
        /* Permissions change without an inotify event on the directory: look again now and then. */
        filewatch_look_later(w->watch);
        return;
    }
    char data[PORTFILE_MAX + 1];
    ssize_t n = read(fd, data, sizeof data);
    int read_errno = errno;
    close(fd);
    if (n < 0) {
        snprintf(msg, sizeof msg, "cannot read PORT_FILE %s: %s", w->path, strerror(read_errno));
        unreadable(w, msg);
        return;
    }
    if (n > PORTFILE_MAX) {
        snprintf(msg, sizeof msg, "ignoring PORT_FILE %s: larger than %d bytes; not a port file", w->path,
                 PORTFILE_MAX);
        problem(w, LOG_WARN, msg);
        report(w, WATCH_INVALID, 0, msg);
        return;
    }
    uint16_t port = 0;
    char err[256];
    switch (portfile_parse(data, (size_t)n, &port, err, sizeof err)) {
    case PORTFILE_PORT:
        report(w, WATCH_PORT, port, NULL);
        break;
    case PORTFILE_EMPTY:
        /* Closed empty may be the first half of a writer that truncates, closes, then writes: only an
         * empty file that stays so for the settle time means forwarding is down. */
        if (written)
            filewatch_settle(w->watch);
        else
            report(w, WATCH_EMPTY, 0, NULL);
        break;
    case PORTFILE_INVALID:
        snprintf(msg, sizeof msg, "ignoring PORT_FILE %s: %s", w->path, err);
        problem(w, LOG_WARN, msg);
        report(w, WATCH_INVALID, 0, msg);
        break;
    }
}

static void on_look(void *ctx, enum filewatch_event event, int err)
{
    struct watcher *w = ctx;
    char msg[512];
    switch (event) {
    case FILEWATCH_CHANGED:
    case FILEWATCH_WRITTEN:
        read_file(w, event == FILEWATCH_WRITTEN);
        return;
    case FILEWATCH_NO_DIR:
        report(w, WATCH_MISSING, 0, NULL);
        return;
    case FILEWATCH_DIR_FAILED:
        snprintf(msg, sizeof msg,
                 "cannot watch the directory of PORT_FILE, %s: %s (running as uid %u); make it readable "
                 "(e.g. chmod 755) or run the sidecar as its owner",
                 filewatch_dir(w->watch), uv_strerror(err), (unsigned)getuid());
        unreadable(w, msg);
        return;
    }
}

int watcher_start(uv_loop_t *loop, const char *path, watcher_cb cb, void *ctx, struct watcher **out)
{
    struct watcher *w = calloc(1, sizeof *w);
    w->path = w ? strdup(path) : NULL;
    int rc = w && w->path ? filewatch_start(loop, path, FILEWATCH_AT_ONCE, on_look, w, &w->watch) : UV_ENOMEM;
    if (rc != 0) {
        if (w)
            free(w->path);
        free(w);
        return rc;
    }
    w->cb = cb;
    w->ctx = ctx;
    *out = w;
    filewatch_look(w->watch);
    return 0;
}

void watcher_read_now(struct watcher *w)
{
    filewatch_look(w->watch);
}

void watcher_stop(struct watcher *w)
{
    if (!w)
        return;
    filewatch_stop(w->watch);
    free(w->path);
    free(w);
}
