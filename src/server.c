/* server.c - the listener and its client connections: parse, route, answer, bound, close. */
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <llhttp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "log.h"

#define READ_BUF_SIZE 65536
#define RESPONSE_MAX 1024
#define LINGER_MS 2000
/* Stop reading a client whose unread responses pile up beyond this (pipelining without reading). */
#define WRITE_QUEUE_MAX (256 * 1024)

enum conn_phase {
    PHASE_IDLE,   /* waiting for the first byte of a request */
    PHASE_HEAD,   /* inside a request head: the header timeout runs */
    PHASE_BODY,   /* head complete, body still arriving */
    PHASE_LINGER, /* last response sent and write side shut: discard input until EOF */
};

struct client_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_shutdown_t shutdown_req;
    struct server *srv;
    struct client_conn *prev, *next;
    llhttp_t parser;
    struct http_head head;
    enum conn_phase phase;
    int handles_open;
    unsigned writes_pending;
    int head_error;         /* status chosen by a parser callback (431), else 0 */
    bool closing;           /* uv_close called; freed in the last close callback */
    bool close_after_write; /* no more requests: shut down once the writes drain */
    bool shutting_down;
    bool read_paused;
    bool eof; /* the client closed its side */
    bool peer_allowed;
    char peer[INET6_ADDRSTRLEN];
};

struct write_req {
    uv_write_t req;
    struct client_conn *conn;
    char data[];
};

struct server {
    uv_loop_t *loop;
    const struct config *cfg;
    uv_tcp_t *listener;
    uv_timer_t deadline;
    struct client_conn *conns;
    unsigned nconns;
    bool stopping, listener_closed, stopped;
    void (*on_stopped)(void *arg);
    void *stop_arg;
    llhttp_settings_t settings;
    struct log_limiter deny_limit, client_error_limit;
    char rbuf[READ_BUF_SIZE];
};

static void conn_close(struct client_conn *c);
static void server_maybe_stopped(struct server *srv);
static void on_conn_timer(uv_timer_t *t);

/* ---- writing and closing ---- */

static void conn_after_write(struct client_conn *c);

static void on_write_done(uv_write_t *req, int status)
{
    struct write_req *wr = (struct write_req *)req;
    struct client_conn *c = wr->conn;
    free(wr);
    c->writes_pending--;
    if (c->closing)
        return;
    if (status < 0) {
        log_debug("client %s: write failed: %s", c->peer, uv_strerror(status));
        conn_close(c);
        return;
    }
    conn_after_write(c);
}

static void conn_write(struct client_conn *c, const char *data, size_t len)
{
    uv_buf_t buf = uv_buf_init((char *)data, (unsigned)len);
    /* Most responses fit the socket buffer: write them now, without a copy. */
    int n = uv_try_write((uv_stream_t *)&c->tcp, &buf, 1);
    if (n == (int)len) {
        conn_after_write(c);
        return;
    }
    if (n < 0 && n != UV_EAGAIN) {
        log_debug("client %s: write failed: %s", c->peer, uv_strerror(n));
        conn_close(c);
        return;
    }
    size_t done = n > 0 ? (size_t)n : 0;
    struct write_req *wr = malloc(sizeof *wr + len - done);
    if (!wr) {
        log_error("client %s: out of memory for a response", c->peer);
        conn_close(c);
        return;
    }
    wr->conn = c;
    memcpy(wr->data, data + done, len - done);
    buf = uv_buf_init(wr->data, (unsigned)(len - done));
    int rc = uv_write(&wr->req, (uv_stream_t *)&c->tcp, &buf, 1, on_write_done);
    if (rc < 0) {
        free(wr);
        conn_close(c);
        return;
    }
    c->writes_pending++;
    if (!c->read_paused && uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) > WRITE_QUEUE_MAX) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->read_paused = true;
    }
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);
static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf);

static void on_linger_timeout(uv_timer_t *t)
{
    conn_close(t->data);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct client_conn *c = req->data;
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
    if (c->read_paused) {
        c->read_paused = false;
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    }
}

static void conn_after_write(struct client_conn *c)
{
    if (c->read_paused && !c->close_after_write &&
        uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) < WRITE_QUEUE_MAX / 2) {
        c->read_paused = false;
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    }
    if (c->writes_pending > 0 || !c->close_after_write || c->shutting_down)
        return;
    c->shutting_down = true;
    c->shutdown_req.data = c;
    if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown) < 0)
        conn_close(c);
}

static void on_conn_handle_closed(uv_handle_t *handle)
{
    struct client_conn *c = handle->data;
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
    http_head_free(&c->head);
    free(c);
    server_maybe_stopped(srv);
}

/* The one teardown path of a client: every error and timeout ends here. */
static void conn_close(struct client_conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
}

/* ---- responses ---- */

static void respond(struct client_conn *c, int status, const char *extra_headers, const char *body,
                    bool keep_alive)
{
    char buf[RESPONSE_MAX];
    bool head_only = llhttp_get_method(&c->parser) == HTTP_HEAD && c->phase != PHASE_HEAD;
    if (!keep_alive || c->srv->stopping)
        c->close_after_write = true;
    int n =
        http_format_response(buf, sizeof buf, status, extra_headers, body, head_only, !c->close_after_write);
    if (n < 0) {
        conn_close(c);
        return;
    }
    conn_write(c, buf, (size_t)n);
}

/* Answers a request that cannot be parsed or served, and closes the connection after it. */
static void conn_fail(struct client_conn *c, int status, const char *reason)
{
    if (log_limiter_allow(&c->srv->client_error_limit, uv_now(c->srv->loop)))
        log_info("client %s: %d %s: %s", c->peer, status, http_status_reason(status), reason);
    char body[128];
    snprintf(body, sizeof body, "%s\n", reason);
    /* Bounds the wait for a client that never reads the answer. */
    uv_timer_start(&c->timer, on_conn_timer, c->srv->cfg->idle_timeout_ms, 0);
    respond(c, status, NULL, body, false);
}

static bool url_path_is(const char *url, size_t len, const char *path)
{
    size_t plen = strlen(path);
    return len >= plen && memcmp(url, path, plen) == 0 && (len == plen || url[plen] == '?');
}

/* Routes one complete request. Runs with the request head captured in c->head. */
static void handle_request(struct client_conn *c)
{
    struct server *srv = c->srv;
    bool keep_alive = llhttp_should_keep_alive(&c->parser) && !llhttp_get_upgrade(&c->parser);
    uint8_t method = llhttp_get_method(&c->parser);
    size_t url_len;
    const char *url = http_head_url(&c->head, &url_len);

    /* Health probes come from the node or the kubelet, not from the allowed networks. */
    if (url_path_is(url, url_len, "/healthz")) {
        if (method == HTTP_GET || method == HTTP_HEAD)
            respond(c, 200, NULL, "ok\n", keep_alive);
        else
            respond(c, 405, "Allow: GET, HEAD\r\n", "method not allowed; use GET or HEAD\n", keep_alive);
        return;
    }
    if (!c->peer_allowed) {
        if (log_limiter_allow(&srv->deny_limit, uv_now(srv->loop)))
            log_warn("denied %s: %s %.*s (not in ALLOWED_IPS)", c->peer, llhttp_method_name(method),
                     (int)(url_len > 200 ? 200 : url_len), url);
        respond(c, 403, NULL, "forbidden: your address is not in ALLOWED_IPS\n", keep_alive);
        return;
    }
    respond(c, 502, NULL, "upstream not configured\n", keep_alive);
}

/* ---- parsing ---- */

static int head_add_result(struct client_conn *c, int rc)
{
    if (rc == 0)
        return 0;
    c->head_error = rc == -E2BIG ? 431 : 500;
    return HPE_USER;
}

static int on_message_begin(llhttp_t *p)
{
    struct client_conn *c = p->data;
    c->phase = PHASE_HEAD;
    c->head_error = 0;
    http_head_reset(&c->head);
    uv_timer_start(&c->timer, on_conn_timer, c->srv->cfg->header_timeout_ms, 0);
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    struct client_conn *c = p->data;
    return head_add_result(c, http_head_add_url(&c->head, at, len));
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    struct client_conn *c = p->data;
    return head_add_result(c, http_head_add_field(&c->head, at, len));
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    struct client_conn *c = p->data;
    return head_add_result(c, http_head_add_value(&c->head, at, len));
}

static int on_headers_complete(llhttp_t *p)
{
    struct client_conn *c = p->data;
    c->phase = PHASE_BODY;
    uv_timer_start(&c->timer, on_conn_timer, c->srv->cfg->idle_timeout_ms, 0);
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    struct client_conn *c = p->data;
    handle_request(c);
    c->phase = PHASE_IDLE;
    if (!c->closing)
        uv_timer_start(&c->timer, on_conn_timer, c->srv->cfg->idle_timeout_ms, 0);
    /* Pause so the feeding loop decides whether to go on with pipelined bytes. */
    return HPE_PAUSED;
}

static void on_conn_timer(uv_timer_t *t)
{
    struct client_conn *c = t->data;
    if (c->close_after_write) {
        conn_close(c);
        return;
    }
    switch (c->phase) {
    case PHASE_HEAD:
        conn_fail(c, 408, "request head not received in time");
        break;
    case PHASE_BODY:
        conn_fail(c, 408, "request body not received in time");
        break;
    case PHASE_IDLE:
    case PHASE_LINGER:
        conn_close(c);
        break;
    }
}

/* Parses received bytes; answers each complete request in order. */
static void conn_feed(struct client_conn *c, const char *data, size_t len)
{
    while (len > 0 && !c->close_after_write && !c->closing) {
        enum llhttp_errno err = llhttp_execute(&c->parser, data, len);
        if (err == HPE_OK)
            return;
        if (err == HPE_PAUSED) {
            const char *pos = llhttp_get_error_pos(&c->parser);
            len -= (size_t)(pos - data);
            data = pos;
            llhttp_resume(&c->parser);
            continue;
        }
        if (err == HPE_PAUSED_UPGRADE) {
            /* Answered as a plain request; the connection cannot carry on as HTTP. */
            c->close_after_write = true;
            conn_after_write(c);
            return;
        }
        if (c->head_error)
            conn_fail(c, c->head_error, c->head_error == 431 ? "request head too large" : "out of memory");
        else
            conn_fail(c, 400, llhttp_get_error_reason(&c->parser));
        return;
    }
}

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct client_conn *c = handle->data;
    /*
     * One buffer serves every client: the loop calls on_read right after
     * on_alloc, and on_read consumes everything before returning.
     */
    *buf = uv_buf_init(c->srv->rbuf, sizeof c->srv->rbuf);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct client_conn *c = stream->data;
    if (nread < 0) {
        if (nread != UV_EOF)
            log_debug("client %s: read failed: %s", c->peer, uv_strerror((int)nread));
        /* A client that half-closes after a complete request still gets its answer. */
        if (nread == UV_EOF && c->writes_pending > 0 && c->phase == PHASE_IDLE) {
            uv_read_stop(stream);
            c->eof = true;
            c->close_after_write = true;
            return;
        }
        conn_close(c);
        return;
    }
    if (nread == 0 || c->phase == PHASE_LINGER || c->close_after_write)
        return;
    conn_feed(c, buf->base, (size_t)nread);
}

/* ---- accepting ---- */

static void peer_describe(struct client_conn *c)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    c->peer_allowed = false;
    snprintf(c->peer, sizeof c->peer, "unknown");
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) != 0)
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
    uv_tcp_init(srv->loop, &c->tcp);
    uv_timer_init(srv->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->handles_open = 2;
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    srv->nconns++;
    http_head_init(&c->head, srv->cfg->max_header_size);
    llhttp_init(&c->parser, HTTP_REQUEST, &srv->settings);
    c->parser.data = c;

    int rc = uv_accept(listener, (uv_stream_t *)&c->tcp);
    if (rc < 0) {
        log_debug("accept failed: %s", uv_strerror(rc));
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    peer_describe(c);
    if (srv->nconns > srv->cfg->max_connections) {
        c->phase = PHASE_HEAD; /* no request parsed: never treat the answer as a HEAD response */
        conn_fail(c, 503, "too many connections; try again later");
        return;
    }
    uv_timer_start(&c->timer, on_conn_timer, srv->cfg->idle_timeout_ms, 0);
    rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rc < 0)
        conn_close(c);
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

int server_start(uv_loop_t *loop, const struct config *cfg, struct server **out)
{
    struct server *srv = calloc(1, sizeof *srv);
    if (!srv)
        return UV_ENOMEM;
    srv->loop = loop;
    srv->cfg = cfg;
    srv->deny_limit = (struct log_limiter){.what = "denied requests", .window_ms = 10000, .burst = 5};
    srv->client_error_limit = (struct log_limiter){.what = "client errors", .window_ms = 10000, .burst = 5};
    llhttp_settings_init(&srv->settings);
    srv->settings.on_message_begin = on_message_begin;
    srv->settings.on_url = on_url;
    srv->settings.on_header_field = on_header_field;
    srv->settings.on_header_value = on_header_value;
    srv->settings.on_headers_complete = on_headers_complete;
    srv->settings.on_message_complete = on_message_complete;
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
    log_limiter_flush(&srv->deny_limit);
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
        if (c->phase == PHASE_IDLE && c->writes_pending == 0)
            conn_close(c);
        else if (c->phase == PHASE_IDLE)
            c->close_after_write = true;
    }
    uv_timer_start(&srv->deadline, on_deadline, srv->cfg->shutdown_timeout_ms, 0);
    server_maybe_stopped(srv);
}

void server_free(struct server *srv)
{
    free(srv);
}
