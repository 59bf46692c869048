/* endpoints.c - /healthz, /readyz, /sync, /metrics and the front door's refusals; the router. */
#include "endpoints.h"

#include <arpa/inet.h>
#include <llhttp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "client.h"
#include "log.h"
#include "metrics.h"
#include "rewrite.h"

struct endpoints {
    uv_loop_t *loop;
    const struct config *cfg;
    struct sync *sync;
    struct proxy *proxy;
    const struct upstream *up;
    struct log_limiter deny_limit, refusal_limit;
};

/* One request the sidecar answers itself. */
struct local_exchange {
    struct endpoints *e;
    struct client_conn *client;
    enum route route;
    int method;
    bool keep_alive;
    bool sync_waiting;         /* a /sync waiting for its reconcile */
    struct sync_waiter waiter; /* ... answered by on_sync_done */
    char path[201];            /* for the access log */
};

static const struct exchange_ops local_ops;

/* ---- routing ---- */

/* The client is on this host's loopback (in a container or a Pod: the same network namespace). */
static bool peer_is_loopback(const char *peer)
{
    struct in6_addr a6;
    struct in_addr a4;
    if (!peer)
        return false;
    if (inet_pton(AF_INET, peer, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, peer, &a6) != 1)
        return false;
    return IN6_IS_ADDR_LOOPBACK(&a6) || (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
}

static bool target_is(const struct request *req, const char *path)
{
    size_t plen = strlen(path);
    return req->target_len >= plen && memcmp(req->target, path, plen) == 0 &&
           (req->target_len == plen || req->target[plen] == '?');
}

enum route endpoints_route_of(const struct request *req, const struct route_context *ctx, char *why,
                              size_t why_size)
{
    /* Health probes come from the node or the kubelet, not from the allowed networks. */
    if (target_is(req, "/healthz"))
        return ROUTE_HEALTHZ;
    if (target_is(req, "/readyz") && ctx->have_sync)
        return ROUTE_READYZ;
    /* Gluetun's port-forwarding hooks run in the network namespace it shares with us: their /sync comes
     * from loopback, whatever ALLOWED_IPS lets in from the network. It only makes the sidecar look again. */
    if (target_is(req, "/sync") && ctx->have_sync && !req->peer_allowed && peer_is_loopback(req->peer))
        return ROUTE_SYNC;
    if (!req->peer_allowed)
        return ROUTE_DENIED;
    /* Only origin-form targets ("/path"): no absolute URLs, no CONNECT, no "*". */
    if (req->method == HTTP_CONNECT || req->target_len == 0 || req->target[0] != '/')
        return ROUTE_BAD_TARGET;
    if (target_is(req, "/sync") && ctx->have_sync)
        return ROUTE_SYNC;
    if (target_is(req, "/metrics"))
        return ROUTE_METRICS;
    if (rewrite_check_origin(req->head, req->tls, why, why_size) != 0)
        return ROUTE_CROSS_ORIGIN;
    if (!ctx->have_proxy)
        return ROUTE_NO_UPSTREAM;
    /* A Host name qBittorrent would refuse (DNS rebinding) does not reach it; our own endpoints are
     * not qBittorrent's and are answered whatever the Host. */
    size_t host_len = 0;
    const char *host = http_head_find(req->head, "host", &host_len);
    switch (ctx->hosts ? hostcheck_allows(ctx->hosts, host, host_len, req->local, why, why_size)
                       : HOSTCHECK_OK) {
    case HOSTCHECK_REFUSED:
        return ROUTE_BAD_HOST;
    case HOSTCHECK_UNKNOWN:
        return ROUTE_HOST_UNCHECKED;
    case HOSTCHECK_OK:
        break;
    }
    return ROUTE_PROXY;
}

/* Logs (rate-limited) and counts a refusal; what the client sent goes into fields, which the log escapes. */
static void note_refusal(struct endpoints *e, const struct request *req, enum route route, const char *why)
{
    char msg[96];
    if (route == ROUTE_DENIED) {
        metrics.denied_requests++;
        if (!log_limiter_allow(&e->deny_limit, uv_now(e->loop)))
            return;
        char path[201];
        snprintf(path, sizeof path, "%.*s", (int)(req->target_len > 200 ? 200 : req->target_len),
                 req->target);
        snprintf(msg, sizeof msg, "denied %s (not in ALLOWED_IPS)", req->peer);
        const char *kv[] = {"method", req->method_name, "path", path};
        log_fields(LOG_WARN, msg, kv, 4);
        return;
    }
    if (route == ROUTE_BAD_HOST)
        metrics.misdirected_requests++;
    if (route != ROUTE_CROSS_ORIGIN && route != ROUTE_BAD_HOST && route != ROUTE_HOST_UNCHECKED)
        return;
    if (!log_limiter_allow(&e->refusal_limit, uv_now(e->loop)))
        return;
    snprintf(msg, sizeof msg, "client %s: %s", req->peer,
             route == ROUTE_CROSS_ORIGIN ? "cross-origin request refused"
             : route == ROUTE_BAD_HOST   ? "Host refused (DNS rebinding?)"
                                         : "Host not checked yet");
    const char *kv[] = {"detail", why};
    log_fields(LOG_WARN, msg, kv, 2);
}

static void *local_start(struct endpoints *e, struct client_conn *client, const struct request *req,
                         enum route route);

static void *route_and_begin(void *router_ctx, struct client_conn *client, const struct request *req,
                             bool *wait, const struct exchange_ops **ops)
{
    struct endpoints *e = router_ctx;
    char why[512];
    const struct route_context rc = {
        .have_sync = e->sync != NULL, .have_proxy = e->proxy != NULL, .hosts = e->cfg->hosts};
    enum route r = endpoints_route_of(req, &rc, why, sizeof why);
    *wait = false;
    if (r == ROUTE_PROXY) {
        *ops = &proxy_ops;
        return proxy_ops.begin(e->proxy, client, req, wait);
    }
    note_refusal(e, req, r, why);
    *ops = &local_ops;
    return local_start(e, client, req, r);
}

struct router endpoints_router(struct endpoints *e)
{
    return (struct router){.begin = route_and_begin, .router_ctx = e};
}

/* ---- answers ---- */

static bool is_refusal(enum route r)
{
    return r == ROUTE_DENIED || r == ROUTE_CROSS_ORIGIN || r == ROUTE_BAD_TARGET || r == ROUTE_BAD_HOST ||
           r == ROUTE_HOST_UNCHECKED;
}

/* Sends one answer and logs it when ACCESS_LOG is on. */
static void answer(struct local_exchange *x, int status, const char *type, const char *extra,
                   const char *body, size_t len, bool keep_alive)
{
    size_t sent = client_respond(x->client, status, type, extra, body, len, keep_alive);
    if (x->e->cfg->access_log)
        log_access(client_peer(x->client), llhttp_method_name(x->method), x->path, strlen(x->path), status,
                   sent, 0, 0);
}

static void answer_text(struct local_exchange *x, int status, const char *extra, const char *text,
                        bool keep_alive)
{
    answer(x, status, NULL, extra, text, strlen(text), keep_alive);
}

static void finish(struct local_exchange *x, bool keep_alive)
{
    client_exchange_done(x->client, keep_alive);
    free(x);
}

static void on_sync_done(struct sync_waiter *w, int status, const char *json)
{
    struct local_exchange *x = (struct local_exchange *)((char *)w - offsetof(struct local_exchange, waiter));
    x->sync_waiting = false;
    answer(x, status, "application/json", NULL, json, strlen(json), x->keep_alive);
    finish(x, x->keep_alive);
}

static const char *const only_get_head = "Allow: GET, HEAD\r\n";
static const char *const use_get_head = "method not allowed; use GET or HEAD\n";

/* Answers by route; returns false when the answer comes later (a /sync waiting for its run). */
static bool respond(struct local_exchange *x)
{
    struct endpoints *e = x->e;
    bool keep_alive = x->keep_alive, get_or_head = x->method == HTTP_GET || x->method == HTTP_HEAD;
    switch (x->route) {
    case ROUTE_HEALTHZ:
        if (get_or_head)
            answer_text(x, 200, NULL, "ok\n", keep_alive);
        else
            answer_text(x, 405, only_get_head, use_get_head, keep_alive);
        return true;
    case ROUTE_READYZ: {
        char text[1200];
        if (!get_or_head) {
            answer_text(x, 405, only_get_head, use_get_head, keep_alive);
            return true;
        }
        answer_text(x, sync_readiness(e->sync, text, sizeof text), NULL, text, keep_alive);
        return true;
    }
    case ROUTE_METRICS: {
        if (!get_or_head) {
            answer_text(x, 405, only_get_head, use_get_head, keep_alive);
            return true;
        }
        unsigned active = 0, idle = 0, queued = 0;
        if (e->up)
            upstream_counts(e->up, &active, &idle, &queued);
        metrics.upstream_connections_active = active;
        metrics.upstream_connections_idle = idle;
        metrics.upstream_queue_length = queued;
        struct buf text;
        buf_init(&text, 256 * 1024);
        if (metrics_render(&text) != 0)
            answer_text(x, 500, NULL, "cannot render the metrics\n", keep_alive);
        else
            answer(x, 200, "text/plain; version=0.0.4; charset=utf-8", NULL, text.data, text.len, keep_alive);
        buf_free(&text);
        return true;
    }
    case ROUTE_SYNC: {
        char json[1024];
        if (x->method != HTTP_GET && x->method != HTTP_POST) {
            answer_text(x, 405, "Allow: GET, POST\r\n", "method not allowed; use GET or POST\n", keep_alive);
            return true;
        }
        int status = sync_request(e->sync, &x->waiter, json, sizeof json);
        if (status != 0) {
            answer(x, status, "application/json", NULL, json, strlen(json), keep_alive);
            return true;
        }
        x->sync_waiting = true;
        return false;
    }
    case ROUTE_DENIED:
        answer_text(x, 403, NULL, "forbidden: your address is not in ALLOWED_IPS\n", keep_alive);
        return true;
    case ROUTE_BAD_TARGET:
        answer_text(x, 400, NULL, "bad request target: only /path targets are served\n", false);
        return true;
    case ROUTE_CROSS_ORIGIN:
        answer_text(x, 401, NULL, "cross-origin request refused: Origin or Referer does not match Host\n",
                    keep_alive);
        return true;
    case ROUTE_BAD_HOST:
        answer_text(
            x, 421, NULL,
            "misdirected request: qBittorrent does not answer to this Host name (the sidecar's log says "
            "why; see ALLOWED_HOSTS)\n",
            keep_alive);
        return true;
    case ROUTE_HOST_UNCHECKED:
        answer_text(
            x, 503, "Retry-After: 5\r\n",
            "qBittorrent has not answered the sidecar yet, so this Host name cannot be checked against "
            "its server domains; use the address itself, set ALLOWED_HOSTS, or try again\n",
            keep_alive);
        return true;
    case ROUTE_NO_UPSTREAM:
    case ROUTE_PROXY:
        answer_text(x, 502, NULL, "upstream not configured\n", keep_alive);
        return true;
    }
    return true;
}

/* ---- the exchange ---- */

static void *local_start(struct endpoints *e, struct client_conn *client, const struct request *req,
                         enum route route)
{
    struct local_exchange *x = calloc(1, sizeof *x);
    if (!x) {
        client_exchange_fail(client, 503, "out of memory");
        return NULL;
    }
    x->e = e;
    x->client = client;
    x->route = route;
    x->method = req->method;
    x->keep_alive = req->keep_alive && !req->upgrade;
    x->waiter.cb = on_sync_done;
    snprintf(x->path, sizeof x->path, "%.*s", (int)(req->target_len > 200 ? 200 : req->target_len),
             req->target);
    /* A refusal need not wait for a body the client may not even send (Expect: 100-continue). */
    if (is_refusal(route) && req->framing != FRAMING_NONE) {
        x->keep_alive = false;
        respond(x);
        finish(x, false);
        return NULL;
    }
    return x;
}

static void *local_begin(void *ctx, struct client_conn *client, const struct request *req, bool *wait)
{
    struct endpoints *e = ctx;
    char why[512];
    const struct route_context rc = {
        .have_sync = e->sync != NULL, .have_proxy = e->proxy != NULL, .hosts = e->cfg->hosts};
    *wait = false;
    return local_start(e, client, req, endpoints_route_of(req, &rc, why, sizeof why));
}

static void local_body(void *ex, const char *data, size_t len)
{
    (void)ex, (void)data, (void)len; /* nothing the sidecar serves takes a body */
}

static void local_end(void *ex)
{
    struct local_exchange *x = ex;
    if (respond(x))
        finish(x, x->keep_alive);
}

static void local_gone(void *ex)
{
    struct local_exchange *x = ex;
    if (x->sync_waiting)
        sync_waiter_cancel(x->e->sync, &x->waiter);
    free(x);
}

static const struct exchange_ops local_ops = {
    .begin = local_begin,
    .body = local_body,
    .end = local_end,
    .gone = local_gone,
};

int endpoints_new(uv_loop_t *loop, const struct config *cfg, struct sync *sync, struct proxy *proxy,
                  const struct upstream *up, struct endpoints **out)
{
    struct endpoints *e = calloc(1, sizeof *e);
    if (!e)
        return UV_ENOMEM;
    e->loop = loop;
    e->cfg = cfg;
    e->sync = sync;
    e->proxy = proxy;
    e->up = up;
    e->deny_limit = (struct log_limiter){.what = "denied requests", .window_ms = 10000, .burst = 5};
    e->refusal_limit = (struct log_limiter){.what = "refused requests", .window_ms = 10000, .burst = 5};
    *out = e;
    return 0;
}

void endpoints_free(struct endpoints *e)
{
    if (!e)
        return;
    log_limiter_flush(&e->deny_limit);
    log_limiter_flush(&e->refusal_limit);
    free(e);
}
