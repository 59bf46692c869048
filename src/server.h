/*
 * server.h - the front door: a TCP listener on LISTEN_ADDR:LISTEN_PORT whose
 * clients speak HTTP/1.1 (keep-alive, pipelining, HTTP/1.0), plain or over TLS. It reads each
 * request (request.h), hands it to the router it was started with
 * (exchange.h), and bounds every client: head size, head and idle timeouts,
 * connection count. It knows nothing of what serves the requests.
 */
#ifndef QGS_SERVER_H
#define QGS_SERVER_H

#include <uv.h>

#include "config.h"
#include "exchange.h"

struct server;

/*
 * Binds and starts listening; every request head goes to router, which must
 * outlive the server, as must the config. Returns 0 and the server in *out,
 * or a negative libuv error (already logged, naming the address) when nothing
 * could be bound.
 */
int server_start(uv_loop_t *loop, const struct config *cfg, const struct router *router, struct server **out);

/*
 * Graceful stop: closes the listener at once, closes idle clients, lets
 * requests in flight finish until the config's shutdown timeout, then closes
 * the rest. Calls on_stopped(arg) once, when every handle is closed; after that
 * the caller frees the server with server_free. A second call closes every
 * client at once.
 */
void server_stop(struct server *srv, void (*on_stopped)(void *arg), void *arg);

struct tls_ctx;

/*
 * Makes connections accepted from now on speak TLS over ctx (tls.h), which
 * must stay valid until the next call; open ones keep theirs. Plain HTTP
 * sent to such a port gets a plain 400 saying to use https://.
 */
void server_use_tls(struct server *srv, struct tls_ctx *ctx);

/* Frees a stopped server; NULL is a no-op. */
void server_free(struct server *srv);

#endif
