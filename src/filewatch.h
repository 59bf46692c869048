/*
 * filewatch.h - says when a file may have changed, with inotify on its
 * directory: the file appearing, changing in place, being replaced by a
 * rename (atomic writes, Kubernetes ..data symlink swaps) or vanishing.
 * Events are settled for FILEWATCH_SETTLE_MS first, so a burst is one look;
 * with FILEWATCH_AT_ONCE, a write that is complete (the file closed after
 * writing, or something renamed into place) is looked at without waiting.
 * While the directory is missing or cannot be watched it is tried again
 * every second; otherwise nothing polls. What the file means is the owner's.
 */
#ifndef QGS_FILEWATCH_H
#define QGS_FILEWATCH_H

#include <uv.h>

/* Debounce after a file event. */
#define FILEWATCH_SETTLE_MS 10

/* filewatch_start's flags. */
#define FILEWATCH_AT_ONCE 1 /* look at once after a complete write, not after the settle time */

enum filewatch_event {
    FILEWATCH_CHANGED,    /* the directory is watched, and the file may have changed: read it */
    FILEWATCH_WRITTEN,    /* ... and it was just closed after writing, or renamed into place (AT_ONCE) */
    FILEWATCH_NO_DIR,     /* the directory does not exist (it is looked for again in a second) */
    FILEWATCH_DIR_FAILED, /* the directory cannot be watched, err says why (tried again in a second) */
};

typedef void (*filewatch_cb)(void *ctx, enum filewatch_event event, int err);

struct filewatch;

/*
 * Prepares to watch path's directory (flags: 0 or FILEWATCH_AT_ONCE); nothing
 * is reported until filewatch_look. Returns 0 or a libuv error (no inotify
 * instance left, out of memory).
 */
int filewatch_start(uv_loop_t *loop, const char *path, int flags, filewatch_cb cb, void *ctx,
                    struct filewatch **out);

/*
 * Looks now: (re)starts watching the directory where needed and reports what
 * it finds through cb, before returning (the owner's first read, or one it
 * was asked for).
 */
void filewatch_look(struct filewatch *w);

/* Looks again after the settle time: for a complete write that may be the first half of two (an empty file).
 */
void filewatch_settle(struct filewatch *w);

/* Looks again in a second: for a file that could not be read (permissions change without an event). */
void filewatch_look_later(struct filewatch *w);

/* The directory watched. */
const char *filewatch_dir(const struct filewatch *w);

/* Stops watching; cb is not called again, and the watch frees itself once its handles are closed. */
void filewatch_stop(struct filewatch *w);

#endif
