/* gluetun.c - ask Gluetun's control server for the forwarded port, over its own upstream client. */
#include "gluetun.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apicall.h"
#include "backoff.h"

#define RESPONSE_LIMIT (64 * 1024)
#define ROUTE_NEW "/v1/portforward"           /* Gluetun 3.41 and later */
#define ROUTE_OLD "/v1/openvpn/portforwarded" /* Gluetun 3.40; a 301 to ROUTE_NEW from 3.41 on */
#define AUTH_MAX 1024

struct gluetun {
    const struct config *cfg;
    struct upstream *up;
    gluetun_cb cb;
    void *ctx;
    uv_timer_t timer;    /* the next poll, or a failure to report from the loop */
    char auth[AUTH_MAX]; /* the header line that authenticates us, "" for none */
    bool polling, stopped;
    bool legacy; /* only ROUTE_OLD answered last time (Gluetun 3.40) */
    unsigned failures;

    /* The ask in flight: one request, or two when the first route was not the one. */
    bool busy, switched, report_oom;
    bool ask_again; /* asked for again while it was on its way: its answer may be older than the question */
    bool on_old;    /* the request on the wire is for ROUTE_OLD */
    uint64_t deadline;
    struct apicall call;
    char location[256];
    int first_status; /* after switching routes: what the first route answered */
    char first_route[32];
};

static const struct apicall_ops ops;
static void ask(struct gluetun *g);

const char *gluetun_state_name(enum gluetun_state state)
{
    static const char *const names[] = {"unknown", "port", "down", "failed"};
    return names[state];
}

/* A port number from JSON: an integer from lo to 65535. */
static bool json_port(const json_t *v, json_int_t lo, uint16_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > 65535)
        return false;
    *out = (uint16_t)json_integer_value(v);
    return true;
}

int gluetun_parse(const char *json, size_t len, uint16_t *port, char *err, size_t errlen)
{
    json_error_t error;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &error);
    int rc = -1;
    if (!root || !json_is_object(root)) {
        snprintf(err, errlen, "not a JSON object");
        goto out;
    }
    json_t *one = json_object_get(root, "port"), *many = json_object_get(root, "ports");
    uint16_t first = 0, listed = 0;
    if (!one && !many) {
        snprintf(err, errlen, "neither \"port\" nor \"ports\" in it");
        goto out;
    }
    if (one && !json_port(one, 0, &first)) {
        snprintf(err, errlen, "\"port\" is not a port number (0 to 65535)");
        goto out;
    }
    /* "ports" is null when there are none (Gluetun 3.41.2's Go nil slice), else port numbers. */
    if (many && !json_is_null(many)) {
        size_t i;
        json_t *v;
        if (!json_is_array(many)) {
            snprintf(err, errlen, "\"ports\" is not a list");
            goto out;
        }
        json_array_foreach(many, i, v)
        {
            uint16_t p;
            if (!json_port(v, 1, &p)) {
                snprintf(err, errlen, "\"ports\" holds something other than port numbers (1 to 65535)");
                goto out;
            }
            if (i == 0)
                listed = p;
        }
    }
    *port = first ? first : listed;
    rc = 0;
out:
    json_decref(root);
    return rc;
}

static void base64(const unsigned char *in, size_t len, char *out)
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (i + 1 < len ? (unsigned)in[i + 1] << 8 : 0) |
                     (i + 2 < len ? in[i + 2] : 0);
        *out++ = alphabet[v >> 18 & 63];
        *out++ = alphabet[v >> 12 & 63];
        *out++ = i + 1 < len ? alphabet[v >> 6 & 63] : '=';
        *out++ = i + 2 < len ? alphabet[v & 63] : '=';
    }
    *out = '\0';
}

/* The authentication header, once: X-API-Key, or HTTP basic. Returns 0, or -1 when it does not fit. */
static int make_auth(struct gluetun *g)
{
    const struct config *cfg = g->cfg;
    if (cfg->gluetun_api_key) {
        int n = snprintf(g->auth, sizeof g->auth, "X-API-Key: %s\r\n", cfg->gluetun_api_key);
        return n > 0 && (size_t)n < sizeof g->auth ? 0 : -1;
    }
    if (!cfg->gluetun_user)
        return 0;
    char pair[600]; /* config.c bounds each to 256 bytes */
    int n = snprintf(pair, sizeof pair, "%s:%s", cfg->gluetun_user, cfg->gluetun_pass);
    if (n < 0 || (size_t)n >= sizeof pair)
        return -1;
    char encoded[4 * sizeof pair / 3 + 4];
    base64((const unsigned char *)pair, (size_t)n, encoded);
    explicit_bzero(pair, sizeof pair);
    snprintf(g->auth, sizeof g->auth, "Authorization: Basic %s\r\n", encoded);
    explicit_bzero(encoded, sizeof encoded);
    return 0;
}

int gluetun_new(uv_loop_t *loop, const struct config *cfg, struct upstream *up, gluetun_cb cb, void *ctx,
                struct gluetun **out)
{
    struct gluetun *g = calloc(1, sizeof *g);
    if (!g)
        return UV_ENOMEM;
    g->cfg = cfg;
    g->up = up;
    g->cb = cb;
    g->ctx = ctx;
    apicall_init(&g->call, up, RESPONSE_LIMIT, &ops, g);
    if (make_auth(g) != 0) {
        free(g);
        return UV_ENOMEM;
    }
    uv_timer_init(loop, &g->timer);
    g->timer.data = g;
    *out = g;
    return 0;
}

/* ---- reporting ---- */

static void on_timer(uv_timer_t *t)
{
    ask(t->data);
}

/* Ends the ask: schedules the next one (while polling) and reports. */
static void report(struct gluetun *g, enum gluetun_state state, uint16_t port, const char *detail)
{
    g->busy = false;
    if (g->ask_again) {
        /* A /sync (Gluetun's hook: forwarding just changed) came while this was on its way: the answer
         * may predate the change. Only the answer to a question asked after it counts. */
        ask(g);
        return;
    }
    g->failures = state == GLUETUN_FAILED ? g->failures + 1 : 0;
    if (g->polling)
        uv_timer_start(
            &g->timer, on_timer,
            state == GLUETUN_FAILED ? backoff_ms(g->failures, backoff_jitter()) : g->cfg->gluetun_poll_ms, 0);
    g->cb(g->ctx, state, port, detail);
}

static const char *route(const struct gluetun *g)
{
    return g->on_old ? ROUTE_OLD : ROUTE_NEW;
}

static void fail(struct gluetun *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fail(struct gluetun *g, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    report(g, GLUETUN_FAILED, 0, msg);
}

/* ---- asking ---- */

/* Puts the request for the current route on a connection; a failure to start is reported from the loop. */
static void send_request(struct gluetun *g)
{
    g->location[0] = '\0';
    /* A GET: safe to send again when a pooled connection broke before any answer. */
    if (apicall_start(&g->call, 0, true, g->deadline) != 0) {
        g->report_oom = true;
        uv_timer_start(&g->timer, on_timer, 0, 0);
    }
}

static void ask(struct gluetun *g)
{
    if (g->stopped)
        return;
    if (g->report_oom) {
        /* Reported from the loop (the timer), never inside gluetun_ask or gluetun_poll. */
        if (uv_is_active((uv_handle_t *)&g->timer))
            return;
        g->report_oom = false;
        fail(g, "out of memory for a request to Gluetun's control server");
        return;
    }
    if (g->busy) {
        g->ask_again = true;
        return;
    }
    uv_timer_stop(&g->timer);
    g->busy = true;
    g->ask_again = false;
    g->switched = false;
    g->first_status = 0;
    g->on_old = g->legacy;
    g->deadline = upstream_now(g->up) + g->cfg->upstream_timeout_ms;
    send_request(g);
}

void gluetun_poll(struct gluetun *g, bool on)
{
    if (g->stopped || g->polling == on)
        return;
    g->polling = on;
    if (on)
        ask(g);
    else if (!g->report_oom)
        uv_timer_stop(&g->timer);
}

void gluetun_ask(struct gluetun *g)
{
    ask(g);
}

static void on_closed(uv_handle_t *handle)
{
    struct gluetun *g = handle->data;
    apicall_free(&g->call);
    explicit_bzero(g->auth, sizeof g->auth);
    free(g);
}

void gluetun_stop(struct gluetun *g)
{
    if (!g || g->stopped)
        return;
    g->stopped = true;
    apicall_abort(&g->call);
    uv_close((uv_handle_t *)&g->timer, on_closed);
}

/* ---- upstream events ---- */

static int write_request(void *ctx, struct upstream_conn *c)
{
    struct gluetun *g = ctx;
    char req[AUTH_MAX + 1536];
    int n = snprintf(req, sizeof req,
                     "GET %s%s HTTP/1.1\r\nHost: %s\r\nUser-Agent: qbit-gluetun-sync/%s\r\n"
                     "Accept: application/json\r\n%sConnection: keep-alive\r\n\r\n",
                     g->cfg->gluetun.prefix, route(g), g->cfg->gluetun.authority, QGS_VERSION, g->auth);
    int rc = n > 0 && (size_t)n < sizeof req ? upstream_conn_write(c, req, (size_t)n) : UV_E2BIG;
    explicit_bzero(req, sizeof req);
    return rc;
}

static void on_head(void *ctx, const struct upstream_response *r)
{
    struct gluetun *g = ctx;
    size_t len = 0;
    const char *loc = r->status >= 300 && r->status < 400 ? http_head_find(r->head, "location", &len) : NULL;
    if (loc)
        snprintf(g->location, sizeof g->location, "%.*s", (int)len, loc);
}

/* What to do about a 401 or 403, in the words of Gluetun's configuration. */
static void refused(struct gluetun *g, int status, const char *path)
{
    const struct config *cfg = g->cfg;
    fail(g,
         "Gluetun's control server refused GET %s (HTTP %d): %s, and the routes of that role in Gluetun's "
         "config.toml must list \"GET /v1/portforward\" (\"GET /v1/openvpn/portforwarded\" before Gluetun "
         "3.41)",
         path, status,
         cfg->gluetun_api_key ? "check GLUETUN_API_KEY against its role's apikey"
         : cfg->gluetun_user  ? "check GLUETUN_USER and GLUETUN_PASS against its role's username and password"
                             : "set GLUETUN_API_KEY (or GLUETUN_USER and GLUETUN_PASS) to a role of its own");
}

/* Whether a failed answer may mean "this Gluetun serves the port at the other route". */
static bool other_route_may_answer(const struct gluetun *g, int status)
{
    /* 3.40 answers 401 (no role lists the new route) or 400 (no such route) for /v1/portforward; 3.41 a 301
     * for the old one (only there is a redirect a sign of the route move); 404 where a proxy sits in front.
     */
    return (g->on_old && status == 301) || status == 400 || status == 401 || status == 403 || status == 404;
}

static void on_answer(void *ctx, int status, const char *body, size_t len)
{
    struct gluetun *g = ctx;
    if (status >= 200 && status <= 299) {
        uint16_t port = 0;
        char why[256];
        if (gluetun_parse(body, len, &port, why, sizeof why) != 0) {
            fail(g,
                 "Gluetun's control server answered GET %s with something other than the forwarded port: %s",
                 route(g), why);
            return;
        }
        g->legacy = g->on_old;
        report(g, port ? GLUETUN_PORT : GLUETUN_DOWN, port, NULL);
        return;
    }
    /* Once per ask, the other route: the new one first, the old one for Gluetun 3.40 (and back after an
     * upgrade). A redirect is never followed: it could lead anywhere. */
    if (!g->switched && other_route_may_answer(g, status)) {
        g->switched = true;
        g->first_status = status;
        snprintf(g->first_route, sizeof g->first_route, "%s", route(g));
        g->on_old = !g->on_old;
        send_request(g);
        return;
    }
    /* Both routes failed: the new route's refusal says what to fix (a 301 from the old one says nothing). */
    if (g->switched && (g->first_status == 401 || g->first_status == 403) &&
        strcmp(g->first_route, ROUTE_NEW) == 0)
        refused(g, g->first_status, ROUTE_NEW);
    else if (status == 401 || status == 403)
        refused(g, status, route(g));
    else if (status >= 300 && status <= 399)
        fail(g,
             "Gluetun's control server answered GET %s with a redirect (HTTP %d) to \"%s\", which is not "
             "followed: set GLUETUN_CONTROL_URL to the control server itself",
             route(g), status, g->location);
    else if (g->switched)
        fail(g,
             "Gluetun's control server has no port-forwarding route: GET %s answered HTTP %d, GET %s HTTP %d",
             g->first_route, g->first_status, route(g), status);
    else
        fail(g, "Gluetun's control server answered GET %s with HTTP %d", route(g), status);
}

static void on_failure(void *ctx, const struct apicall_failure *f)
{
    struct gluetun *g = ctx;
    const char *at = g->cfg->gluetun.authority;
    if (f->stage == APICALL_CONNECT)
        fail(g, "cannot connect to Gluetun's control server at %s: %s", at, f->reason);
    else if (f->stage == APICALL_SEND)
        fail(g, "cannot send a request to Gluetun's control server at %s: %s", at, f->reason);
    else if (f->stage == APICALL_NO_MEMORY)
        fail(g, "out of memory for a request to Gluetun's control server");
    else if (f->stage == APICALL_TOO_LARGE)
        fail(g, "Gluetun's control server sent more than %d KiB for GET %s; not the forwarded port",
             RESPONSE_LIMIT >> 10, route(g));
    else if (f->err == UV_ETIMEDOUT)
        fail(g, "Gluetun's control server at %s did not answer within %u s (UPSTREAM_TIMEOUT)", at,
             g->cfg->upstream_timeout_ms / 1000);
    else
        fail(g, "Gluetun's control server at %s: %s", at, f->reason);
}

static const struct apicall_ops ops = {
    .write_request = write_request,
    .on_head = on_head,
    .on_answer = on_answer,
    .on_failure = on_failure,
};
