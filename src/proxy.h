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

#include <uv.h>

#include "config.h"
#include "exchange.h"
#include "upstream.h"

struct proxy;

/* Creates the proxy over an upstream client; both must outlive it. Returns 0 or UV_ENOMEM. */
int proxy_new(uv_loop_t *loop, const struct config *cfg, struct upstream *up, struct proxy **out);

/* Frees the proxy; NULL is a no-op. */
void proxy_free(struct proxy *px);

/* One proxied exchange per request: begin takes the struct proxy as its context. */
extern const struct exchange_ops proxy_ops;

#endif
