/*
 * apicall.h - one API call over the upstream client, its answer kept whole:
 * what the port sync's calls to qBittorrent (qbt.c) and the questions to
 * Gluetun's control server (gluetun.c) both are. A call takes a connection,
 * has its owner write the request, keeps the body up to a limit, is bounded
 * by one deadline, and when upstream reports that a pooled connection broke
 * before any answer and the owner said the request is safe to repeat, goes
 * out once more on a new connection (upstream_may_retry's rule). The owner
 * says every outcome in its own words; this module logs nothing.
 *
 * struct apicall is embedded in its owner; its fields are this module's.
 * One call at a time. The ops run from the loop, never inside apicall_start.
 * on_answer and on_failure run with the call over: they may start the next
 * call, or abort or free a; after them, or apicall_abort, nothing of that
 * call runs.
 */
#ifndef QGS_APICALL_H
#define QGS_APICALL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "upstream.h"

/* Where a call failed. */
enum apicall_stage {
    APICALL_CONNECT,   /* no connection (err UV_ETIMEDOUT: not within the deadline; UV_EBUSY: queue full) */
    APICALL_SEND,      /* the request could not be written (err from write_request, or the write's) */
    APICALL_TOO_LARGE, /* the body went over the call's limit */
    APICALL_EXCHANGE,  /* the connection broke, timed out (UV_ETIMEDOUT) or brought an invalid response */
    APICALL_NO_MEMORY, /* out of memory for the answer, or for the retry (err UV_ENOMEM) */
};

struct apicall_failure {
    enum apicall_stage stage;
    int err;            /* a libuv error */
    const char *reason; /* upstream's words for CONNECT and EXCHANGE, else uv_strerror(err) */
};

struct apicall_ops {
    /* Writes the request on c (upstream_conn_write); runs for every attempt, so a retry carries what is true
     * then. Returns 0 or a libuv error. c stays the call's: the owner neither keeps, releases nor aborts it.
     */
    int (*write_request)(void *ctx, struct upstream_conn *c);
    /* The response head, for the fields the owner needs; may be NULL. */
    void (*on_head)(void *ctx, const struct upstream_response *r);
    /* The answer is complete: body is len bytes (not NUL-terminated), valid until this returns; the
     * connection is already released. */
    void (*on_answer)(void *ctx, int status, const char *body, size_t len);
    /* The call failed; the connection is gone. */
    void (*on_failure)(void *ctx, const struct apicall_failure *f);
};

struct apicall {
    struct upstream *up;
    const struct apicall_ops *ops;
    void *ctx;
    struct upstream_conn *conn; /* while a call is on its way */
    struct buf body;
    uint64_t deadline;
    unsigned flags;
    int status;
    bool repeatable, retried;
};

/* Prepares a for calls through up, with answers of at most limit bytes; up, ops and ctx must outlive a.
 * Allocates nothing yet. */
void apicall_init(struct apicall *a, struct upstream *up, size_t limit, const struct apicall_ops *ops,
                  void *ctx);

/*
 * Starts a call: flags as for upstream_conn_get (UPSTREAM_PRIORITY), repeatable when the request may
 * reach the server twice without harm, deadline the loop time (upstream_now) by which it must be over,
 * waiting for a connection included. Returns 0, UV_EBUSY while a call is on its way, or UV_ENOMEM with
 * nothing started.
 */
int apicall_start(struct apicall *a, unsigned flags, bool repeatable, uint64_t deadline);

/* Ends the call on its way, if any, without its ops running. */
void apicall_abort(struct apicall *a);

/* Aborts the call on its way and frees the answer's memory; a is usable again after apicall_init. */
void apicall_free(struct apicall *a);

#endif
