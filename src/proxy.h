/*
 * proxy.h - forwards a client's request to qBittorrent and streams the
 * response back: bodies flow with bounded buffers both ways, chunked request
 * bodies are collected (qBittorrent reads Content-Length only), a request
 * that failed on a reused connection before any answer is retried once, and
 * upgrades become tunnels. Failures before the response head become 502, or
 * 504 on a timeout; after it, the client connection is aborted.
 */
#ifndef QGS_PROXY_H
#define QGS_PROXY_H

#include <llhttp.h>
#include <stdbool.h>
#include <uv.h>

#include "client.h"
#include "config.h"
#include "http.h"
#include "upstream.h"

struct proxy;
struct proxy_exchange;

/* Creates the proxy over an upstream client; both must outlive it. Returns 0 or UV_ENOMEM. */
int proxy_new(uv_loop_t *loop, const struct config *cfg, struct upstream *up, struct proxy **out);

/* Frees the proxy; NULL is a no-op. */
void proxy_free(struct proxy *px);

/*
 * Starts an exchange for a request whose head was just parsed. Sets *wait
 * when the server must hold the rest of the request until client_continue.
 * Returns the exchange, or NULL after answering the client itself (out of
 * memory).
 */
struct proxy_exchange *proxy_begin(struct proxy *px, struct client_conn *client, const llhttp_t *parser,
                                   const struct http_head *head, bool *wait);

/* A chunk of the announced size begins in a chunked request body. */
void proxy_chunk(struct proxy_exchange *ex, uint64_t size);

/* A piece of the request body (de-chunked). */
void proxy_body(struct proxy_exchange *ex, const char *data, size_t len);

/* The whole request has been received. */
void proxy_end(struct proxy_exchange *ex);

/* Raw bytes from the client after client_start_tunnel. */
void proxy_tunnel(struct proxy_exchange *ex, const char *data, size_t len);

/* The client's write queue drained after being full. */
void proxy_client_drained(struct proxy_exchange *ex);

/* The client connection is closing: the exchange ends and is freed. */
void proxy_client_gone(struct proxy_exchange *ex);

#endif
