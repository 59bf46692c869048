/*
 * filewatch.c - inotify on a file's directory, read through a uv_poll_t:
 * libuv's uv_fs_event reports neither IN_CLOSE_WRITE nor which event came,
 * and a finished write is what lets a look happen at once instead of after
 * the settle time.
 */
#include "filewatch.h"

#include <errno.h>
#include <libgen.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#define RECHECK_MS 1000

/* Everything that can change what the path leads to: the file, a rename over it, a symlink it goes through
 * (Kubernetes' ..data), the directory itself going away. */
#define WATCH_MASK                                                                                           \
    (IN_CREATE | IN_MODIFY | IN_CLOSE_WRITE | IN_ATTRIB | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO |          \
     IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)

struct filewatch {
    char *dir, *name;
    bool at_once;
    filewatch_cb cb;
    void *ctx;
    int fd, wd; /* the inotify instance, and the directory's watch in it (-1: none) */
    uv_poll_t poll;
    uv_timer_t settle;  /* debounces events before a look */
    uv_timer_t recheck; /* while the directory is missing or unwatchable, or the file unreadable */
    bool stopping;
    dev_t dir_dev;
    ino_t dir_ino;
    int open_handles;
};

/* Returns true when the watched directory is still the one we watch (not removed or re-created). */
static bool dir_unchanged(const struct filewatch *w)
{
    struct stat st;
    return w->wd >= 0 && stat(w->dir, &st) == 0 && st.st_dev == w->dir_dev && st.st_ino == w->dir_ino;
}

static void stop_watch(struct filewatch *w)
{
    if (w->wd >= 0) {
        inotify_rm_watch(w->fd, w->wd); /* fails harmlessly when the kernel dropped it already */
        w->wd = -1;
    }
}

static void look(struct filewatch *w, enum filewatch_event event);

static void on_recheck(uv_timer_t *t)
{
    look(t->data, FILEWATCH_CHANGED);
}

static void on_settled(uv_timer_t *t)
{
    look(t->data, FILEWATCH_CHANGED);
}

void filewatch_settle(struct filewatch *w)
{
    /* Not restarted by later events: a burst is looked at once, promptly. */
    if (!w->stopping && !uv_is_active((uv_handle_t *)&w->settle))
        uv_timer_start(&w->settle, on_settled, FILEWATCH_SETTLE_MS, 0);
}

/* Whether an event says the file is complete: closed after writing, or something renamed into place. */
static bool says_complete(const struct filewatch *w, const struct inotify_event *ev)
{
    if (ev->mask & IN_MOVED_TO)
        return true; /* the file itself, or the ..data symlink it goes through */
    return (ev->mask & IN_CLOSE_WRITE) && ev->len > 0 && strcmp(ev->name, w->name) == 0;
}

static void on_readable(uv_poll_t *handle, int status, int events)
{
    (void)events;
    struct filewatch *w = handle->data;
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    bool complete = false, changed = status < 0; /* an error on the descriptor: look, to be sure */
    for (;;) {
        ssize_t n = read(w->fd, buf, sizeof buf);
        if (n <= 0)
            break; /* EAGAIN: all read */
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)p;
            p += sizeof *ev + ev->len;
            if (ev->wd != w->wd && !(ev->mask & IN_Q_OVERFLOW))
                continue; /* a directory we no longer watch */
            /* Events after a complete write belong to the next write: they get the settle time. */
            if (w->at_once && says_complete(w, ev)) {
                complete = true;
                changed = false;
            } else {
                changed = true;
            }
        }
    }
    if (complete) {
        uv_timer_stop(&w->settle);
        look(w, FILEWATCH_WRITTEN);
    }
    if (changed)
        filewatch_settle(w);
}

static void look(struct filewatch *w, enum filewatch_event event)
{
    if (w->stopping)
        return;
    uv_timer_stop(&w->recheck);
    if (dir_unchanged(w)) {
        w->cb(w->ctx, event, 0);
        return;
    }
    /* Not watched yet, or the directory went away or was replaced: watch whatever is there now. */
    stop_watch(w);
    struct stat st;
    int rc = 0;
    if (stat(w->dir, &st) != 0)
        rc = -errno;
    else if (!S_ISDIR(st.st_mode))
        rc = UV_ENOTDIR;
    else if ((w->wd = inotify_add_watch(w->fd, w->dir, WATCH_MASK)) < 0)
        rc = -errno;
    if (rc != 0) {
        w->wd = -1;
        uv_timer_start(&w->recheck, on_recheck, RECHECK_MS, 0);
        w->cb(w->ctx, rc == UV_ENOENT || rc == UV_ENOTDIR ? FILEWATCH_NO_DIR : FILEWATCH_DIR_FAILED, rc);
        return;
    }
    w->dir_dev = st.st_dev;
    w->dir_ino = st.st_ino;
    w->cb(w->ctx, FILEWATCH_CHANGED, 0);
}

void filewatch_look(struct filewatch *w)
{
    look(w, FILEWATCH_CHANGED);
}

void filewatch_look_later(struct filewatch *w)
{
    if (!w->stopping)
        uv_timer_start(&w->recheck, on_recheck, RECHECK_MS, 0);
}

const char *filewatch_dir(const struct filewatch *w)
{
    return w->dir;
}

int filewatch_start(uv_loop_t *loop, const char *path, int flags, filewatch_cb cb, void *ctx,
                    struct filewatch **out)
{
    struct filewatch *w = calloc(1, sizeof *w);
    char *tmp = w ? strdup(path) : NULL, *tmp2 = tmp ? strdup(path) : NULL;
    if (tmp2) {
        w->dir = strdup(dirname(tmp));
        w->name = strdup(basename(tmp2));
    }
    free(tmp);
    free(tmp2);
    if (!w || !w->dir || !w->name) {
        if (w) {
            free(w->dir);
            free(w->name);
        }
        free(w);
        return UV_ENOMEM;
    }
    w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    int rc = w->fd < 0 ? -errno : uv_poll_init(loop, &w->poll, w->fd);
    if (rc != 0) {
        if (w->fd >= 0)
            close(w->fd);
        free(w->dir);
        free(w->name);
        free(w);
        return rc;
    }
    w->wd = -1;
    w->at_once = flags & FILEWATCH_AT_ONCE;
    w->cb = cb;
    w->ctx = ctx;
    uv_timer_init(loop, &w->settle);
    uv_timer_init(loop, &w->recheck);
    w->poll.data = w->settle.data = w->recheck.data = w;
    w->open_handles = 3;
    uv_poll_start(&w->poll, UV_READABLE, on_readable);
    *out = w;
    return 0;
}

static void on_closed(uv_handle_t *handle)
{
    struct filewatch *w = handle->data;
    if (--w->open_handles > 0)
        return;
    close(w->fd); /* after the poll handle is closed: libuv must not watch a closed descriptor */
    free(w->dir);
    free(w->name);
    free(w);
}

void filewatch_stop(struct filewatch *w)
{
    if (!w || w->stopping)
        return;
    w->stopping = true;
    uv_close((uv_handle_t *)&w->poll, on_closed);
    uv_close((uv_handle_t *)&w->settle, on_closed);
    uv_close((uv_handle_t *)&w->recheck, on_closed);
}
