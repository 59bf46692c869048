/* filewatch.c - inotify on a file's directory (through libuv), settling, and looking again while it is gone.
 */
#include "filewatch.h"

#include <errno.h>
#include <libgen.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define RECHECK_MS 1000

struct filewatch {
    char *dir;
    filewatch_cb cb;
    void *ctx;
    uv_fs_event_t event;
    uv_timer_t settle;  /* debounces events before a look */
    uv_timer_t recheck; /* while the directory is missing or unwatchable, or the file unreadable */
    bool event_active, stopping;
    dev_t dir_dev;
    ino_t dir_ino;
    int open_handles;
};

/* Returns true when the watched directory is still the one we watch (not removed or re-created). */
static bool dir_unchanged(const struct filewatch *w)
{
    struct stat st;
    return w->event_active && stat(w->dir, &st) == 0 && st.st_dev == w->dir_dev && st.st_ino == w->dir_ino;
}

static void stop_event(struct filewatch *w)
{
    if (w->event_active) {
        uv_fs_event_stop(&w->event);
        w->event_active = false;
    }
}

static void on_recheck(uv_timer_t *t)
{
    filewatch_look(t->data);
}

static void on_settled(uv_timer_t *t)
{
    filewatch_look(t->data);
}

static void on_fs_event(uv_fs_event_t *handle, const char *filename, int events, int status)
{
    (void)filename, (void)events;
    struct filewatch *w = handle->data;
    /*
     * Any change in the directory may concern the file: itself, a rename over
     * it, or a symlink it goes through (Kubernetes' ..data); an error on the
     * watch too. The timer is not restarted by later events, so a burst is
     * looked at once, promptly.
     */
    (void)status;
    if (!uv_is_active((uv_handle_t *)&w->settle))
        uv_timer_start(&w->settle, on_settled, FILEWATCH_SETTLE_MS, 0);
}

void filewatch_look(struct filewatch *w)
{
    if (w->stopping)
        return;
    uv_timer_stop(&w->recheck);
    if (dir_unchanged(w)) {
        w->cb(w->ctx, FILEWATCH_CHANGED, 0);
        return;
    }
    /* Not watched yet, or the directory went away or was replaced: watch whatever is there now. */
    stop_event(w);
    struct stat st;
    int rc = 0;
    if (stat(w->dir, &st) != 0)
        rc = -errno;
    else if (!S_ISDIR(st.st_mode))
        rc = UV_ENOTDIR;
    else
        rc = uv_fs_event_start(&w->event, on_fs_event, w->dir, 0);
    if (rc != 0) {
        uv_timer_start(&w->recheck, on_recheck, RECHECK_MS, 0);
        w->cb(w->ctx, rc == UV_ENOENT || rc == UV_ENOTDIR ? FILEWATCH_NO_DIR : FILEWATCH_DIR_FAILED, rc);
        return;
    }
    w->event_active = true;
    w->dir_dev = st.st_dev;
    w->dir_ino = st.st_ino;
    w->cb(w->ctx, FILEWATCH_CHANGED, 0);
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

int filewatch_start(uv_loop_t *loop, const char *path, filewatch_cb cb, void *ctx, struct filewatch **out)
{
    struct filewatch *w = calloc(1, sizeof *w);
    char *tmp = w ? strdup(path) : NULL;
    if (tmp)
        w->dir = strdup(dirname(tmp));
    free(tmp);
    if (!w || !w->dir) {
        free(w);
        return UV_ENOMEM;
    }
    w->cb = cb;
    w->ctx = ctx;
    uv_fs_event_init(loop, &w->event);
    uv_timer_init(loop, &w->settle);
    uv_timer_init(loop, &w->recheck);
    w->event.data = w->settle.data = w->recheck.data = w;
    w->open_handles = 3;
    *out = w;
    return 0;
}

static void on_closed(uv_handle_t *handle)
{
    struct filewatch *w = handle->data;
    if (--w->open_handles > 0)
        return;
    free(w->dir);
    free(w);
}

void filewatch_stop(struct filewatch *w)
{
    if (!w || w->stopping)
        return;
    w->stopping = true;
    uv_close((uv_handle_t *)&w->event, on_closed);
    uv_close((uv_handle_t *)&w->settle, on_closed);
    uv_close((uv_handle_t *)&w->recheck, on_closed);
}
