/*
 * watcher.h - follows Gluetun's port file with inotify on its directory, so
 * it sees the file appear, change in place, be replaced by a rename (atomic
 * writes, Kubernetes ..data symlink swaps) or vanish. Events are settled for
 * a moment before the file is read, so the empty file between Gluetun's
 * truncate and write is never taken for a change. While the directory is
 * missing or unreadable it is checked again every second; otherwise there is
 * no polling.
 */
#ifndef QGS_WATCHER_H
#define QGS_WATCHER_H

#include <stdint.h>
#include <uv.h>

/* Debounce after a file event; also the longest gap that still counts as one rewrite. */
#define WATCHER_SETTLE_MS 10

enum watcher_state {
    WATCH_PORT,       /* the file holds a valid port */
    WATCH_EMPTY,      /* the file is empty: forwarding is down (Gluetun 3.41+) */
    WATCH_MISSING,    /* the file (or its directory) does not exist: forwarding is down, or not up yet */
    WATCH_INVALID,    /* the file holds something else; the last port stays */
    WATCH_UNREADABLE, /* the file or directory cannot be read; the last port stays */
};

/* Called after each read of the file; detail describes INVALID and UNREADABLE. */
typedef void (*watcher_cb)(void *ctx, enum watcher_state state, uint16_t port, const char *detail);

struct watcher;

/* Starts watching path; reads it once at start. Returns 0 or a libuv error. cb runs from the loop. */
int watcher_start(uv_loop_t *loop, const char *path, watcher_cb cb, void *ctx, struct watcher **out);

/* Reads the file now, as if it had changed (for /sync); cb runs before this returns. */
void watcher_read_now(struct watcher *w);

/* Stops watching; the watcher frees itself once its handles are closed. */
void watcher_stop(struct watcher *w);

/* Returns a short name for a state ("port", "empty", ...). */
const char *watcher_state_name(enum watcher_state state);

#endif
