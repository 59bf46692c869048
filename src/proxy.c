/* proxy.c - one exchange per proxied request: client side in server.c, upstream side in upstream.c. */
#include "proxy.h"

#include <errno.h>
#include <llhttp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "client.h"
#include "log.h"
#include "metrics.h"
#include "rewrite.h"

#define CLIENT_WRITE_HIGH (256 * 1024)
#define REQUEST_HEAD_LIMIT (128 * 1024)

/* Finished exchanges kept with their buffers, so a request allocates nothing. */
#define SPARE_MAX 64

struct proxy {
    size_t buffered; /* bytes of chunked bodies collected, all exchanges together */
    struct proxy_exchange *spare;
    unsigned nspare;
    uv_loop_t *loop;
    const struct config *cfg;
    struct upstream *up;
    struct log_limiter error_limit;
};

struct proxy_exchange {
    struct proxy *px;
    struct client_conn *client;
    struct upstream_conn *conn;
    struct proxy_exchange *next_spare;
    /* The request head for qBittorrent, kept for a retry; then the response head for the client,
     * held until the first body bytes so both leave in one write. */
    struct buf head;
    struct buf body; /* a chunked request body, collected */
    bool collect;    /* the request body is chunked: collect, then send with Content-Length */
    bool has_body;   /* a Content-Length body streams through */
    bool head_request, expect_continue, upgrade;
    bool client_waiting; /* the server holds the request until we continue it */
    bool req_complete;   /* the client sent the whole request */
    bool retried;
    bool head_pending; /* the response head is in head, not yet written */
    bool sent_head;    /* the response head went to the client */
    bool tunnel;
    bool client_keep_alive, client_http11, keep_alive;
    bool client_tls; /* the client came over TLS */
    enum framing framing;
    /* For the access log and the metrics. */
    int method, status; /* status 0: the client got no answer from us */
    uint64_t start_ns, head_ns;
    size_t bytes; /* sent to the client */
    char path[256];
};

static const struct upstream_handler handler;
static int send_request(struct proxy_exchange *ex);

int proxy_new(uv_loop_t *loop, const struct config *cfg, struct upstream *up, struct proxy **out)
{
    struct proxy *px = calloc(1, sizeof *px);
    if (!px)
        return UV_ENOMEM;
    px->loop = loop;
    px->cfg = cfg;
    px->up = up;
    px->error_limit = (struct log_limiter){.what = "upstream errors", .window_ms = 10000, .burst = 5};
    *out = px;
    return 0;
}

void proxy_free(struct proxy *px)
{
    if (!px)
        return;
    log_limiter_flush(&px->error_limit);
    while (px->spare) {
        struct proxy_exchange *ex = px->spare;
        px->spare = ex->next_spare;
        buf_free(&ex->head);
        free(ex);
    }
    free(px);
}

static struct proxy_exchange *exchange_new(struct proxy *px)
{
    struct proxy_exchange *ex = px->spare;
    struct buf head;
    if (ex) {
        px->spare = ex->next_spare;
        px->nspare--;
        head = ex->head;
        buf_reset(&head);
    } else {
        ex = malloc(sizeof *ex);
        if (!ex)
            return NULL;
        buf_init(&head, REQUEST_HEAD_LIMIT);
    }
    memset(ex, 0, sizeof *ex);
    ex->head = head;
    ex->px = px;
    buf_init(&ex->body, px->cfg->max_buffered_body);
    return ex;
}

/* Counts the finished exchange, and logs it when ACCESS_LOG is on. */
static void account(struct proxy_exchange *ex)
{
    metrics_count_request(ex->method, ex->status);
    if (ex->px->cfg->access_log)
        log_access(client_peer(ex->client), llhttp_method_name(ex->method), ex->path, strlen(ex->path),
                   ex->status, ex->bytes, 1, ex->head_ns ? (double)(ex->head_ns - ex->start_ns) / 1e6 : -1.0);
}

static void exchange_free(struct proxy_exchange *ex)
{
    struct proxy *px = ex->px;
    account(ex);
    px->buffered -= ex->body.len;
    buf_free(&ex->body);
    if (px->nspare < SPARE_MAX && ex->head.cap <= 8192) {
        ex->next_spare = px->spare;
        px->spare = ex;
        px->nspare++;
        return;
    }
    buf_free(&ex->head);
    free(ex);
}

/* How an exchange ends. */
enum ending {
    END_DONE,  /* the response went out whole: the client goes on (or closes, without keep-alive) */
    END_FAIL,  /* nothing was sent yet: the client gets status and a short text, then a close */
    END_ABORT, /* a response was cut off: the client connection is reset, so it is not taken as whole */
    END_GONE,  /* the client went away: there is no one to tell */
};

/*
 * Every exchange ends here, once: it lets go of its connection to qBittorrent
 * (pooled when it finished cleanly, else closed), tells the client, counts
 * and logs the request, and frees itself.
 */
static void exchange_end(struct proxy_exchange *ex, enum ending how, int status, const char *text)
{
    if (ex->conn) {
        if (how == END_DONE)
            upstream_conn_release(ex->conn, ex->req_complete);
        else
            upstream_conn_abort(ex->conn);
        ex->conn = NULL;
    }
    switch (how) {
    case END_DONE:
        client_exchange_done(ex->client, ex->keep_alive && !ex->tunnel);
        break;
    case END_FAIL:
        ex->status = status;
        ex->bytes = client_exchange_fail(ex->client, status, text);
        break;
    case END_ABORT:
        client_abort(ex->client);
        break;
    case END_GONE:
        break;
    }
    exchange_free(ex);
}

/* Ends the exchange before any response byte reached the client. */
static void fail(struct proxy_exchange *ex, int status, const char *text)
{
    exchange_end(ex, END_FAIL, status, text);
}

static int connect_upstream(struct proxy_exchange *ex, int fresh)
{
    ex->conn = upstream_conn_get(ex->px->up, fresh ? UPSTREAM_FRESH : 0, &handler, ex);
    return ex->conn ? 0 : UV_ENOMEM;
}

static int build_head(struct proxy_exchange *ex, const struct request *req, uint64_t content_length)
{
    struct rewrite_request r = {
        .method = req->method_name,
        .upstream = &ex->px->cfg->qbit,
        .client_addr = client_peer(ex->client),
        .https = req->tls,
        .has_body = ex->has_body,
        .content_length = content_length,
        .upgrade = ex->upgrade,
    };
    return rewrite_request_head(&ex->head, req->head, &r);
}

static void *proxy_begin(void *ctx, struct client_conn *client, const struct request *req, bool *wait)
{
    struct proxy *px = ctx;
    *wait = false;
    struct proxy_exchange *ex = exchange_new(px);
    if (!ex) {
        client_exchange_fail(client, 503, "out of memory");
        return NULL;
    }
    ex->client = client;
    ex->method = req->method;
    ex->start_ns = uv_hrtime();
    snprintf(ex->path, sizeof ex->path, "%.*s",
             (int)(req->target_len < sizeof ex->path ? req->target_len : sizeof ex->path - 1), req->target);
    ex->head_request = req->method == HTTP_HEAD;
    ex->upgrade = req->upgrade;
    ex->client_keep_alive = req->keep_alive;
    ex->client_http11 = req->http_major == 1 && req->http_minor >= 1;
    ex->client_tls = req->tls;
    ex->collect = req->framing == FRAMING_CHUNKED;
    ex->has_body = req->framing == FRAMING_LENGTH;
    size_t len;
    const char *expect = http_head_find(req->head, "expect", &len);
    /* RFC 9110, 15.2: no 1xx to an HTTP/1.0 client. */
    ex->expect_continue =
        ex->client_http11 && expect && len == 12 && strncasecmp(expect, "100-continue", 12) == 0;

    /* qBittorrent cannot read a chunked body: collect it first, the head follows with its length. */
    if (ex->collect) {
        /* The head without its blank line; proxy_end adds Content-Length and the blank line. */
        if (build_head(ex, req, 0) != 0)
            goto too_large;
        ex->head.len -= 2;
        if (ex->expect_continue)
            client_write(client, "HTTP/1.1 100 Continue\r\n\r\n", 25);
        return ex;
    }
    if (build_head(ex, req, req->content_length) != 0)
        goto too_large;
    if (connect_upstream(ex, 0) != 0) {
        fail(ex, 503, "out of memory");
        return NULL;
    }
    /* A pooled connection takes the request at once; a new one makes the client wait for it. */
    if (upstream_conn_take_ready(ex->conn))
        return send_request(ex) == 0 ? ex : NULL;
    ex->client_waiting = true;
    *wait = true;
    return ex;

too_large:
    fail(ex, 431, "request head too large");
    return NULL;
}

/*
 * The request may be sent again on another connection: qBittorrent may have received and executed
 * it before the connection broke, so only a method that is safe to repeat (RFC 9110, 9.2.2) is,
 * and only while we still hold all of it (a streamed body is gone, a collected one is here).
 */
static bool replayable(const struct proxy_exchange *ex)
{
    bool idempotent = ex->method == HTTP_GET || ex->method == HTTP_HEAD || ex->method == HTTP_OPTIONS ||
                      ex->method == HTTP_PUT || ex->method == HTTP_DELETE || ex->method == HTTP_TRACE;
    return idempotent && !ex->has_body && (!ex->collect || ex->req_complete);
}

/* Writes the request (and a collected body) on a ready connection; returns 0, or -1 after failing. */
static int send_request(struct proxy_exchange *ex)
{
    if (ex->head_request)
        upstream_conn_expect_no_body(ex->conn);
    if (ex->upgrade)
        upstream_conn_expect_upgrade(ex->conn);
    int rc = upstream_conn_write(ex->conn, ex->head.data, ex->head.len);
    if (rc == 0 && ex->collect && ex->body.len > 0)
        rc = upstream_conn_write(ex->conn, ex->body.data, ex->body.len);
    if (rc < 0) {
        fail(ex, 502, "cannot send the request to qBittorrent");
        return -1;
    }
    if (ex->req_complete)
        upstream_conn_request_done(ex->conn);
    if (ex->expect_continue && ex->has_body)
        client_write(ex->client, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    return 0;
}

static void on_connect(void *ctx, struct upstream_conn *c, const struct upstream_failure *f)
{
    struct proxy_exchange *ex = ctx;
    ex->conn = c;
    if (f && f->err == UV_EBUSY) {
        /* Too many waiting for qBittorrent already: come back in a moment rather than queue for minutes. */
        metrics.upstream_queue_full++;
        fail(ex, 503, "too many requests are waiting for qBittorrent; try again");
        return;
    }
    if (f) {
        char msg[300];
        snprintf(msg, sizeof msg, "cannot connect to qBittorrent at %s: %s", ex->px->cfg->qbit.authority,
                 f->reason);
        if (log_limiter_allow(&ex->px->error_limit, uv_now(ex->px->loop)))
            log_warn("%s", msg);
        metrics.upstream_errors[f->err == UV_ETIMEDOUT ? UPSTREAM_ERR_TIMEOUT : UPSTREAM_ERR_CONNECT]++;
        fail(ex, f->err == UV_ETIMEDOUT ? 504 : 502, msg);
        return;
    }
    int64_t waited = upstream_conn_waited_ms(c);
    if (waited >= 0)
        metrics_observe(&metrics.upstream_queue_wait, (double)waited / 1000.0);
    bool waiting = ex->client_waiting;
    ex->client_waiting = false;
    if (send_request(ex) == 0 && waiting)
        client_continue(ex->client);
}

/*
 * MAX_BUFFERED_BODY bounds one collected body (413 past it) and all of them
 * together (503 while others hold the room), so a few clients cannot push
 * the sidecar past its memory limit. Returns 0 when size more bytes fit.
 */
static int reserve_body(struct proxy_exchange *ex, uint64_t size)
{
    struct proxy *px = ex->px;
    if (size > ex->body.limit - ex->body.len) {
        fail(ex, 413, "chunked request body larger than MAX_BUFFERED_BODY");
        return -1;
    }
    if (size > px->cfg->max_buffered_body - px->buffered) {
        fail(ex, 503, "too many chunked uploads at once; try again");
        return -1;
    }
    return 0;
}

static void proxy_chunk(void *arg, uint64_t size)
{
    struct proxy_exchange *ex = arg;
    /* Refuse at once what cannot fit, rather than after receiving it. */
    if (ex->collect)
        reserve_body(ex, size);
}

static void proxy_body(void *arg, const char *data, size_t len)
{
    struct proxy_exchange *ex = arg;
    if (ex->collect) {
        if (reserve_body(ex, len) != 0)
            return;
        if (buf_append(&ex->body, data, len) != 0) {
            fail(ex, 503, "out of memory");
            return;
        }
        ex->px->buffered += len;
        return;
    }
    if (!ex->conn)
        return;
    if (upstream_conn_write(ex->conn, data, len) < 0) {
        fail(ex, 502, "cannot send the request body to qBittorrent");
        return;
    }
    if (upstream_conn_queued(ex->conn) > UPSTREAM_WRITE_HIGH)
        client_pause(ex->client, 1);
}

static void proxy_end(void *arg)
{
    struct proxy_exchange *ex = arg;
    ex->req_complete = true;
    if (ex->collect) {
        if (buf_printf(&ex->head, "Content-Length: %zu\r\n\r\n", ex->body.len) != 0 ||
            connect_upstream(ex, 0) != 0) {
            fail(ex, 503, "out of memory");
            return;
        }
        if (upstream_conn_take_ready(ex->conn))
            send_request(ex);
        return;
    }
    if (ex->conn)
        upstream_conn_request_done(ex->conn);
}

static void proxy_tunnel(void *arg, const char *data, size_t len)
{
    struct proxy_exchange *ex = arg;
    if (!ex->conn)
        return;
    if (upstream_conn_write(ex->conn, data, len) < 0) {
        exchange_end(ex, END_ABORT, 0, NULL);
        return;
    }
    if (upstream_conn_queued(ex->conn) > UPSTREAM_WRITE_HIGH)
        client_pause(ex->client, 1);
}

static void proxy_client_drained(void *arg)
{
    struct proxy_exchange *ex = arg;
    if (ex->conn)
        upstream_conn_pause(ex->conn, 0);
}

static void proxy_client_gone(void *arg)
{
    exchange_end(arg, END_GONE, 0, NULL);
}

/*
 * The client half-closed while its request waits for a connection. A request already whole (no body to
 * come) is answered, as after any half-close; but one still in the queue behind UPSTREAM_MAX_CONNECTIONS
 * leaves it: a FIN is all a client that went away sends, and it must not hold a place (nginx, too, takes
 * it as the client gone).
 */
static bool proxy_client_eof(void *arg)
{
    struct proxy_exchange *ex = arg;
    return !ex->has_body && !ex->collect && !(ex->conn && upstream_conn_in_queue(ex->conn));
}

/* ---- the upstream side ---- */

static void on_head(void *ctx, const struct upstream_response *resp)
{
    struct proxy_exchange *ex = ctx;
    const struct http_head *head = resp->head;
    int status = resp->status;
    struct rewrite_response r = {.status = status, .https = ex->client_tls};
    ex->status = status;
    ex->head_ns = uv_hrtime();
    if (status == 101) {
        ex->tunnel = true; /* upstream.c lets a 101 through only when the request asked for the upgrade */
        r.upgrade = 1;
        r.framing = FRAMING_NONE;
    } else if (resp->framing == FRAMING_NONE || status < 200) {
        r.framing = FRAMING_NONE;
    } else if (resp->framing == FRAMING_LENGTH) {
        r.framing = FRAMING_LENGTH;
        r.content_length = resp->content_length;
    } else {
        /* Chunked or read-to-close upstream: re-chunk for HTTP/1.1 clients to keep them alive. */
        r.framing = ex->client_http11 ? FRAMING_CHUNKED : FRAMING_CLOSE;
    }
    /* An upgrade that was refused leaves the request parser unusable: close after it. */
    ex->keep_alive = ex->client_keep_alive && r.framing != FRAMING_CLOSE && !ex->upgrade &&
                     ex->req_complete && !client_closing(ex->client);
    r.keep_alive = ex->keep_alive;
    ex->framing = r.framing;

    /* No retry is possible once an answer came: the request head's buffer now holds the response's. */
    buf_reset(&ex->head);
    if (rewrite_response_head(&ex->head, head, &r) != 0) {
        fail(ex, 502, "qBittorrent's response head is too large");
        return;
    }
    ex->head_pending = true;
}

/* Sends body bytes to the client, preceded by the held head, in one write. */
static void send_to_client(struct proxy_exchange *ex, const char *data, size_t len, bool last)
{
    uv_buf_t bufs[5];
    unsigned n = 0;
    char size[24];
    if (ex->head_pending) {
        bufs[n++] = uv_buf_init(ex->head.data, (unsigned)ex->head.len);
        ex->head_pending = false;
        ex->sent_head = true;
    }
    if (len > 0 && ex->framing == FRAMING_CHUNKED) {
        int k = snprintf(size, sizeof size, "%zx\r\n", len);
        bufs[n++] = uv_buf_init(size, (unsigned)k);
        bufs[n++] = uv_buf_init((char *)data, (unsigned)len);
        bufs[n++] = uv_buf_init("\r\n", 2);
    } else if (len > 0) {
        bufs[n++] = uv_buf_init((char *)data, (unsigned)len);
    }
    if (last && ex->framing == FRAMING_CHUNKED)
        bufs[n++] = uv_buf_init("0\r\n\r\n", 5);
    for (unsigned i = 0; i < n; i++)
        ex->bytes += bufs[i].len;
    if (n > 0)
        client_writev(ex->client, bufs, n);
}

static void on_body(void *ctx, const char *data, size_t len)
{
    struct proxy_exchange *ex = ctx;
    send_to_client(ex, data, len, false);
    if (ex->conn && client_queued(ex->client) > CLIENT_WRITE_HIGH)
        upstream_conn_pause(ex->conn, 1);
}

static void on_end(void *ctx)
{
    struct proxy_exchange *ex = ctx;
    send_to_client(ex, NULL, 0, !ex->tunnel);
    if (ex->tunnel) {
        client_start_tunnel(ex->client);
        return;
    }
    exchange_end(ex, END_DONE, 0, NULL);
}

static void on_error(void *ctx, const struct upstream_failure *f)
{
    struct proxy_exchange *ex = ctx;
    ex->conn = NULL;
    if (ex->tunnel) {
        exchange_end(ex, END_DONE, 0, NULL); /* a tunnel ends when either side closes */
        return;
    }
    metrics.upstream_errors[f->err == UV_ETIMEDOUT ? UPSTREAM_ERR_TIMEOUT : UPSTREAM_ERR_BROKEN]++;
    if (!ex->sent_head && upstream_may_retry(f, replayable(ex), ex->retried)) {
        ex->retried = true;
        if (connect_upstream(ex, 1) == 0)
            return;
    }
    if (log_limiter_allow(&ex->px->error_limit, uv_now(ex->px->loop)))
        log_warn("%s: %s",
                 ex->sent_head ? "qBittorrent broke off a response" : "request to qBittorrent failed",
                 f->reason);
    if (ex->sent_head) {
        exchange_end(ex, END_ABORT, 0, NULL); /* the client must not take a cut-off body for a whole one */
        return;
    }
    fail(ex, f->err == UV_ETIMEDOUT ? 504 : 502,
         f->err == UV_ETIMEDOUT ? "qBittorrent did not answer in time"
         : f->err == UV_EPROTO  ? "qBittorrent sent an answer that cannot be passed on"
                                : "qBittorrent closed the connection");
}

static void on_drain(void *ctx)
{
    struct proxy_exchange *ex = ctx;
    client_pause(ex->client, 0);
}

static void on_tunnel(void *ctx, const char *data, size_t len)
{
    struct proxy_exchange *ex = ctx;
    client_write(ex->client, data, len);
    if (ex->conn && client_queued(ex->client) > CLIENT_WRITE_HIGH)
        upstream_conn_pause(ex->conn, 1);
}

static const struct upstream_handler handler = {
    .on_connect = on_connect,
    .on_head = on_head,
    .on_body = on_body,
    .on_end = on_end,
    .on_error = on_error,
    .on_drain = on_drain,
    .on_tunnel = on_tunnel,
};

const struct exchange_ops proxy_ops = {
    .begin = proxy_begin,
    .chunk = proxy_chunk,
    .body = proxy_body,
    .end = proxy_end,
    .tunnel = proxy_tunnel,
    .drained = proxy_client_drained,
    .gone = proxy_client_gone,
    .client_eof = proxy_client_eof,
};
