/* stream.c - the byte stream over plain TCP: reading, writing with a visible queue, shutdown, close. */
#include "stream.h"

#include <stdlib.h>
#include <string.h>

#define READ_BUF_SIZE 65536

/*
 * One read buffer for every stream: the loop calls on_read right after
 * on_alloc, and every owner consumes or copies what it gets before its
 * on_data returns. Static: its pages are backed only once a read touches them.
 */
static char read_buf[READ_BUF_SIZE];

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

static void on_read(uv_stream_t *handle, ssize_t nread, const uv_buf_t *buf)
{
    struct stream *s = handle->data;
    if (nread > 0) {
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

int stream_writev(struct stream *s, const uv_buf_t *bufs, unsigned nbufs)
{
    if (s->closing)
        return UV_ECANCELED;
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
