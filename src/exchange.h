/*
 * exchange.h - the seam between a client connection and what serves one
 * request on it. server.c owns the connections and knows nothing of what
 * serves them: it hands each complete request head to the router it was
 * started with, which picks and starts one of two implementations of struct
 * exchange_ops: the proxy (proxy.c) or the sidecar's own endpoints
 * (endpoints.c). What crosses is struct request, what was parsed, never the
 * parser. The exchange talks back through client.h.
 *
 * An exchange lives from begin until it calls client_exchange_done,
 * client_exchange_fail or client_abort (after which the server calls none of
 * its ops again), or until gone (the connection closes; it must not touch the
 * client after that). None of these callbacks may be called by the exchange
 * itself.
 */
#ifndef QGS_EXCHANGE_H
#define QGS_EXCHANGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "http.h"

struct client_conn;

/* A complete request head, as the reader parsed and checked it. */
struct request {
    int method;              /* llhttp's method number (HTTP_GET, ...) */
    const char *method_name; /* "GET" */
    const char *target;      /* the request target, not NUL-terminated */
    size_t target_len;
    unsigned http_major, http_minor;
    bool keep_alive;      /* the client keeps the connection after this request */
    bool upgrade;         /* it asks for an upgrade (Connection: upgrade) */
    enum framing framing; /* FRAMING_NONE, FRAMING_LENGTH or FRAMING_CHUNKED */
    uint64_t content_length;
    const struct http_head *head; /* every field, as received */
    /* The connection it came on. */
    const char *peer;             /* the client's address, for logs and X-Forwarded-For */
    bool peer_allowed;            /* the client is in ALLOWED_IPS */
    bool tls;                     /* it speaks TLS (the front door is https://) */
    const struct sockaddr *local; /* the address the client connected to */
};

struct exchange_ops {
    /*
     * Starts serving req for client. Returns the exchange, or NULL when it has
     * already answered (client_exchange_fail) and needs nothing more. Sets
     * *wait to have the server hold the rest of the request until
     * client_continue.
     */
    void *(*begin)(void *ctx, struct client_conn *client, const struct request *req, bool *wait);
    /* A chunk of the announced size begins in a chunked body (may be NULL). */
    void (*chunk)(void *ex, uint64_t size);
    /* A piece of the body, de-chunked. */
    void (*body)(void *ex, const char *data, size_t len);
    /* The whole request has been received. */
    void (*end)(void *ex);
    /* Raw bytes from the client after client_start_tunnel (may be NULL). */
    void (*tunnel)(void *ex, const char *data, size_t len);
    /* The client's write queue drained after being full (may be NULL). */
    void (*drained)(void *ex);
    /* The connection is closing: the exchange ends and frees itself. */
    void (*gone)(void *ex);
    /*
     * The client closed its sending side while the exchange holds its request
     * (before client_continue). Returns true to go on and answer it (a
     * half-close after a whole request), false to have it taken as gone (may
     * be NULL: go on).
     */
    bool (*client_eof)(void *ex);
};

/*
 * Picks what serves a request and starts it: as exchange_ops.begin, and sets
 * *ops to the ops of the exchange it returns.
 */
struct router {
    void *(*begin)(void *router_ctx, struct client_conn *client, const struct request *req, bool *wait,
                   const struct exchange_ops **ops);
    void *router_ctx;
};

#endif
