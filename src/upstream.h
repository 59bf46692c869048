/*
 * upstream.h - the HTTP/1.1 client to qBittorrent, shared by the reverse proxy
 * and the port-sync API calls (one HTTP stack). It resolves QBIT_ADDR's host
 * without blocking, tries each address until one answers (and, for https://,
 * completes a TLS handshake that verifies qBittorrent) and remembers it,
 * keeps a bounded pool of idle keep-alive connections (dropped before
 * qBittorrent's own ~7 s idle close), parses responses with llhttp and bounds
 * every wait with a timer.
 *
 * The connections open at once are bounded (max_conns, with a few kept for
 * priority owners: the API calls). An exchange beyond the bound waits in a
 * FIFO queue, bounded in length and, within the response timeout, in time,
 * and takes the next connection that is released, so connections are reused
 * rather than opened and closed under load.
 *
 * A connection carries one exchange at a time for one owner, who gets the
 * events through a handler. The owner writes the request, receives the
 * response, then either releases the connection (back to the pool when it
 * can be reused) or aborts it. After on_error, release or abort, no callback
 * of that connection runs again and the owner must forget it. Failures come
 * with their reason (struct upstream_failure); this module logs nothing and
 * counts nothing itself.
 */
#ifndef QGS_UPSTREAM_H
#define QGS_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "http.h"
#include "stream.h"
#include "url.h"

struct tls_ctx;
struct upstream;
struct upstream_conn;

/* A response head as parsed: what owners need of it besides its fields. */
struct upstream_response {
    int status;
    enum framing framing;    /* as the response delimits its body (FRAMING_NONE after a HEAD) */
    uint64_t content_length; /* with FRAMING_LENGTH */
    const struct http_head *head;
};

/*
 * Why an exchange failed. upstream.c neither logs nor counts: the owner
 * decides what it means (and says it in its own words, with reason).
 */
struct upstream_failure {
    int err; /* a libuv error: UV_ETIMEDOUT a timeout, UV_EPROTO an invalid response */
    const char
        *reason; /* what happened, naming no application ("connection refused", "no response within 60 s") */
    bool got_response; /* some of the response had arrived */
    bool reused;       /* the connection came from the pool */
};

/*
 * The one rule for sending a request again on a new connection: the failure
 * left it possible that the server never got it (a pooled connection that
 * broke before any answer, not by a timeout), it is safe to repeat, and it
 * was not retried before.
 */
bool upstream_may_retry(const struct upstream_failure *f, bool safe_to_repeat, bool retried);

struct upstream_handler {
    /*
     * The connection c is ready for the request (f NULL), or none could be made (c NULL; the one the owner
     * holds is gone; f->err UV_EBUSY when the queue was full). c is the one to use from now on: after a
     * wait in the queue it is not the one upstream_conn_get returned.
     */
    void (*on_connect)(void *ctx, struct upstream_conn *c, const struct upstream_failure *f);
    /* The response head arrived (interim 1xx other than 101 are skipped). */
    void (*on_head)(void *ctx, const struct upstream_response *r);
    /* A piece of the response body, already de-chunked. */
    void (*on_body)(void *ctx, const char *data, size_t len);
    /* The response is complete; the owner still holds the connection. */
    void (*on_end)(void *ctx);
    /* The connection broke, timed out or brought an invalid response. The connection is gone. */
    void (*on_error)(void *ctx, const struct upstream_failure *f);
    /* The write queue went back under UPSTREAM_WRITE_HIGH after being over it. */
    void (*on_drain)(void *ctx);
    /* After a 101 response: raw bytes from the other side of the tunnel. */
    void (*on_tunnel)(void *ctx, const char *data, size_t len);
};

/* Owners stop feeding a connection whose write queue is over this. */
#define UPSTREAM_WRITE_HIGH STREAM_WRITE_HIGH

struct upstream_options {
    unsigned connect_timeout_ms;  /* per address tried */
    unsigned response_timeout_ms; /* from the end of the request to the response head */
    unsigned io_timeout_ms;       /* without progress while a body or tunnel streams */
    unsigned pool_idle_ms;        /* an idle pooled connection is closed after this */
    unsigned pool_max;            /* idle connections kept at most */
    unsigned max_conns;  /* connections open at once (connecting, active, idle) at most; 0: no bound */
    unsigned reserved;   /* of max_conns, kept for UPSTREAM_PRIORITY exchanges */
    unsigned queue_max;  /* exchanges waiting for a connection at most; beyond it UV_EBUSY */
    struct tls_ctx *tls; /* speak TLS over it (https://), or NULL; must outlive the client */
};

/* Creates the client for url; returns 0 or a negative libuv error. The url must outlive it. */
int upstream_new(uv_loop_t *loop, const struct url *url, const struct upstream_options *opt,
                 struct upstream **out);

/* Closes the idle connections and stops resolving; active ones are closed by their owners. */
void upstream_close(struct upstream *up);

/* Frees the client once the loop has closed everything; NULL is a no-op. */
void upstream_free(struct upstream *up);

/* upstream_conn_get's flags. */
#define UPSTREAM_FRESH 1    /* a new connection, not a pooled one (a retry after a pooled one broke) */
#define UPSTREAM_PRIORITY 2 /* may use the reserved connections, and waits ahead of the others */

/*
 * Returns a connection for one exchange: a pooled one (unless UPSTREAM_FRESH),
 * else a new one while the bound allows, else a place in the queue.
 * on_connect is called in every case, never before this returns. Returns
 * NULL when out of memory.
 */
struct upstream_conn *upstream_conn_get(struct upstream *up, unsigned flags, const struct upstream_handler *h,
                                        void *ctx);

/* True while the exchange waits in the queue for a connection (nothing of it has gone out yet). */
bool upstream_conn_in_queue(const struct upstream_conn *c);

/* How long the exchange waited in the queue for its connection, in ms; -1 when it did not wait. */
int64_t upstream_conn_waited_ms(const struct upstream_conn *c);

/*
 * For a connection from the pool: takes it for use now, so on_connect will
 * not be called. Returns 1 when it did, 0 for a connection still connecting.
 */
int upstream_conn_take_ready(struct upstream_conn *c);

/*
 * Tells the parser that the response will have no body (the request was HEAD).
 * Such a connection is not pooled afterwards: a server may send the body
 * anyway (qBittorrent 4.5 does), and the next exchange would read it.
 */
void upstream_conn_expect_no_body(struct upstream_conn *c);

/* Tells the parser that the request asked for an upgrade; a 101 to any other is an invalid response. */
void upstream_conn_expect_upgrade(struct upstream_conn *c);

/*
 * Bounds the whole exchange, connecting included: at loop time at_ms (see
 * upstream_now) it fails with UV_ETIMEDOUT, whatever progress it makes.
 */
void upstream_conn_set_deadline(struct upstream_conn *c, uint64_t at_ms);

/* The loop's time in ms, for deadlines. */
uint64_t upstream_now(const struct upstream *up);

/* Queues bytes of the request (copied when they cannot be written at once); returns 0 or a libuv error. */
int upstream_conn_write(struct upstream_conn *c, const char *data, size_t len);

/* Marks the request complete: the response timeout starts. */
void upstream_conn_request_done(struct upstream_conn *c);

/* Returns the bytes queued and not yet written. */
size_t upstream_conn_queued(const struct upstream_conn *c);

/* Stops (paused = 1) or resumes reading the response, for back-pressure. */
void upstream_conn_pause(struct upstream_conn *c, int paused);

/* Ends the owner's use: pooled when reusable and the exchange completed cleanly, else closed. */
void upstream_conn_release(struct upstream_conn *c, int reusable);

/* Closes the connection now (with a reset); no callback follows. */
void upstream_conn_abort(struct upstream_conn *c);

/* The connections open now (carrying an exchange or connecting, idle in the pool) and the exchanges queued.
 */
void upstream_counts(const struct upstream *up, unsigned *active, unsigned *idle, unsigned *queued);

/* Writes the local address of the connection ("127.0.0.1") into buf; returns 0 or a libuv error. */
int upstream_conn_local_addr(const struct upstream_conn *c, char *buf, size_t len);

#endif
