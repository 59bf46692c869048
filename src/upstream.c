/* upstream.c - resolving, connecting, pooling and response parsing for requests to qBittorrent. */
#include "upstream.h"

#include <arpa/inet.h>
#include <llhttp.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <sys/socket.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stream.h"
#include "tls.h"

#define MAX_ADDRS 8
#define HEAD_LIMIT (64 * 1024)

enum conn_state {
    UC_RESOLVING,  /* waiting for the host's addresses */
    UC_CONNECTING, /* trying addresses one by one (the TLS handshake included) */
    UC_RETRYING,   /* a failed attempt's socket is closing; the next address follows */
    UC_QUEUED,  /* no connection yet: the exchange waits in the queue for one (no stream, only the timer) */
    UC_ACTIVE,  /* carrying an exchange for its owner */
    UC_IDLE,    /* in the pool */
    UC_CLOSING, /* handles closing; freed when the last one is */
};

struct upstream_conn {
    struct stream st; /* one per attempt: a failed attempt's is closed and the next one made in its place */
    uv_timer_t timer;
    uv_connect_t connect_req;
    struct upstream *up;
    struct upstream_conn *prev, *next; /* in the pool, the resolve queue or the wait queue */
    const struct upstream_handler *h;  /* NULL once the owner let go */
    void *ctx;
    llhttp_t parser;
    struct http_head head;
    enum conn_state state;
    int open_handles;
    bool st_open;     /* st holds a handle (initialized, not yet closed) */
    unsigned attempt; /* addresses tried so far in this connect */
    unsigned first;   /* the address this connect began with (the preferred one then) */
    int last_error;
    bool reused, got_response, head_done, complete, keep_alive, tunnel, handshaking;
    bool no_body, request_done, paused, not_reusable, interim, upgrade_asked;
    uint64_t deadline;  /* loop time the exchange must be over by, 0 for none */
    uint64_t queued_at; /* loop time it joined the wait queue */
    uint64_t waited;    /* ms it spent there */
    bool fresh, priority, granting, refused, was_queued;
    const char *invalid; /* what a parser callback found wrong with the response, or NULL */
    char reason[192];    /* why the exchange failed, for the owner (upstream_failure.reason) */
};

struct upstream {
    uv_loop_t *loop;
    const struct url *url;
    struct upstream_options opt;
    struct sockaddr_storage addrs[MAX_ADDRS];
    unsigned naddrs, preferred;
    bool literal; /* the host is an IP address: nothing to resolve */
    bool resolving, closing;
    uv_getaddrinfo_t gai_req;
    struct upstream_conn *waiting;            /* connections waiting for the resolver */
    struct upstream_conn *idle;               /* the pool, most recently used first */
    struct upstream_conn *queue, *queue_tail; /* exchanges waiting for a connection, first come first */
    unsigned nidle, nactive, nqueued, ngranting;
    bool in_grant;           /* on_grant runs: kick waits for its end */
    int resolve_failed;      /* uv_getaddrinfo refused at once: the waiting connections report it */
    unsigned nactive_normal; /* of nactive, those carrying exchanges without UPSTREAM_PRIORITY */
    llhttp_settings_t settings;
};

static void conn_destroy(struct upstream_conn *c, bool reset);
static void start_attempt(struct upstream_conn *c);
static void connected(struct upstream_conn *c, unsigned idx);
static void tls_refused(struct upstream_conn *c, int err);
static void on_handshake(struct stream *st, int status);
static const struct stream_handler stream_events;
static void on_attempt_closed(struct stream *st);
static void on_attempt_timeout(uv_timer_t *t);
static void uncount_active(struct upstream_conn *c);

/* ---- small helpers ---- */

static void list_push(struct upstream_conn **head, struct upstream_conn *c)
{
    c->prev = NULL;
    c->next = *head;
    if (*head)
        (*head)->prev = c;
    *head = c;
}

static void list_remove(struct upstream_conn **head, struct upstream_conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else if (*head == c)
        *head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

/*
 * Ends the exchange with an error: the owner hears of it once, with why (reason NULL: err's own
 * words), then the connection goes. Nothing here logs or counts: the owner decides what it means.
 */
static void conn_fail(struct upstream_conn *c, int err, const char *reason)
{
    if (c->state == UC_CLOSING)
        return;
    bool connecting = c->state == UC_RESOLVING || c->state == UC_CONNECTING || c->state == UC_RETRYING ||
                      c->state == UC_QUEUED;
    if (reason != c->reason)
        snprintf(c->reason, sizeof c->reason, "%s", reason ? reason : uv_strerror(err));
    const struct upstream_failure f = {
        .err = err, .reason = c->reason, .got_response = c->got_response, .reused = c->reused};
    const struct upstream_handler *h = c->h;
    c->h = NULL;
    conn_destroy(c, true);
    if (h && connecting && h->on_connect)
        h->on_connect(c->ctx, NULL, &f);
    else if (h && h->on_error)
        h->on_error(c->ctx, &f);
}

static void on_timer(uv_timer_t *t)
{
    struct upstream_conn *c = t->data;
    if (c->state == UC_IDLE) {
        conn_destroy(c, false);
        return;
    }
    const struct upstream_options *o = &c->up->opt;
    if (c->refused) {
        snprintf(c->reason, sizeof c->reason, "%u requests are waiting for a connection already",
                 c->up->nqueued);
        conn_fail(c, UV_EBUSY, c->reason);
    } else if (c->state == UC_QUEUED) {
        snprintf(c->reason, sizeof c->reason, "no connection came free within %u s (%u open at most)",
                 o->response_timeout_ms / 1000, o->max_conns);
        conn_fail(c, UV_ETIMEDOUT, c->reason);
    } else if (c->deadline && uv_now(c->up->loop) >= c->deadline)
        conn_fail(c, UV_ETIMEDOUT, "the exchange ran out of time");
    else if (c->state == UC_RESOLVING && c->up->resolve_failed) {
        snprintf(c->reason, sizeof c->reason, "cannot resolve \"%.100s\": %s", c->up->url->host,
                 uv_strerror(c->up->resolve_failed));
        conn_fail(c, c->up->resolve_failed, c->reason);
    } else if (c->state == UC_RESOLVING)
        conn_fail(c, UV_ETIMEDOUT, "resolving the host took too long");
    else if (c->request_done && !c->head_done) {
        snprintf(c->reason, sizeof c->reason, "no response within %u s", o->response_timeout_ms / 1000);
        conn_fail(c, UV_ETIMEDOUT, c->reason);
    } else {
        snprintf(c->reason, sizeof c->reason, "no progress for %u s", o->io_timeout_ms / 1000);
        conn_fail(c, UV_ETIMEDOUT, c->reason);
    }
}

bool upstream_may_retry(const struct upstream_failure *f, bool safe_to_repeat, bool retried)
{
    /* A pooled connection the server closed just before we used it: the request may never have
     * reached it. Not after a timeout (it may be executing the request), not twice. */
    return f->reused && !f->got_response && f->err != UV_ETIMEDOUT && safe_to_repeat && !retried;
}

void upstream_counts(const struct upstream *up, unsigned *active, unsigned *idle, unsigned *queued)
{
    *active = up->nactive;
    *idle = up->nidle;
    *queued = up->nqueued;
}

bool upstream_conn_in_queue(const struct upstream_conn *c)
{
    return c->state == UC_QUEUED;
}

int64_t upstream_conn_waited_ms(const struct upstream_conn *c)
{
    return c->was_queued ? (int64_t)c->waited : -1;
}

/* Shortens a wait of ms to what is left before the exchange's deadline, if it has one. */
static uint64_t within_deadline(const struct upstream_conn *c, uint64_t ms)
{
    if (!c->deadline || c->state == UC_IDLE)
        return ms;
    uint64_t now = uv_now(c->up->loop);
    uint64_t left = c->deadline > now ? c->deadline - now : 0;
    return left < ms ? left : ms;
}

/* The ms an exchange has waited for its connection: so far while queued, in all once it has one. */
static uint64_t waited(const struct upstream_conn *c)
{
    return c->state == UC_QUEUED ? uv_now(c->up->loop) - c->queued_at : c->waited;
}

/* Arms the one timer with the wait that fits the exchange's stage. */
static void arm_timer(struct upstream_conn *c)
{
    const struct upstream_options *o = &c->up->opt;
    uint64_t ms = o->io_timeout_ms;
    if (c->state == UC_IDLE)
        ms = o->pool_idle_ms;
    else if (c->state == UC_QUEUED || (c->request_done && !c->head_done))
        /* The time spent waiting for a connection counts toward the wait for the answer. */
        ms = o->response_timeout_ms > waited(c) ? o->response_timeout_ms - waited(c) : 1;
    uv_timer_start(&c->timer, on_timer, within_deadline(c, ms), 0);
}

/* ---- closing ---- */

static void conn_handle_closed(struct upstream_conn *c)
{
    if (--c->open_handles > 0)
        return;
    http_head_free(&c->head);
    free(c);
}

static void on_timer_closed(uv_handle_t *handle)
{
    conn_handle_closed(handle->data);
}

static struct upstream_conn *conn_of(struct stream *st)
{
    return st->ctx;
}

static void on_stream_closed(struct stream *st)
{
    struct upstream_conn *c = conn_of(st);
    c->st_open = false;
    conn_handle_closed(c);
}

static void queue_remove(struct upstream *up, struct upstream_conn *c)
{
    if (c == up->queue_tail)
        up->queue_tail = c->prev;
    list_remove(&up->queue, c);
    up->nqueued--;
    if (c->granting) {
        c->granting = false;
        up->ngranting--;
    }
}

static void kick(struct upstream *up);

static void conn_destroy(struct upstream_conn *c, bool reset)
{
    if (c->state == UC_CLOSING)
        return;
    bool was_open = c->state != UC_QUEUED || c->granting; /* a granted waiter leaves its grant to the next */
    if (c->state == UC_IDLE) {
        list_remove(&c->up->idle, c);
        c->up->nidle--;
    } else if (c->state == UC_QUEUED) {
        if (!c->refused)
            queue_remove(c->up, c);
    } else {
        uncount_active(c);
        if (c->state == UC_RESOLVING)
            list_remove(&c->up->waiting, c);
    }
    c->state = UC_CLOSING;
    c->h = NULL;
    uv_close((uv_handle_t *)&c->timer, on_timer_closed);
    /* A reset tells qBittorrent at once that the rest of the request is not coming. An attempt's
     * stream that is closing already ends in on_attempt_closed, which sees UC_CLOSING. */
    if (c->st_open && !stream_closing(&c->st))
        stream_close(&c->st, reset, on_stream_closed);
    if (was_open)
        kick(c->up); /* a connection less: one more may be opened for the first waiting */
}

/* ---- response parsing ---- */

static int head_add_result(struct upstream_conn *c, int rc)
{
    if (rc == 0)
        return 0;
    c->invalid = rc == -E2BIG ? "a response head too large" : "out of memory";
    return HPE_USER;
}

static int on_message_begin(llhttp_t *p)
{
    struct upstream_conn *c = p->data;
    http_head_reset(&c->head);
    return 0;
}

static int on_status(llhttp_t *p, const char *at, size_t len)
{
    struct upstream_conn *c = p->data;
    /* llhttp passes control bytes in a reason phrase; the proxy would hand them to the client. */
    c->invalid = http_reason_problem(at, len);
    if (c->invalid)
        return HPE_USER;
    return head_add_result(c, http_head_add_url(&c->head, at, len));
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    struct upstream_conn *c = p->data;
    return head_add_result(c, http_head_add_field(&c->head, at, len));
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    struct upstream_conn *c = p->data;
    return head_add_result(c, http_head_add_value(&c->head, at, len));
}

static int on_headers_complete(llhttp_t *p)
{
    struct upstream_conn *c = p->data;
    int status = p->status_code;
    c->invalid = http_response_problem(&c->head, status);
    if (c->invalid)
        return HPE_USER;
    /* Interim responses (100 Continue, 103) are not passed on; the real one follows. */
    if (status >= 100 && status < 200 && status != 101) {
        c->interim = true;
        return 0;
    }
    c->interim = false;
    if (status == 101 && !c->upgrade_asked) {
        c->invalid = "a 101 Switching Protocols to a request that asked for no upgrade";
        return HPE_USER;
    }
    c->head_done = true;
    if (status == 101)
        c->tunnel = true;
    arm_timer(c);
    if (c->h && c->h->on_head) {
        struct upstream_response r = {.status = status, .head = &c->head};
        if (c->no_body || status == 204 || status == 304 || status == 101)
            r.framing = FRAMING_NONE;
        else if (p->flags & F_CHUNKED)
            r.framing = FRAMING_CHUNKED;
        else if (p->flags & F_CONTENT_LENGTH) {
            r.framing = FRAMING_LENGTH;
            r.content_length = p->content_length;
        } else
            r.framing = FRAMING_CLOSE;
        c->h->on_head(c->ctx, &r);
    }
    if (c->state == UC_CLOSING || !c->h)
        return HPE_USER;
    /* 204 and 304 never have a body, whatever Content-Length says (llhttp would wait for it). */
    return c->no_body || status == 204 || status == 304 ? 1 : 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    struct upstream_conn *c = p->data;
    if (c->h && c->h->on_body)
        c->h->on_body(c->ctx, at, len);
    return (c->state == UC_CLOSING || !c->h) ? HPE_USER : 0;
}

static int on_message_complete(llhttp_t *p)
{
    struct upstream_conn *c = p->data;
    if (c->interim)
        return 0;
    c->complete = true;
    c->keep_alive = llhttp_should_keep_alive(p);
    /* Stop here: on_end runs outside the parser, and bytes after it are not ours. */
    return HPE_PAUSED;
}

/*
 * What was wrong with a response llhttp refused, in the words http_response_problem uses where the
 * two llhttp versions draw the line differently: 8.1 hands an empty header name to our check, 9
 * refuses it itself ("Invalid header token", at the ':' that starts the line).
 */
static const char *parse_error_reason(const llhttp_t *p, const char *data)
{
    const char *pos = llhttp_get_error_pos(p);
    if (llhttp_get_errno(p) == HPE_INVALID_HEADER_TOKEN && pos && *pos == ':' &&
        (pos == data || pos[-1] == '\n'))
        return "an empty header name";
    return llhttp_get_error_reason(p);
}

/* Runs the parser over received bytes and reports the end of the response. */
static void conn_parse(struct upstream_conn *c, const char *data, size_t len)
{
    enum llhttp_errno err = llhttp_execute(&c->parser, data, len);
    if (c->state == UC_CLOSING || !c->h)
        return;
    if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
        const char *pos = llhttp_get_error_pos(&c->parser);
        size_t rest = (size_t)(data + len - pos);
        if (c->tunnel) {
            if (c->h->on_end)
                c->h->on_end(c->ctx);
            if (rest > 0 && c->h && c->h->on_tunnel)
                c->h->on_tunnel(c->ctx, pos, rest);
            return;
        }
        if (rest > 0)
            c->not_reusable = true; /* unasked-for bytes after the response */
        uv_timer_stop(&c->timer);
        if (c->h->on_end)
            c->h->on_end(c->ctx);
        return;
    }
    if (err != HPE_OK) {
        snprintf(c->reason, sizeof c->reason, "an invalid response: %s",
                 c->invalid ? c->invalid : parse_error_reason(&c->parser, data));
        conn_fail(c, UV_EPROTO, c->reason);
    }
}

/* ---- reading ---- */

static void on_data(void *ctx, const char *data, size_t len)
{
    struct upstream_conn *c = ctx;
    if (c->state == UC_IDLE) {
        /* qBittorrent sent something unasked on an idle connection: drop it. */
        conn_destroy(c, true);
        return;
    }
    if (c->state != UC_ACTIVE)
        return;
    c->got_response = true;
    if (c->head_done || !c->request_done)
        arm_timer(c);
    if (c->tunnel && c->complete) {
        if (c->h && c->h->on_tunnel)
            c->h->on_tunnel(c->ctx, data, len);
        return;
    }
    if (c->complete) {
        c->not_reusable = true;
        return;
    }
    conn_parse(c, data, len);
}

static void on_end(void *ctx, int err)
{
    struct upstream_conn *c = ctx;
    if (c->state == UC_IDLE) {
        /* qBittorrent closed an idle connection: drop it. */
        conn_destroy(c, false);
        return;
    }
    if (c->handshaking && c->state == UC_CONNECTING) {
        c->handshaking = false;
        if (err == UV_EOF)
            conn_fail(c, UV_EPROTO,
                      "TLS: the connection closed during the handshake (the server may speak plain HTTP)");
        else
            tls_refused(c, err);
        return;
    }
    if (c->state != UC_ACTIVE)
        return;
    if (err == UV_EOF && c->head_done && !c->complete && !c->tunnel) {
        /* A response without a length ends at the close; llhttp_finish says whether that is complete. */
        llhttp_finish(&c->parser); /* runs on_message_complete when the close ends the body */
        if (c->complete) {
            c->keep_alive = false;
            if (c->h && c->h->on_end)
                c->h->on_end(c->ctx);
            return;
        }
    }
    if (c->complete && !c->tunnel) {
        c->not_reusable = true;
        return;
    }
    const char *tls_why = stream_error(&c->st);
    conn_fail(c, err,
              err == UV_EOF ? (c->got_response ? "the connection closed mid-response"
                                               : "the connection closed before any response")
              : tls_why[0]  ? tls_why
                            : NULL);
}

/* ---- writing ---- */

static void on_write_error(void *ctx, int err)
{
    conn_fail(ctx, err, NULL);
}

static void on_written(void *ctx)
{
    struct upstream_conn *c = ctx;
    if (c->state == UC_ACTIVE && (!c->request_done || c->tunnel))
        arm_timer(c);
}

static void on_drain(void *ctx)
{
    struct upstream_conn *c = ctx;
    if (c->state == UC_ACTIVE && c->h && c->h->on_drain)
        c->h->on_drain(c->ctx);
}

static const struct stream_handler stream_events = {
    .on_data = on_data,
    .on_end = on_end,
    .on_write_error = on_write_error,
    .on_written = on_written,
    .on_drain = on_drain,
};

int upstream_conn_write(struct upstream_conn *c, const char *data, size_t len)
{
    if (c->state != UC_ACTIVE)
        return UV_ECANCELED;
    uv_buf_t buf = uv_buf_init((char *)data, (unsigned)len);
    return stream_writev(&c->st, &buf, 1);
}

size_t upstream_conn_queued(const struct upstream_conn *c)
{
    return c->state == UC_ACTIVE ? stream_queued(&c->st) : 0;
}

void upstream_conn_request_done(struct upstream_conn *c)
{
    c->request_done = true;
    if (!c->head_done && c->state == UC_ACTIVE)
        arm_timer(c);
}

void upstream_conn_expect_no_body(struct upstream_conn *c)
{
    c->no_body = true;
}

void upstream_conn_expect_upgrade(struct upstream_conn *c)
{
    c->upgrade_asked = true;
}

void upstream_conn_set_deadline(struct upstream_conn *c, uint64_t at_ms)
{
    c->deadline = at_ms;
    /* Bound what is under way already: a resolve has no timer of its own, an attempt the connect timeout.
     * A pooled connection's ready timer arms the deadline when it fires. */
    if (c->state == UC_RESOLVING)
        uv_timer_start(&c->timer, on_timer, c->up->resolve_failed ? 0 : within_deadline(c, UINT64_MAX), 0);
    else if (c->state == UC_QUEUED && !c->granting && !c->refused)
        arm_timer(c);
    else if (c->state == UC_CONNECTING)
        uv_timer_start(&c->timer, on_attempt_timeout, within_deadline(c, c->up->opt.connect_timeout_ms), 0);
}

uint64_t upstream_now(const struct upstream *up)
{
    return uv_now(up->loop);
}

void upstream_conn_pause(struct upstream_conn *c, int paused)
{
    if (c->state != UC_ACTIVE || c->paused == (paused != 0))
        return;
    c->paused = paused != 0;
    /* While paused the slow side's own timeout governs; progress re-arms ours on resume. */
    stream_read(&c->st, !c->paused);
    if (c->paused)
        uv_timer_stop(&c->timer);
    else
        arm_timer(c);
}

int upstream_conn_local_addr(const struct upstream_conn *c, char *buf, size_t len)
{
    struct sockaddr_storage ss;
    int sl = sizeof ss;
    int rc = uv_tcp_getsockname(&c->st.tcp, (struct sockaddr *)&ss, &sl);
    if (rc != 0)
        return rc;
    if (ss.ss_family == AF_INET6)
        return uv_ip6_name((struct sockaddr_in6 *)&ss, buf, len);
    return uv_ip4_name((struct sockaddr_in *)&ss, buf, len);
}

/* ---- connecting ---- */

static void reset_exchange(struct upstream_conn *c)
{
    llhttp_init(&c->parser, HTTP_RESPONSE, &c->up->settings);
    c->parser.data = c;
    http_head_reset(&c->head);
    c->got_response = c->head_done = c->complete = c->keep_alive = c->tunnel = false;
    c->no_body = c->request_done = c->paused = c->not_reusable = c->interim = false;
    c->upgrade_asked = false;
    c->deadline = 0;
    c->waited = 0;
    c->was_queued = false;
}

static void became_ready(struct upstream_conn *c)
{
    const struct upstream_handler *h = c->h;
    if (h && h->on_connect)
        h->on_connect(c->ctx, c, NULL);
}

int upstream_conn_take_ready(struct upstream_conn *c)
{
    if (!c->reused || c->state != UC_ACTIVE || c->request_done)
        return 0;
    arm_timer(c); /* replaces the pending on_ready_timer */
    return 1;
}

static void on_ready_timer(uv_timer_t *t)
{
    struct upstream_conn *c = t->data;
    arm_timer(c);
    became_ready(c);
}

static void on_connected(uv_connect_t *req, int status)
{
    struct upstream_conn *c = req->data;
    if (c->state != UC_CONNECTING)
        return; /* aborted meanwhile; the close callbacks finish the job */
    struct upstream *up = c->up;
    unsigned idx = (c->first + c->attempt) % up->naddrs;
    if (status < 0) {
        snprintf(c->reason, sizeof c->reason, "%s", uv_strerror(status));
        c->last_error = status;
        c->attempt++;
        c->state = UC_RETRYING;
        uv_timer_stop(&c->timer);
        stream_close(&c->st, false, on_attempt_closed);
        return;
    }
    uv_tcp_nodelay(stream_tcp(&c->st), 1);
    stream_read(&c->st, true);
    if (up->opt.tls) {
        /* The handshake is part of connecting: the attempt's timer, started with the connect, bounds it. */
        int rc = stream_tls_connect(&c->st, up->opt.tls, up->url->host, on_handshake);
        if (rc != 0) {
            tls_refused(c, rc);
            return;
        }
        c->handshaking = true;
        return;
    }
    connected(c, idx);
}

/* The connection to address idx is ready for exchanges. */
static void connected(struct upstream_conn *c, unsigned idx)
{
    /* Remember the address that answered, so the next connection starts with it. */
    c->up->preferred = idx;
    c->state = UC_ACTIVE;
    arm_timer(c);
    became_ready(c);
}

/*
 * TLS failed on a connection that did connect: a certificate or protocol
 * problem that the next address would show the same way, so it ends the connect.
 */
static void tls_refused(struct upstream_conn *c, int err)
{
    const char *why = stream_error(&c->st);
    snprintf(c->reason, sizeof c->reason, "TLS: %s", why[0] ? why : uv_strerror(err));
    conn_fail(c, UV_EPROTO, c->reason);
}

static void on_handshake(struct stream *st, int status)
{
    struct upstream_conn *c = conn_of(st);
    if (c->state != UC_CONNECTING)
        return;
    c->handshaking = false;
    if (status < 0) {
        tls_refused(c, status);
        return;
    }
    connected(c, (c->first + c->attempt) % c->up->naddrs);
}

static void on_attempt_timeout(uv_timer_t *t)
{
    struct upstream_conn *c = t->data;
    if (c->handshaking)
        snprintf(c->reason, sizeof c->reason,
                 "no TLS handshake within %u s (the server may speak plain HTTP)",
                 c->up->opt.connect_timeout_ms / 1000);
    else
        snprintf(c->reason, sizeof c->reason, "no answer to the connect within %u s",
                 c->up->opt.connect_timeout_ms / 1000);
    c->handshaking = false;
    c->last_error = UV_ETIMEDOUT;
    c->attempt++;
    /* Closing cancels the connect; on_connected sees the state and the close callback moves on. */
    c->state = UC_RETRYING;
    stream_close(&c->st, false, on_attempt_closed);
}

/* The stream of a failed attempt is closed: try the next address, or give up. */
static void on_attempt_closed(struct stream *st)
{
    struct upstream_conn *c = conn_of(st);
    c->st_open = false;
    if (c->state == UC_CLOSING) {
        conn_handle_closed(c);
        return;
    }
    c->open_handles--;
    c->state = UC_CONNECTING;
    start_attempt(c);
}

static void start_attempt(struct upstream_conn *c)
{
    struct upstream *up = c->up;
    if (c->deadline && uv_now(up->loop) >= c->deadline) {
        conn_fail(c, UV_ETIMEDOUT, "the exchange ran out of time while connecting");
        return;
    }
    if (c->attempt >= up->naddrs) {
        if (!up->literal)
            up->naddrs = 0; /* resolve again next time: the address may have moved */
        /* The reason is the last address's: with several, each was tried in turn. */
        conn_fail(c, c->last_error ? c->last_error : UV_ECONNREFUSED, c->reason[0] ? c->reason : NULL);
        return;
    }
    unsigned idx = (c->first + c->attempt) % up->naddrs;
    int rc = stream_init(&c->st, up->loop, &stream_events, c);
    if (rc < 0) {
        conn_fail(c, rc, NULL);
        return;
    }
    c->st_open = true;
    c->open_handles++;
    c->connect_req.data = c;
    rc =
        uv_tcp_connect(&c->connect_req, stream_tcp(&c->st), (struct sockaddr *)&up->addrs[idx], on_connected);
    if (rc < 0) {
        snprintf(c->reason, sizeof c->reason, "%s", uv_strerror(rc));
        c->last_error = rc;
        c->attempt++;
        c->state = UC_RETRYING;
        stream_close(&c->st, false, on_attempt_closed);
        return;
    }
    uv_timer_start(&c->timer, on_attempt_timeout, within_deadline(c, up->opt.connect_timeout_ms), 0);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct upstream *up = req->data;
    up->resolving = false;
    if (status == 0) {
        up->naddrs = 0;
        for (struct addrinfo *ai = res; ai && up->naddrs < MAX_ADDRS; ai = ai->ai_next) {
            if (ai->ai_family == AF_INET || ai->ai_family == AF_INET6)
                memcpy(&up->addrs[up->naddrs++], ai->ai_addr, ai->ai_addrlen);
        }
        up->preferred = 0;
        if (up->naddrs == 0)
            status = UV_EAI_NODATA;
    }
    uv_freeaddrinfo(res);
    char why[320] = "";
    /* Only for a failure: uv_strerror(0) is "Unknown system error 0", in a string it leaks. */
    if (status != 0)
        snprintf(why, sizeof why, "cannot resolve \"%s\": %s", up->url->host, uv_strerror(status));
    while (up->waiting) {
        struct upstream_conn *c = up->waiting;
        list_remove(&up->waiting, c);
        if (status != 0) {
            c->state = UC_CONNECTING; /* so conn_fail does not look for it in the queue */
            conn_fail(c, status, why);
        } else {
            c->state = UC_CONNECTING;
            c->first = up->preferred;
            start_attempt(c);
        }
    }
}

static void resolve(struct upstream *up)
{
    if (up->resolving || up->closing)
        return;
    char port[8];
    snprintf(port, sizeof port, "%u", up->url->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    up->gai_req.data = up;
    up->resolve_failed = 0;
    int rc = uv_getaddrinfo(up->loop, &up->gai_req, on_resolved, up->url->host, port, &hints);
    if (rc == 0) {
        up->resolving = true;
        return;
    }
    /* Failed at once (out of memory): the waiting connections hear it from the loop, never inside
     * upstream_conn_get. */
    up->resolve_failed = rc;
    for (struct upstream_conn *c = up->waiting; c; c = c->next)
        uv_timer_start(&c->timer, on_timer, 0, 0);
}

/*
 * True when an idle connection has bytes or an end of stream waiting that its on_read has not seen
 * yet (the loop polls after the timers, so it may not have): reusing it would hand them to the next
 * exchange as its response. Over TLS the bytes may be a close_notify or a late session ticket;
 * either way the connection is not taken, which costs at most a new one.
 */
static bool stale(const struct upstream_conn *c)
{
    uv_os_fd_t fd;
    char byte;
    if (uv_fileno((const uv_handle_t *)&c->st.tcp, &fd) != 0)
        return true;
    ssize_t n = recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
}

/*
 * How many more exchanges of this priority may have a connection now: by taking an idle one (when idle)
 * or by opening one. Priority exchanges may use every connection; the others all but the reserved ones.
 */
static unsigned avail(const struct upstream *up, bool priority, bool idle)
{
    const struct upstream_options *o = &up->opt;
    if (o->max_conns == 0)
        return UINT_MAX;
    unsigned open = up->nactive + up->nidle;
    unsigned n = (open < o->max_conns ? o->max_conns - open : 0) + (idle ? up->nidle : 0);
    if (!priority) {
        unsigned normal_max = o->reserved < o->max_conns ? o->max_conns - o->reserved : 1;
        unsigned normal_left = up->nactive_normal < normal_max ? normal_max - up->nactive_normal : 0;
        n = n < normal_left ? n : normal_left;
    }
    return n;
}

/* Counts c as carrying an exchange (of its owner's priority). */
static void count_active(struct upstream_conn *c)
{
    c->up->nactive++;
    if (!c->priority)
        c->up->nactive_normal++;
}

static void uncount_active(struct upstream_conn *c)
{
    c->up->nactive--;
    if (!c->priority)
        c->up->nactive_normal--;
}

/* The most recently used idle connection that has nothing waiting on it, taken out of the pool for an
 * exchange of this priority; or NULL. */
static struct upstream_conn *take_idle(struct upstream *up, bool priority)
{
    while (up->idle && stale(up->idle))
        conn_destroy(up->idle, false);
    struct upstream_conn *c = up->idle;
    if (!c)
        return NULL;
    list_remove(&up->idle, c);
    up->nidle--;
    c->priority = priority;
    count_active(c);
    c->state = UC_ACTIVE;
    reset_exchange(c);
    c->reused = true;
    return c;
}

static struct upstream_conn *conn_alloc(struct upstream *up, const struct upstream_handler *h, void *ctx)
{
    struct upstream_conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->up = up;
    c->h = h;
    c->ctx = ctx;
    http_head_init(&c->head, HEAD_LIMIT);
    uv_timer_init(up->loop, &c->timer);
    c->timer.data = c;
    c->open_handles = 1;
    reset_exchange(c);
    return c;
}

/* Starts a new connection for c's exchange. */
static void conn_open(struct upstream_conn *c)
{
    struct upstream *up = c->up;
    count_active(c);
    if (up->naddrs == 0) {
        c->state = UC_RESOLVING;
        list_push(&up->waiting, c);
        resolve(up);
        if (c->deadline && c->state == UC_RESOLVING)
            uv_timer_start(&c->timer, on_timer, within_deadline(c, UINT64_MAX), 0);
    } else {
        c->state = UC_CONNECTING;
        /* Each connect walks the addresses from where it began: another connection that finds the
         * answering one meanwhile must not make this one skip it or try one twice. */
        c->first = up->preferred;
        start_attempt(c);
    }
}

static void on_grant(uv_timer_t *t);

/* Lets as many waiting exchanges in as there are connections to take or to open (from the loop). */
static void kick(struct upstream *up)
{
    if (up->closing || up->in_grant)
        return;
    for (struct upstream_conn *c = up->queue; c; c = c->next) {
        if (c->granting)
            continue;
        if (avail(up, c->priority, true) <= up->ngranting) /* a fresh one makes room by closing an idle one */
            break; /* first come, first served: nobody overtakes the first who cannot go */
        c->granting = true;
        up->ngranting++;
        uv_timer_start(&c->timer, on_grant, 0, 0);
    }
}

/* A waiting exchange's turn: a released connection, or room for a new one (or, gone meanwhile, more waiting).
 */
static void on_grant(uv_timer_t *t)
{
    struct upstream_conn *w = t->data;
    struct upstream *up = w->up;
    w->granting = false;
    up->ngranting--;
    uint64_t now = uv_now(up->loop);
    up->in_grant = true; /* stale idle connections destroyed here must not grant w again */
    struct upstream_conn *c =
        !w->fresh && avail(up, w->priority, true) > 0 ? take_idle(up, w->priority) : NULL;
    if (!c && w->fresh && avail(up, w->priority, false) == 0 && avail(up, w->priority, true) > 0) {
        struct upstream_conn *oldest = up->idle;
        while (oldest->next)
            oldest = oldest->next;
        conn_destroy(oldest, false);
    }
    up->in_grant = false;
    if (c) {
        /* The released connection carries the exchange; the placeholder goes. */
        queue_remove(up, w);
        c->h = w->h;
        c->ctx = w->ctx;
        c->deadline = w->deadline;
        c->waited = now - w->queued_at;
        c->was_queued = true;
        w->h = NULL;
        w->state = UC_CLOSING;
        uv_close((uv_handle_t *)&w->timer, on_timer_closed);
        arm_timer(c);
        kick(up);
        if (c->h && c->h->on_connect)
            c->h->on_connect(c->ctx, c, NULL);
        return;
    }
    if (avail(up, w->priority, false) > 0) {
        queue_remove(up, w);
        w->waited = now - w->queued_at;
        w->was_queued = true;
        conn_open(w);
        kick(up);
        return;
    }
    arm_timer(w); /* taken by someone with priority meanwhile: wait on, within the same time */
    kick(up);
}

static void enqueue(struct upstream *up, struct upstream_conn *c)
{
    c->state = UC_QUEUED;
    c->queued_at = uv_now(up->loop);
    /* API calls wait ahead of proxied requests (the port sync must not starve behind a busy WebUI), in
     * their own arrival order. */
    struct upstream_conn *after = NULL;
    if (c->priority)
        for (struct upstream_conn *q = up->queue; q && q->priority; q = q->next)
            after = q;
    else
        after = up->queue_tail;
    c->prev = after;
    c->next = after ? after->next : up->queue;
    if (c->next)
        c->next->prev = c;
    else
        up->queue_tail = c;
    if (after)
        after->next = c;
    else
        up->queue = c;
    up->nqueued++;
    arm_timer(c);
}

struct upstream_conn *upstream_conn_get(struct upstream *up, unsigned flags, const struct upstream_handler *h,
                                        void *ctx)
{
    bool fresh = flags & UPSTREAM_FRESH, priority = flags & UPSTREAM_PRIORITY;
    /* While others wait, a newcomer takes nothing they are waiting for (API calls excepted). */
    bool may_take = priority || up->nqueued == 0;
    struct upstream_conn *c =
        !fresh && may_take && avail(up, priority, true) > 0 ? take_idle(up, priority) : NULL;
    if (c) {
        c->h = h;
        c->ctx = ctx;
        /* Ready now, but the owner hears it from the loop, as for a new connection. */
        uv_timer_start(&c->timer, on_ready_timer, 0, 0);
        return c;
    }
    if (fresh && may_take && avail(up, priority, false) == 0 && avail(up, priority, true) > 0) {
        /* A retry needs a new connection: the least recently used idle one makes room for it. */
        struct upstream_conn *oldest = up->idle;
        while (oldest->next)
            oldest = oldest->next;
        conn_destroy(oldest, false);
    }
    c = conn_alloc(up, h, ctx);
    if (!c)
        return NULL;
    c->fresh = fresh;
    c->priority = priority;
    if (may_take && avail(up, priority, false) > 0) {
        conn_open(c);
        return c;
    }
    if (up->nqueued >= up->opt.queue_max || up->closing) {
        /* Refused, but from the loop: on_connect never runs before this returns. */
        c->state = UC_QUEUED;
        c->refused = true;
        uv_timer_start(&c->timer, on_timer, 0, 0);
        return c;
    }
    enqueue(up, c);
    kick(up);
    return c;
}

void upstream_conn_release(struct upstream_conn *c, int reusable)
{
    if (c->state == UC_CLOSING)
        return;
    struct upstream *up = c->up;
    /* After a HEAD the server may send the body it did not announce as absent (qBittorrent 4.5 does),
     * a moment later: a pooled connection would hand those bytes to the next exchange as its response. */
    bool clean = c->state == UC_ACTIVE && c->complete && c->keep_alive && c->request_done && !c->tunnel &&
                 !c->not_reusable && !c->no_body && stream_queued(&c->st) == 0;
    /* A full pool still takes a connection someone is waiting for: closing it would only open another. */
    if (!reusable || !clean || up->closing || (up->nidle >= up->opt.pool_max && up->nqueued == 0)) {
        conn_destroy(c, !clean);
        return;
    }
    c->h = NULL;
    c->ctx = NULL;
    c->state = UC_IDLE;
    list_push(&up->idle, c);
    up->nidle++;
    uncount_active(c);
    c->priority = false;
    if (c->paused) {
        c->paused = false;
        stream_read(&c->st, true);
    }
    arm_timer(c);
    kick(up);
}

void upstream_conn_abort(struct upstream_conn *c)
{
    conn_destroy(c, true);
}

/* ---- the client ---- */

int upstream_new(uv_loop_t *loop, const struct url *url, const struct upstream_options *opt,
                 struct upstream **out)
{
    struct upstream *up = calloc(1, sizeof *up);
    if (!up)
        return UV_ENOMEM;
    up->loop = loop;
    up->url = url;
    up->opt = *opt;
    llhttp_settings_init(&up->settings);
    up->settings.on_message_begin = on_message_begin;
    up->settings.on_status = on_status;
    up->settings.on_header_field = on_header_field;
    up->settings.on_header_value = on_header_value;
    up->settings.on_headers_complete = on_headers_complete;
    up->settings.on_body = on_body;
    up->settings.on_message_complete = on_message_complete;

    /* An IP literal needs no resolver; a name (localhost) is resolved on first use. */
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&up->addrs[0];
    struct sockaddr_in *s4 = (struct sockaddr_in *)&up->addrs[0];
    if (url->host_is_ipv6 && uv_ip6_addr(url->host, url->port, s6) == 0)
        up->literal = true;
    else if (!url->host_is_ipv6 && uv_ip4_addr(url->host, url->port, s4) == 0 &&
             inet_pton(AF_INET, url->host, &s4->sin_addr) == 1)
        up->literal = true;
    up->naddrs = up->literal ? 1 : 0;
    *out = up;
    return 0;
}

void upstream_close(struct upstream *up)
{
    up->closing = true;
    while (up->queue)
        conn_fail(up->queue, UV_ECANCELED, "the sidecar is stopping");
    while (up->idle)
        conn_destroy(up->idle, false);
    if (up->resolving)
        uv_cancel((uv_req_t *)&up->gai_req);
}

void upstream_free(struct upstream *up)
{
    if (!up)
        return;
    free(up);
}
