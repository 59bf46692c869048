/*
 * endpoints.h - the sidecar's own answers, and the router that sends every
 * other request to the proxy. The endpoints are /healthz and /readyz (for
 * anyone: probes come from the node), /sync (ALLOWED_IPS, and loopback for
 * Gluetun's hooks) and /metrics (ALLOWED_IPS), and
 * the front door's refusals: a client outside ALLOWED_IPS (403), a target
 * that is not origin-form (400), a cross-origin request (401), a Host name
 * qBittorrent would refuse (421, or 503 while that cannot be checked yet).
 * Refusals are logged, rate-limited; with ACCESS_LOG every answer is. One of
 * the two implementations of exchange.h; the proxy is the other.
 */
#ifndef QGS_ENDPOINTS_H
#define QGS_ENDPOINTS_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "config.h"
#include "exchange.h"
#include "hostcheck.h"
#include "proxy.h"
#include "sync.h"

/* Where a request goes. */
enum route {
    ROUTE_PROXY,
    ROUTE_HEALTHZ,
    ROUTE_READYZ,
    ROUTE_SYNC,
    ROUTE_METRICS,
    ROUTE_DENIED,
    ROUTE_BAD_TARGET,
    ROUTE_CROSS_ORIGIN,
    ROUTE_BAD_HOST,       /* a Host name qBittorrent would refuse: 421 */
    ROUTE_HOST_UNCHECKED, /* a Host name that cannot be checked yet: 503 */
    ROUTE_NO_UPSTREAM,
};

/* What routing knows besides the request. */
struct route_context {
    bool have_sync, have_proxy;    /* the port sync (/sync, /readyz) and the proxy are configured */
    const struct hostcheck *hosts; /* the Host names passed on; NULL checks none */
};

/* Returns where req goes; for ROUTE_CROSS_ORIGIN, ROUTE_BAD_HOST and ROUTE_HOST_UNCHECKED, why says
 * what did not match. Pure. */
enum route endpoints_route_of(const struct request *req, const struct route_context *ctx, char *why,
                              size_t why_size);

struct endpoints;

/*
 * Creates the endpoints; sync or proxy may be NULL (not configured); up is
 * read for /metrics' connection counts. All must outlive them.
 */
int endpoints_new(uv_loop_t *loop, const struct config *cfg, struct sync *sync, struct proxy *proxy,
                  const struct upstream *up, struct endpoints **out);

/* Frees them (flushing their log summaries); NULL is a no-op. */
void endpoints_free(struct endpoints *e);

/* The router to start the server with: the sidecar's own answers here, everything else to the proxy. */
struct router endpoints_router(struct endpoints *e);

#endif
