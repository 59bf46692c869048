/* stream.c - the byte stream over TCP, plain or TLS: reading, writing with a visible queue, shutdown, close.
 */
#include "stream.h"

#include <stdlib.h>
#include <string.h>

#include "tls.h"

#define READ_BUF_SIZE 65536

/* Plaintext taken from TLS at a time: one record's worth. */
#define PLAIN_BUF_SIZE 16384

/*
 * One read buffer for every stream, and one for what TLS decrypts: the loop
 * calls on_read right after on_alloc, and every owner consumes or copies
 * what it gets before its on_data returns. Static: their pages are backed
 * only once a read touches them.
 */
static char read_buf[READ_BUF_SIZE];
static char plain_buf[PLAIN_BUF_SIZE];

struct write_req {
    uv_write_t req;
    struct stream *s;
    char data[];
};

int stream_init(struct stream *s, uv_loop_t *loop, const struct stream_handler *h, void *ctx)
{
    memset(s, 0, sizeof *s);
    s->h = h;
    s->ctx = ctx;
    s->tcp.data = s;
    int rc = uv_tcp_init(loop, &s->tcp);
    s->tcp.data = s;
    return rc;
}

uv_tcp_t *stream_tcp(struct stream *s)
{
    return &s->tcp;
}

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    (void)handle;
    (void)suggested;
    *buf = uv_buf_init(read_buf, READ_BUF_SIZE);
}

static void tls_received(struct stream *s, const char *data, size_t len);
static void tls_process(struct stream *s);

static void on_read(uv_stream_t *handle, ssize_t nread, const uv_buf_t *buf)
{
    struct stream *s = handle->data;
    if (nread > 0) {
        if (s->tls)
            tls_received(s, buf->base, (size_t)nread);
        else
            s->h->on_data(s->ctx, buf->base, (size_t)nread);
        return;
    }
    if (nread == 0)
        return;
    /* libuv has stopped reading at an end or an error. */
    s->reading = false;
    uv_read_stop(handle);
    s->h->on_end(s->ctx, (int)nread);
}

void stream_read(struct stream *s, bool on)
{
    if (s->closing || s->reading == on)
        return;
    s->reading = on;
    if (on)
        uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_read);
    else
        uv_read_stop((uv_stream_t *)&s->tcp);
}

size_t stream_queued(const struct stream *s)
{
    return uv_stream_get_write_queue_size((const uv_stream_t *)&s->tcp);
}

int stream_writing(const struct stream *s)
{
    return s->writes_pending > 0;
}

static void on_write_done(uv_write_t *req, int status)
{
    struct write_req *wr = (struct write_req *)req;
    struct stream *s = wr->s;
    free(wr);
    s->writes_pending--;
    if (s->closing)
        return;
    if (status < 0) {
        s->h->on_write_error(s->ctx, status);
        return;
    }
    if (s->drain_wanted && stream_queued(s) < STREAM_WRITE_HIGH / 2) {
        s->drain_wanted = false;
        if (s->h->on_drain)
            s->h->on_drain(s->ctx);
    }
    if (!s->closing && s->h->on_written)
        s->h->on_written(s->ctx);
}

static int tls_flush(struct stream *s);
static int raw_writev(struct stream *s, const uv_buf_t *bufs, unsigned nbufs);

int stream_writev(struct stream *s, const uv_buf_t *bufs, unsigned nbufs)
{
    if (s->closing)
        return UV_ECANCELED;
    if (s->tls) {
        for (unsigned i = 0; i < nbufs; i++) {
            if (bufs[i].len > 0 && tls_conn_write(s->tls, bufs[i].base, bufs[i].len) != 0)
                return UV_EPROTO;
        }
        return tls_flush(s);
    }
    return raw_writev(s, bufs, nbufs);
}

/* Writes bytes as they are onto the socket: at once where it takes them, the rest copied and queued. */
static int raw_writev(struct stream *s, const uv_buf_t *bufs, unsigned nbufs)
{
    size_t total = 0;
    for (unsigned i = 0; i < nbufs; i++)
        total += bufs[i].len;
    /* Most writes fit the socket buffer: they go now, without a copy (unless others are queued). */
    int n = uv_try_write((uv_stream_t *)&s->tcp, bufs, nbufs);
    if (n == (int)total)
        return 0;
    if (n < 0 && n != UV_EAGAIN)
        return n;
    size_t done = n > 0 ? (size_t)n : 0;
    struct write_req *wr = malloc(sizeof *wr + total - done);
    if (!wr)
        return UV_ENOMEM;
    wr->s = s;
    size_t at = 0, skip = done;
    for (unsigned i = 0; i < nbufs; i++) {
        size_t len = bufs[i].len;
        if (skip >= len) {
            skip -= len;
            continue;
        }
        memcpy(wr->data + at, bufs[i].base + skip, len - skip);
        at += len - skip;
        skip = 0;
    }
    uv_buf_t rest = uv_buf_init(wr->data, (unsigned)at);
    int rc = uv_write(&wr->req, (uv_stream_t *)&s->tcp, &rest, 1, on_write_done);
    if (rc < 0) {
        free(wr);
        return rc;
    }
    s->writes_pending++;
    if (stream_queued(s) > STREAM_WRITE_HIGH)
        s->drain_wanted = true;
    return 0;
}

static void on_shutdown_done(uv_shutdown_t *req, int status)
{
    struct stream *s = req->data;
    if (!s->closing && s->on_shutdown)
        s->on_shutdown(s, status);
}

int stream_shutdown(struct stream *s, void (*cb)(struct stream *s, int status))
{
    if (s->closing)
        return UV_ECANCELED;
    if (s->tls) {
        /* The peer learns the end is an end, not a cut (a truncation attack otherwise). */
        tls_conn_close_notify(s->tls);
        int rc = tls_flush(s);
        if (rc < 0)
            return rc;
    }
    s->on_shutdown = cb;
    s->shutdown_req.data = s;
    return uv_shutdown(&s->shutdown_req, (uv_stream_t *)&s->tcp, on_shutdown_done);
}

static void on_handle_closed(uv_handle_t *handle)
{
    struct stream *s = handle->data;
    if (s->on_closed)
        s->on_closed(s);
}

void stream_close(struct stream *s, bool reset, void (*on_closed)(struct stream *s))
{
    if (s->closing)
        return;
    s->closing = true;
    tls_conn_free(s->tls);
    s->tls = NULL;
    s->reading = false;
    s->on_closed = on_closed;
    /* A reset tells the peer at once that nothing more is coming (a cut-off body must not look whole). */
    if (reset && uv_tcp_close_reset(&s->tcp, on_handle_closed) == 0)
        return;
    uv_close((uv_handle_t *)&s->tcp, on_handle_closed);
}

int stream_closing(const struct stream *s)
{
    return s->closing;
}

/* ---- TLS ---- */

/* Sends what TLS has to send (records, handshake messages, alerts): at once, or copied and queued. */
static int tls_flush(struct stream *s)
{
    size_t n;
    const char *out = tls_conn_output(s->tls, &n);
    if (n == 0)
        return 0;
    uv_buf_t buf = uv_buf_init((char *)out, (unsigned)n);
    int rc = raw_writev(s, &buf, 1);
    tls_conn_output_taken(s->tls);
    return rc;
}

/* TLS failed on this stream: the owner hears of it as the end of reading, with stream_error's reason. */
static void tls_failed(struct stream *s)
{
    tls_flush(s); /* an alert, where OpenSSL made one */
    s->reading = false;
    uv_read_stop((uv_stream_t *)&s->tcp);
    if (!s->handshaken && s->on_handshake) {
        void (*cb)(struct stream *, int) = s->on_handshake;
        s->on_handshake = NULL;
        cb(s, UV_EPROTO);
        return;
    }
    s->h->on_end(s->ctx, UV_EPROTO);
}

/*
 * The first bytes on a TLS port, already fed to TLS: true when the handshake
 * is to go on (a ClientHello, or bytes TLS is to refuse in its own words),
 * false while too few to tell and once plain HTTP was handed to the owner.
 */
static bool sniffed_tls(struct stream *s, const char *data, size_t len)
{
    size_t room = sizeof s->sniffed - s->nsniffed;
    size_t take = len < room ? len : room;
    memcpy(s->sniffed + s->nsniffed, data, take);
    s->nsniffed += (unsigned)take;
    enum tls_sniff kind = tls_sniff(s->sniffed, s->nsniffed);
    if (kind == TLS_SNIFF_MORE)
        return false;
    s->sniffing = false;
    if (kind != TLS_SNIFF_HTTP)
        return true;
    tls_conn_free(s->tls);
    s->tls = NULL;
    s->reading = false;
    uv_read_stop((uv_stream_t *)&s->tcp);
    s->on_plain(s);
    return false;
}

static void tls_received(struct stream *s, const char *data, size_t len)
{
    char *joined = NULL;
    if (s->sniffing) {
        size_t before = s->nsniffed; /* bytes of earlier reads, kept while too few to tell */
        if (!sniffed_tls(s, data, len))
            return;
        if (before > 0) {
            /* A ClientHello that came in pieces this small: rare enough for a copy. */
            joined = malloc(before + len);
            if (!joined) {
                tls_failed(s);
                return;
            }
            memcpy(joined, s->sniffed, before);
            memcpy(joined + before, data, len);
            data = joined;
            len += before;
        }
    }
    tls_conn_input(s->tls, data, len);
    tls_process(s);
    free(joined);
}

/* Goes on with what TLS was handed: the handshake, then records for the owner. */
static void tls_process(struct stream *s)
{
    if (!s->handshaken) {
        int rc = tls_conn_handshake(s->tls);
        if (tls_flush(s) < 0 || rc < 0) {
            tls_failed(s);
            return;
        }
        if (rc == 0)
            return;
        s->handshaken = true;
        if (s->on_handshake) {
            void (*cb)(struct stream *, int) = s->on_handshake;
            s->on_handshake = NULL;
            cb(s, 0);
            if (s->closing || !s->tls)
                return;
        }
    }
    /*
     * Everything that was fed, record by record, whether or not the owner
     * stops reading on the way: as on plain TCP, what one read brought is
     * delivered whole (nothing may wait inside TLS for a read that never comes).
     */
    for (;;) {
        ssize_t n = tls_conn_read(s->tls, plain_buf, sizeof plain_buf);
        if (n == 0)
            break;
        if (n < 0) {
            if (tls_conn_error(s->tls)[0]) {
                tls_failed(s);
            } else {
                /* The peer's close_notify: a clean end of its side. */
                s->reading = false;
                uv_read_stop((uv_stream_t *)&s->tcp);
                s->h->on_end(s->ctx, UV_EOF);
            }
            return;
        }
        s->h->on_data(s->ctx, plain_buf, (size_t)n);
        if (s->closing || !s->tls)
            return;
    }
    if (tls_flush(s) < 0)
        tls_failed(s);
}

static int tls_start(struct stream *s, struct tls_ctx *ctx, bool server, const char *host)
{
    s->tls = tls_conn_new(ctx, server, host);
    return s->tls ? 0 : UV_ENOMEM;
}

int stream_tls_accept(struct stream *s, struct tls_ctx *ctx, void (*on_plain)(struct stream *s))
{
    int rc = tls_start(s, ctx, true, NULL);
    if (rc == 0) {
        s->sniffing = true;
        s->on_plain = on_plain;
    }
    return rc;
}

int stream_tls_connect(struct stream *s, struct tls_ctx *ctx, const char *host,
                       void (*on_handshake)(struct stream *s, int status))
{
    int rc = tls_start(s, ctx, false, host);
    if (rc != 0)
        return rc;
    s->on_handshake = on_handshake;
    /* The ClientHello goes out now; the answer arrives through on_read. */
    if (tls_conn_handshake(s->tls) < 0)
        return UV_EPROTO;
    return tls_flush(s);
}

const char *stream_error(const struct stream *s)
{
    return s->tls ? tls_conn_error(s->tls) : "";
}
