/* server.c - the listener and its client connections: read, hand each request to the router, bound, close. */
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <llhttp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "client.h"
#include "exchange.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "request.h"
#include "stream.h"

#define STASH_MAX (2 * 65536)
#define WAIT_READ_MAX 4096 /* read and held at most while an exchange waits for its connection */
#define RESPONSE_MAX 2048
#define LINGER_MS 2000

enum conn_phase {
    PHASE_IDLE,   /* waiting for the first byte of a request */
    PHASE_HEAD,   /* inside a request head: the header timeout runs */
    PHASE_BODY,   /* head complete, body still arriving */
    PHASE_WAIT,   /* request complete, the proxied response not yet finished */
    PHASE_TUNNEL, /* after a 101: raw bytes both ways */
    PHASE_LINGER, /* last response sent and write side shut: discard input until EOF */
};

struct client_conn {
    struct stream st;
    uv_timer_t timer;
    struct server *srv;
    struct client_conn *prev, *next;
    struct request_reader req;
    struct buf stash;               /* received bytes held while the parser waits */
    void *ex;                       /* the exchange serving the current request, or NULL */
    const struct exchange_ops *ops; /* ... and its ops */
    enum conn_phase phase;
    int handles_open;
    bool closing;           /* closing its handles; freed in the last close callback */
    bool close_after_write; /* no more requests: shut down once the writes drain */
    bool shutting_down;
    bool waiting;   /* the exchange holds the request until client_continue */
    bool bp_paused; /* the exchange asked us to stop reading (its upstream is full) */
    bool in_feed;   /* inside llhttp_execute */
    bool eof;       /* the client closed its side */
    bool eof_held;  /* ... while the exchange held its request: close once it is answered */
    bool broken;    /* a write failed: closing from the loop */
    bool peer_allowed;
    bool tls; /* accepted as a TLS connection */
    char peer[INET6_ADDRSTRLEN];
    struct sockaddr_storage local; /* the address the client connected to (for the Host check) */
};

struct server {
    uv_loop_t *loop;
    const struct config *cfg;
    struct router router;
    uv_tcp_t *listener;
    uv_timer_t deadline;
    struct client_conn *conns;
    unsigned nconns;
    bool stopping, listener_closed, stopped;
    void (*on_stopped)(void *arg);
    void *stop_arg;
    struct log_limiter client_error_limit;
    struct tls_ctx *tls; /* new connections speak TLS over it when set (not ours) */
};

static void conn_close(struct client_conn *c);
static void server_maybe_stopped(struct server *srv);
static void on_conn_timer(uv_timer_t *t);
static void conn_feed(struct client_conn *c, const char *data, size_t len);

static size_t queued(const struct client_conn *c)
{
    return stream_queued(&c->st);
}

/* Reads exactly when the connection can use what it reads; every state change ends here. */
static void update_reading(struct client_conn *c)
{
    bool want;
    if (c->closing || c->eof || c->broken)
        want = false;
    else if (c->phase == PHASE_LINGER)
        want = true;
    else
        /*
         * Not while unread responses pile up beyond the high mark (pipelining without reading). While
         * an exchange holds the request (waiting for a connection to qBittorrent, in the queue perhaps)
         * or waits for qBittorrent's answer, a little is read and held: a client that goes away is seen
         * at once and leaves the queue, and reading is not stopped and restarted around every request
         * (libuv pays two epoll_ctl calls for each restart).
         */
        want = !c->close_after_write &&
               ((!c->waiting && c->phase != PHASE_WAIT) || c->stash.len < WAIT_READ_MAX) && !c->bp_paused &&
               queued(c) <= STREAM_WRITE_HIGH;
    stream_read(&c->st, want);
}

static void arm_timer(struct client_conn *c, unsigned ms)
{
    if (!c->broken && !c->closing)
        uv_timer_start(&c->timer, on_conn_timer, ms, 0);
}

/* ---- writing and closing ---- */

static void conn_after_write(struct client_conn *c);

static void on_write_error(void *ctx, int err)
{
    struct client_conn *c = ctx;
    log_debug("client %s: write failed: %s", c->peer, uv_strerror(err));
    conn_close(c);
}

static void on_written(void *ctx)
{
    struct client_conn *c = ctx;
    if (stream_writing(&c->st))
        arm_timer(c, c->srv->cfg->idle_timeout_ms); /* the client is reading: not idle */
    conn_after_write(c);
}

static void on_drain(void *ctx)
{
    struct client_conn *c = ctx;
    if (c->ex && c->ops->drained)
        c->ops->drained(c->ex);
    update_reading(c);
}

static void on_broken(uv_timer_t *t)
{
    conn_close(t->data);
}

/*
 * A write failed. The exchange may be on the stack (it must outlive
 * this call), so the close happens from the loop, right after.
 */
static void conn_break(struct client_conn *c, const char *why, int err)
{
    if (c->broken)
        return;
    c->broken = true;
    log_debug("client %s: %s: %s", c->peer, why, uv_strerror(err));
    stream_read(&c->st, false);
    uv_timer_start(&c->timer, on_broken, 0, 0);
}

void client_writev(struct client_conn *c, const uv_buf_t *bufs, unsigned nbufs)
{
    if (c->closing || c->broken)
        return;
    int rc = stream_writev(&c->st, bufs, nbufs);
    if (rc < 0) {
        conn_break(c, "write failed", rc);
        return;
    }
    if (!stream_writing(&c->st))
        return; /* all of it went out at once */
    arm_timer(c, c->srv->cfg->idle_timeout_ms);
    if (queued(c) > STREAM_WRITE_HIGH)
        update_reading(c);
}

void client_write(struct client_conn *c, const char *data, size_t len)
{
    uv_buf_t buf = uv_buf_init((char *)data, (unsigned)len);
    client_writev(c, &buf, 1);
}

size_t client_queued(const struct client_conn *c)
{
    return queued(c);
}

int client_closing(const struct client_conn *c)
{
    return c->close_after_write || c->srv->stopping;
}

const char *client_peer(const struct client_conn *c)
{
    return c->peer;
}

static void on_linger_timeout(uv_timer_t *t)
{
    conn_close(t->data);
}

static void on_shutdown(struct stream *st, int status)
{
    struct client_conn *c = (struct client_conn *)((char *)st - offsetof(struct client_conn, st));
    if (c->closing)
        return;
    if (status < 0 || c->eof) {
        conn_close(c);
        return;
    }
    /*
     * Closing now could turn the client's unread request bytes into a reset
     * that destroys our response in its receive buffer. Read and discard
     * until it closes its side, or the linger time runs out.
     */
    c->phase = PHASE_LINGER;
    uv_timer_start(&c->timer, on_linger_timeout, LINGER_MS, 0);
    update_reading(c);
}

static void conn_after_write(struct client_conn *c)
{
    update_reading(c);
    if (stream_writing(&c->st) || !c->close_after_write || c->shutting_down || c->closing || c->broken)
        return;
    c->shutting_down = true;
    if (stream_shutdown(&c->st, on_shutdown) < 0)
        conn_close(c);
}

static void conn_handle_closed(struct client_conn *c)
{
    if (--c->handles_open > 0)
        return;
    struct server *srv = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    srv->nconns--;
    metrics.client_connections--;
    request_reader_free(&c->req);
    buf_free(&c->stash);
    free(c);
    server_maybe_stopped(srv);
}

static void on_timer_closed(uv_handle_t *handle)
{
    conn_handle_closed(handle->data);
}

static void on_stream_closed(struct stream *st)
{
    conn_handle_closed(st->ctx);
}

/* The one teardown path of a client: every error and timeout ends here. */
static void conn_close_how(struct client_conn *c, bool reset)
{
    if (c->closing)
        return;
    c->closing = true;
    if (c->ex) {
        void *ex = c->ex;
        c->ex = NULL;
        c->ops->gone(ex);
    }
    stream_close(&c->st, reset, on_stream_closed);
    uv_close((uv_handle_t *)&c->timer, on_timer_closed);
}

static void conn_close(struct client_conn *c)
{
    conn_close_how(c, false);
}

/* ---- responses ---- */

size_t client_respond(struct client_conn *c, int status, const char *content_type, const char *extra_headers,
                      const char *body, size_t body_len, int keep_alive)
{
    char head[RESPONSE_MAX];
    bool head_only = c->req.head_complete && llhttp_get_method(&c->req.parser) == HTTP_HEAD;
    if (!keep_alive || c->srv->stopping)
        c->close_after_write = true;
    int n = http_format_head(head, sizeof head, status, content_type, extra_headers, body_len,
                             !c->close_after_write);
    if (n < 0) {
        conn_close(c);
        return 0;
    }
    uv_buf_t bufs[2] = {uv_buf_init(head, (unsigned)n), uv_buf_init((char *)body, (unsigned)body_len)};
    client_writev(c, bufs, head_only ? 1 : 2);
    conn_after_write(c);
    return (size_t)n + (head_only ? 0 : body_len);
}

/* Answers a request that cannot be parsed or served, and closes the connection after it. */
static size_t answer_error(struct client_conn *c, int status, const char *reason)
{
    if (log_limiter_allow(&c->srv->client_error_limit, uv_now(c->srv->loop))) {
        char msg[96];
        snprintf(msg, sizeof msg, "client %s: %d %s", c->peer, status, http_status_reason(status));
        const char *kv[] = {"reason", reason};
        log_fields(LOG_INFO, msg, kv, 2);
    }
    char body[160];
    snprintf(body, sizeof body, "%s\n", reason);
    /* Bounds the wait for a client that never reads the answer. */
    arm_timer(c, c->srv->cfg->idle_timeout_ms);
    /* A 503 is a moment of overload (too many clients, or waiting for qBittorrent): say when to come back. */
    return client_respond(c, status, NULL, status == 503 ? "Retry-After: 1\r\n" : NULL, body, strlen(body),
                          false);
}

/* The server's own refusal of a request no exchange serves (cannot be read, too late, too many): the
 * access log has it here. */
static void conn_fail(struct client_conn *c, int status, const char *reason)
{
    size_t sent = answer_error(c, status, reason);
    if (!c->srv->cfg->access_log)
        return;
    size_t url_len = 0;
    const char *url = c->req.head_complete ? http_head_url(&c->req.head, &url_len) : "";
    const char *method = c->req.head_complete ? llhttp_method_name(llhttp_get_method(&c->req.parser)) : "-";
    log_access(c->peer, method, url, url_len, status, sent, 0, 0);
}

/* ---- the exchange's view of the connection (client.h) ---- */

/* Takes the held bytes and parses them; the parser may hold a new remainder. */
static void feed_stash(struct client_conn *c)
{
    struct buf held = c->stash;
    buf_init(&c->stash, held.limit);
    /*
     * Parse even when nothing is held: a request without a body paused at
     * its head completes (on_message_complete) only when the parser runs.
     */
    conn_feed(c, held.data ? held.data : "", held.len);
    buf_free(&held);
    update_reading(c);
}

void client_continue(struct client_conn *c)
{
    c->waiting = false;
    request_reader_resume(&c->req);
    feed_stash(c);
    if (c->eof_held) {
        /* The held request is whole now (what came before the end was held too): answer it, then close. */
        c->eof_held = false;
        c->close_after_write = true;
    }
}

void client_pause(struct client_conn *c, int paused)
{
    c->bp_paused = paused != 0;
    update_reading(c);
}

void client_start_tunnel(struct client_conn *c)
{
    c->phase = PHASE_TUNNEL;
    arm_timer(c, c->srv->cfg->idle_timeout_ms);
    struct buf held = c->stash;
    buf_init(&c->stash, held.limit);
    if (held.len > 0 && c->ex && c->ops->tunnel)
        c->ops->tunnel(c->ex, held.data, held.len);
    buf_free(&held);
    update_reading(c);
}

void client_exchange_done(struct client_conn *c, int keep_alive)
{
    c->ex = NULL;
    c->phase = PHASE_IDLE;
    c->bp_paused = false;
    if (!keep_alive || c->srv->stopping) {
        c->close_after_write = true;
        conn_after_write(c);
        return;
    }
    arm_timer(c, c->srv->cfg->idle_timeout_ms);
    if (c->in_feed)
        return; /* the feeding loop goes on with the next request */
    request_reader_resume(&c->req);
    feed_stash(c);
}

size_t client_exchange_fail(struct client_conn *c, int status, const char *body)
{
    c->ex = NULL;
    c->bp_paused = false;
    c->waiting = false;
    return answer_error(c, status, body);
}

void client_abort(struct client_conn *c)
{
    c->ex = NULL;
    conn_close_how(c, true);
}

/* ---- parsing ---- */

static int on_request_begin(struct request_reader *r)
{
    struct client_conn *c = r->owner;
    c->phase = PHASE_HEAD;
    arm_timer(c, c->srv->cfg->header_timeout_ms);
    return 0;
}

static int on_request_head(struct request_reader *r)
{
    struct client_conn *c = r->owner;
    c->phase = PHASE_BODY;
    arm_timer(c, c->srv->cfg->idle_timeout_ms);
    struct request req;
    request_describe(r, &req);
    req.peer = c->peer;
    req.peer_allowed = c->peer_allowed;
    req.tls = c->tls;
    req.local = (const struct sockaddr *)&c->local;
    bool wait = false;
    c->ex = c->srv->router.begin(c->srv->router.router_ctx, c, &req, &wait, &c->ops);
    if (!c->ex || wait) {
        c->waiting = wait;
        return HPE_PAUSED; /* answered already, or the body is held until qBittorrent is connected */
    }
    return 0;
}

static int on_request_chunk(struct request_reader *r)
{
    struct client_conn *c = r->owner;
    if (c->ex && c->ops->chunk)
        c->ops->chunk(c->ex, r->parser.content_length);
    return c->close_after_write || c->closing ? HPE_USER : 0;
}

static int on_request_body(struct request_reader *r, const char *at, size_t len)
{
    struct client_conn *c = r->owner;
    if (c->ex)
        c->ops->body(c->ex, at, len);
    return c->close_after_write || c->closing ? HPE_USER : 0;
}

static int on_request_complete(struct request_reader *r)
{
    struct client_conn *c = r->owner;
    if (c->ex) {
        /* The answer is bounded by whoever gives it (the upstream timeouts, a /sync's run); an exchange
         * that answers at once makes the connection idle again in client_exchange_done. */
        c->phase = PHASE_WAIT;
        uv_timer_stop(&c->timer);
        c->ops->end(c->ex);
    }
    /* Pause so the feeding loop decides whether to go on with pipelined bytes. */
    return HPE_PAUSED;
}

static const struct request_events request_events = {
    .on_begin = on_request_begin,
    .on_head = on_request_head,
    .on_chunk = on_request_chunk,
    .on_body = on_request_body,
    .on_complete = on_request_complete,
};

static void on_conn_timer(uv_timer_t *t)
{
    struct client_conn *c = t->data;
    if (c->close_after_write || c->phase == PHASE_LINGER || c->phase == PHASE_IDLE) {
        conn_close(c);
        return;
    }
    if (c->phase == PHASE_WAIT && !stream_writing(&c->st)) {
        arm_timer(c, c->srv->cfg->idle_timeout_ms); /* waiting on qBittorrent, not on the client */
        return;
    }
    if (c->ex || c->phase == PHASE_TUNNEL) {
        log_debug("client %s: no progress for %u s; closing", c->peer, c->srv->cfg->idle_timeout_ms / 1000);
        conn_close(c);
        return;
    }
    conn_fail(c, 408,
              c->phase == PHASE_HEAD ? "request head not received in time"
                                     : "request body not received in time");
}

/* Holds bytes the parser cannot take yet; more than one read's worth means a misbehaving client. */
static void stash(struct client_conn *c, const char *data, size_t len)
{
    if (len > 0 && buf_append(&c->stash, data, len) != 0)
        conn_fail(c, 400, "too much data sent ahead of the response");
}

static bool feed_done(void *owner)
{
    struct client_conn *c = owner;
    return c->close_after_write || c->closing;
}

static bool feed_busy(void *owner)
{
    struct client_conn *c = owner;
    return c->waiting || c->ex;
}

static void feed_hold(void *owner, const char *data, size_t len)
{
    stash(owner, data, len);
}

static void feed_upgraded(void *owner)
{
    struct client_conn *c = owner;
    c->close_after_write = true; /* answered as a plain request; the connection cannot carry on as HTTP */
    conn_after_write(c);
}

static void feed_refused(void *owner, int status, const char *reason)
{
    conn_fail(owner, status, reason);
}

static const struct request_feed feed_events = {
    .done = feed_done,
    .busy = feed_busy,
    .hold = feed_hold,
    .upgraded = feed_upgraded,
    .refused = feed_refused,
};

static void conn_feed(struct client_conn *c, const char *data, size_t len)
{
    if (c->phase == PHASE_TUNNEL) {
        if (c->ex && len > 0 && c->ops->tunnel)
            c->ops->tunnel(c->ex, data, len);
        return;
    }
    c->in_feed = true;
    request_reader_feed(&c->req, data, len, &feed_events, c);
    c->in_feed = false;
}

static void on_end(void *ctx, int err)
{
    struct client_conn *c = ctx;
    if (err != UV_EOF)
        log_debug("client %s: read failed: %s", c->peer,
                  stream_error(&c->st)[0] ? stream_error(&c->st) : uv_strerror(err));
    /* A client that half-closes after a complete request still gets its answer; while the exchange holds
     * the request (it waits for a connection to qBittorrent), the exchange says whether it goes on. */
    if (err == UV_EOF && c->waiting && c->ex && (!c->ops->client_eof || c->ops->client_eof(c->ex))) {
        c->eof = true;
        c->eof_held = true;
        update_reading(c);
        return;
    }
    if (err == UV_EOF && c->phase != PHASE_LINGER &&
        (c->phase == PHASE_WAIT || (c->phase == PHASE_IDLE && stream_writing(&c->st)))) {
        c->eof = true;
        c->close_after_write = true;
        update_reading(c);
        return;
    }
    conn_close(c);
}

static void on_data(void *ctx, const char *data, size_t len)
{
    struct client_conn *c = ctx;
    if (c->phase == PHASE_LINGER || c->close_after_write)
        return;
    if (c->phase == PHASE_BODY || c->phase == PHASE_TUNNEL)
        arm_timer(c, c->srv->cfg->idle_timeout_ms);
    conn_feed(c, data, len);
    update_reading(c);
}

static const struct stream_handler stream_events = {
    .on_data = on_data,
    .on_end = on_end,
    .on_write_error = on_write_error,
    .on_written = on_written,
    .on_drain = on_drain,
};

/* ---- accepting ---- */

static void peer_describe(struct client_conn *c)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    c->peer_allowed = false;
    snprintf(c->peer, sizeof c->peer, "unknown");
    int local_len = sizeof c->local;
    if (uv_tcp_getsockname(stream_tcp(&c->st), (struct sockaddr *)&c->local, &local_len) != 0)
        c->local.ss_family = AF_UNSPEC; /* no address: an IP literal in Host cannot match it */
    if (uv_tcp_getpeername(stream_tcp(&c->st), (struct sockaddr *)&ss, &len) != 0)
        return;
    c->peer_allowed = allowlist_match(c->srv->cfg->allowed, (struct sockaddr *)&ss);
    if (ss.ss_family == AF_INET) {
        uv_ip4_name((struct sockaddr_in *)&ss, c->peer, sizeof c->peer);
    } else {
        const struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        /* Show a v4 client on a dual-stack socket as the IPv4 address it is. */
        if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
            inet_ntop(AF_INET, s6->sin6_addr.s6_addr + 12, c->peer, sizeof c->peer);
        else
            uv_ip6_name(s6, c->peer, sizeof c->peer);
    }
}

/* Plain HTTP on the TLS port: the stream went plain for this one answer. */
static void on_plain(struct stream *st)
{
    struct client_conn *c = st->ctx;
    c->phase = PHASE_HEAD; /* a request is owed its answer */
    conn_fail(c, 400, "this port speaks HTTPS: use an https:// address");
}

static void on_connection(uv_stream_t *listener, int status)
{
    struct server *srv = listener->data;
    if (status < 0) {
        /* libuv itself sheds connections on EMFILE (its reserve-fd trick), so this never spins. */
        if (log_limiter_allow(&srv->client_error_limit, uv_now(srv->loop)))
            log_warn("accept failed: %s", uv_strerror(status));
        return;
    }
    struct client_conn *c = calloc(1, sizeof *c);
    if (!c) {
        log_error("out of memory accepting a client");
        return;
    }
    c->srv = srv;
    stream_init(&c->st, srv->loop, &stream_events, c);
    uv_timer_init(srv->loop, &c->timer);
    c->timer.data = c;
    c->handles_open = 2;
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    srv->nconns++;
    metrics.client_connections++;
    request_reader_init(&c->req, srv->cfg->max_header_size, &request_events, c);
    buf_init(&c->stash, STASH_MAX);

    int rc = uv_accept(listener, (uv_stream_t *)stream_tcp(&c->st));
    if (rc < 0) {
        log_debug("accept failed: %s", uv_strerror(rc));
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(stream_tcp(&c->st), 1);
    peer_describe(c);
    if (srv->tls && srv->nconns > srv->cfg->max_connections) {
        /* A 503 would cost a TLS handshake, the very work there is too much of: close at once. */
        log_debug("client %s: over MAX_CONNECTIONS; closed", c->peer);
        conn_close(c);
        return;
    }
    if (srv->tls && stream_tls_accept(&c->st, srv->tls, on_plain) != 0) {
        log_error("out of memory for a TLS connection");
        conn_close(c);
        return;
    }
    c->tls = srv->tls != NULL;
    if (srv->nconns > srv->cfg->max_connections) {
        c->phase = PHASE_HEAD; /* a request is owed its answer: a shutdown lets the 503 go out */
        conn_fail(c, 503, "too many connections; try again later");
        return;
    }
    /* A new connection owes its first request head within HEADER_TIMEOUT (as nginx's
     * client_header_timeout); between requests it may idle for IDLE_TIMEOUT. */
    arm_timer(c, srv->cfg->header_timeout_ms);
    update_reading(c);
}

/* ---- listening ---- */

static void on_listener_closed(uv_handle_t *handle)
{
    struct server *srv = handle->data;
    free(handle);
    if (srv) {
        srv->listener_closed = true;
        server_maybe_stopped(srv);
    }
}

/* Binds and listens on one address; on failure the handle is closed and freed. */
static int listen_on(struct server *srv, const char *addr, bool dual_stack)
{
    struct sockaddr_storage ss;
    int rc = strchr(addr, ':') ? uv_ip6_addr(addr, srv->cfg->listen_port, (struct sockaddr_in6 *)&ss)
                               : uv_ip4_addr(addr, srv->cfg->listen_port, (struct sockaddr_in *)&ss);
    if (rc < 0)
        return rc;
    uv_tcp_t *listener = malloc(sizeof *listener);
    if (!listener)
        return UV_ENOMEM;
    uv_tcp_init(srv->loop, listener);
    listener->data = NULL;
    rc = uv_tcp_bind(listener, (struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)listener, 511, on_connection);
    if (rc < 0) {
        uv_close((uv_handle_t *)listener, on_listener_closed);
        return rc;
    }
    listener->data = srv;
    srv->listener = listener;
    const char *lb = strchr(addr, ':') ? "[" : "", *rb = strchr(addr, ':') ? "]" : "";
    log_info("listening on %s%s%s:%u%s", lb, addr, rb, srv->cfg->listen_port,
             dual_stack ? " (IPv4 and IPv6)" : "");
    return 0;
}

int server_start(uv_loop_t *loop, const struct config *cfg, const struct router *router, struct server **out)
{
    struct server *srv = calloc(1, sizeof *srv);
    if (!srv)
        return UV_ENOMEM;
    srv->loop = loop;
    srv->cfg = cfg;
    srv->router = *router;
    srv->client_error_limit = (struct log_limiter){.what = "client errors", .window_ms = 10000, .burst = 5};
    uv_timer_init(loop, &srv->deadline);
    srv->deadline.data = srv;

    int rc;
    if (cfg->listen_addr) {
        rc = listen_on(srv, cfg->listen_addr, false);
    } else {
        /* Dual-stack where the kernel has IPv6; containers often disable it, so fall back to IPv4. */
        rc = listen_on(srv, "::", true);
        if (rc == UV_EAFNOSUPPORT || rc == UV_EADDRNOTAVAIL || rc == UV_EINVAL) {
            log_info("IPv6 is not available (%s); listening on IPv4 only", uv_strerror(rc));
            rc = listen_on(srv, "0.0.0.0", false);
        }
    }
    if (rc < 0) {
        log_error("cannot listen on %s port %u: %s", cfg->listen_addr ? cfg->listen_addr : "all interfaces",
                  cfg->listen_port, uv_strerror(rc));
        srv->listener_closed = true;
        srv->stopping = true;
        uv_close((uv_handle_t *)&srv->deadline, NULL);
        *out = srv;
        return rc;
    }
    *out = srv;
    return 0;
}

/* ---- stopping ---- */

static void on_deadline_closed(uv_handle_t *handle)
{
    struct server *srv = handle->data;
    if (srv->on_stopped)
        srv->on_stopped(srv->stop_arg);
}

static void server_maybe_stopped(struct server *srv)
{
    if (!srv->stopping || !srv->listener_closed || srv->nconns > 0 || srv->stopped)
        return;
    srv->stopped = true;
    log_limiter_flush(&srv->client_error_limit);
    uv_close((uv_handle_t *)&srv->deadline, on_deadline_closed);
}

static void close_all(struct server *srv)
{
    for (struct client_conn *c = srv->conns; c; c = c->next)
        conn_close(c);
}

static void on_deadline(uv_timer_t *t)
{
    struct server *srv = t->data;
    if (srv->nconns > 0)
        log_warn("shutdown deadline reached; closing %u connection(s)", srv->nconns);
    close_all(srv);
}

void server_stop(struct server *srv, void (*on_stopped)(void *arg), void *arg)
{
    if (srv->stopping) {
        close_all(srv);
        return;
    }
    srv->stopping = true;
    srv->on_stopped = on_stopped;
    srv->stop_arg = arg;
    uv_close((uv_handle_t *)srv->listener, on_listener_closed);
    srv->listener = NULL;
    /* A client in the middle of a request is answered (with Connection: close) before it goes. */
    for (struct client_conn *c = srv->conns; c; c = c->next) {
        if ((c->phase == PHASE_IDLE && !stream_writing(&c->st)) || c->phase == PHASE_LINGER) {
            conn_close(c);
        } else if (c->phase == PHASE_IDLE) {
            c->close_after_write = true;
            conn_after_write(c);
        }
    }
    uv_timer_start(&srv->deadline, on_deadline, srv->cfg->shutdown_timeout_ms, 0);
    server_maybe_stopped(srv);
}

void server_use_tls(struct server *srv, struct tls_ctx *ctx)
{
    srv->tls = ctx;
}

void server_free(struct server *srv)
{
    if (!srv)
        return;
    free(srv);
}
