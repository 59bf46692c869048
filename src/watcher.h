/*
 * watcher.h - follows Gluetun's port file (through filewatch.h: inotify on
 * its directory, renames and ..data swaps included) and says what it holds
 * after each change. A complete write (the file closed after writing, as
 * Gluetun's single open-truncate-write-close does, or renamed into place) is
 * read at once; other events are settled for a moment first, and so is an
 * empty file, so the gap between a truncate and its write is never taken for
 * a change.
 */
#ifndef QGS_WATCHER_H
#define QGS_WATCHER_H

#include <stdint.h>
#include <uv.h>

#include "filewatch.h"

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

/* Starts watching path and reads it once, calling cb before returning. Returns 0 or a libuv error. */
int watcher_start(uv_loop_t *loop, const char *path, watcher_cb cb, void *ctx, struct watcher **out);

/* Reads the file now, as if it had changed (for /sync); cb runs before this returns. */
void watcher_read_now(struct watcher *w);

/* Stops watching (cb is not called again) and frees the watcher; NULL is a no-op. */
void watcher_stop(struct watcher *w);

/* Returns a short name for a state ("port", "empty", ...). */
const char *watcher_state_name(enum watcher_state state);

#endif
