/*
 * sync.h - the reconciler: keeps qBittorrent's listen_port equal to the port
 * in Gluetun's file (or, while the file is missing and GLUETUN_CONTROL_URL is
 * set, the one Gluetun's control server serves). It compares and applies at
 * start, on every change of the source, on /sync and on a re-check timer; one run at a time, later triggers
 * folded into one more run, the newest port always wins. Failures are retried with capped exponential backoff
 * forever, and login failures wait minutes so qBittorrent never bans us.
 */
#ifndef QGS_SYNC_H
#define QGS_SYNC_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "qbt.h"

struct upstream;

struct sync;

/* Someone waiting for the result of a /sync: cb gets an HTTP status and a JSON body. */
struct sync_waiter {
    struct sync_waiter *prev, *next;
    unsigned long first_run; /* the run whose result answers it */
    void (*cb)(struct sync_waiter *w, int status, const char *json);
};

/*
 * Creates the reconciler; cfg and q must outlive it. With gluetun_up (a
 * client for GLUETUN_CONTROL_URL, closed by the caller after sync_stop),
 * Gluetun's control server is asked whenever the port file is missing.
 * Returns 0 or UV_ENOMEM.
 */
int sync_new(uv_loop_t *loop, const struct config *cfg, struct qbt *q, struct upstream *gluetun_up,
             struct sync **out);

/* Starts watching the port file and runs the first reconcile. Returns 0 or a libuv error. */
int sync_start(struct sync *s);

/* Stops timers, the watcher and any call in flight; waiters are answered 503. */
void sync_stop(struct sync *s);

/* Frees a stopped reconciler; NULL is a no-op. */
void sync_free(struct sync *s);

/*
 * Handles /sync: re-reads the source (the file, or the control server while
 * the file is missing) and reconciles now. Returns 0 when w->cb
 * will be called with the outcome, or an HTTP status (429 when called more
 * than once a second) with a JSON body written into json.
 */
int sync_request(struct sync *s, struct sync_waiter *w, char *json, size_t jsonlen);

/* Forgets a waiter whose client went away. */
void sync_waiter_cancel(struct sync *s, struct sync_waiter *w);

/* Handles /readyz: returns 200 or 503 and writes the reason into text. */
int sync_readiness(const struct sync *s, char *text, size_t textlen);

#endif
