/* watcher.c - inotify on the port file's directory, settle, read, report. */
#include "watcher.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "portfile.h"

#define RECHECK_MS 1000

struct watcher {
    uv_loop_t *loop;
    char *path, *dir;
    watcher_cb cb;
    void *ctx;
    uv_fs_event_t event;
    uv_timer_t settle;  /* debounces events before a read */
    uv_timer_t recheck; /* while the directory is missing or unreadable */
    bool event_active;
    dev_t dir_dev;
    ino_t dir_ino;
    int open_handles;
    bool stopping;
    char last_problem[512]; /* the last INVALID/UNREADABLE message, logged once */
};

static void start_watch(struct watcher *w);
static void on_recheck(uv_timer_t *t);

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
static void read_file(struct watcher *w)
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
        uv_timer_start(&w->recheck, on_recheck, RECHECK_MS, 0);
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
        report(w, WATCH_EMPTY, 0, NULL);
        break;
    case PORTFILE_INVALID:
        snprintf(msg, sizeof msg, "ignoring PORT_FILE %s: %s", w->path, err);
        problem(w, LOG_WARN, msg);
        report(w, WATCH_INVALID, 0, msg);
        break;
    }
}

/* Returns true when the watched directory is still the one we watch (not removed or re-created). */
static bool dir_unchanged(struct watcher *w)
{
    struct stat st;
    return stat(w->dir, &st) == 0 && st.st_dev == w->dir_dev && st.st_ino == w->dir_ino;
}

static void stop_event(struct watcher *w)
{
    if (w->event_active) {
        uv_fs_event_stop(&w->event);
        w->event_active = false;
    }
}

static void on_settled(uv_timer_t *t)
{
    struct watcher *w = t->data;
    if (!dir_unchanged(w)) {
        /* The directory went away or was replaced: watch whatever is there now. */
        stop_event(w);
        start_watch(w);
        return;
    }
    read_file(w);
}

static void on_fs_event(uv_fs_event_t *handle, const char *filename, int events, int status)
{
    (void)filename;
    (void)events;
    struct watcher *w = handle->data;
    if (status < 0)
        log_warn("watching %s: %s", w->dir, uv_strerror(status));
    /*
     * Any change in the directory may concern us: the file itself, a rename
     * over it, or a symlink it goes through (Kubernetes' ..data). The timer
     * is not restarted by later events, so a burst is read once, promptly.
     */
    if (!uv_is_active((uv_handle_t *)&w->settle))
        uv_timer_start(&w->settle, on_settled, WATCHER_SETTLE_MS, 0);
}

static void on_recheck(uv_timer_t *t)
{
    struct watcher *w = t->data;
    start_watch(w);
}

/* Watches the directory if it is there, else reports the file missing and looks again later. */
static void start_watch(struct watcher *w)
{
    char msg[512];
    struct stat st;
    stop_event(w);
    if (stat(w->dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        if (errno != ENOENT && errno != ENOTDIR) {
            snprintf(msg, sizeof msg, "cannot watch the directory of PORT_FILE, %s: %s (running as uid %u)",
                     w->dir, strerror(errno), (unsigned)getuid());
            unreadable(w, msg);
        } else {
            report(w, WATCH_MISSING, 0, NULL);
        }
        uv_timer_start(&w->recheck, on_recheck, RECHECK_MS, 0);
        return;
    }
    int rc = uv_fs_event_start(&w->event, on_fs_event, w->dir, 0);
    if (rc < 0) {
        snprintf(msg, sizeof msg,
                 "cannot watch the directory of PORT_FILE, %s: %s (running as uid %u); make it readable "
                 "(e.g. chmod 755) or run the sidecar as its owner",
                 w->dir, uv_strerror(rc), (unsigned)getuid());
        unreadable(w, msg);
        uv_timer_start(&w->recheck, on_recheck, RECHECK_MS, 0);
        return;
    }
    w->event_active = true;
    w->dir_dev = st.st_dev;
    w->dir_ino = st.st_ino;
    uv_timer_stop(&w->recheck);
    read_file(w);
}

int watcher_start(uv_loop_t *loop, const char *path, watcher_cb cb, void *ctx, struct watcher **out)
{
    struct watcher *w = calloc(1, sizeof *w);
    if (!w)
        return UV_ENOMEM;
    w->loop = loop;
    w->cb = cb;
    w->ctx = ctx;
    w->path = strdup(path);
    char *tmp = strdup(path);
    w->dir = tmp ? strdup(dirname(tmp)) : NULL;
    free(tmp);
    if (!w->path || !w->dir) {
        free(w->path);
        free(w->dir);
        free(w);
        return UV_ENOMEM;
    }
    uv_fs_event_init(loop, &w->event);
    uv_timer_init(loop, &w->settle);
    uv_timer_init(loop, &w->recheck);
    w->event.data = w->settle.data = w->recheck.data = w;
    w->open_handles = 3;
    *out = w;
    start_watch(w);
    return 0;
}

void watcher_read_now(struct watcher *w)
{
    if (!w->event_active || !dir_unchanged(w))
        start_watch(w);
    else
        read_file(w);
}

static void on_closed(uv_handle_t *handle)
{
    struct watcher *w = handle->data;
    if (--w->open_handles > 0)
        return;
    free(w->path);
    free(w->dir);
    free(w);
}

void watcher_stop(struct watcher *w)
{
    if (!w || w->stopping)
        return;
    w->stopping = true;
    uv_close((uv_handle_t *)&w->event, on_closed);
    uv_close((uv_handle_t *)&w->settle, on_closed);
    uv_close((uv_handle_t *)&w->recheck, on_closed);
}
