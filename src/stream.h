/*
 * stream.h - a connected byte stream: the one path bytes take into and out of
 * the daemon, for client connections and connections to qBittorrent alike.
 * Plain TCP is its implementation today; TLS will be a second one behind the
 * same calls, with nothing above them changing.
 *
 * The owner embeds the struct and hears of it through a handler table. Writes
 * go out at once where the socket takes them and are copied otherwise; the
 * bytes queued are visible, and on_drain says when a queue that went over
 * STREAM_WRITE_HIGH is back under half of it. Reading is on or off. A stream
 * closes once (stream_close) and calls on_closed when its handle is gone:
 * only then may the owner free it. No callback runs inside the call that
 * caused it, except on_data inside the loop's own read.
 */
#ifndef QGS_STREAM_H
#define QGS_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

/* Owners stop feeding a stream whose write queue is over this. */
#define STREAM_WRITE_HIGH (256 * 1024)

struct stream;

struct stream_handler {
    /* Bytes arrived; valid during the call only (one read buffer serves every stream). */
    void (*on_data)(void *ctx, const char *data, size_t len);
    /* The peer closed its side (err UV_EOF) or reading failed (another err); reading has stopped. */
    void (*on_end)(void *ctx, int err);
    /* A write the stream had queued failed (from the loop); the owner decides what follows. */
    void (*on_write_error)(void *ctx, int err);
    /* A queued write completed (progress); stream_writing() says whether more are in flight. */
    void (*on_written)(void *ctx);
    /* The queue went back under STREAM_WRITE_HIGH / 2 after being over STREAM_WRITE_HIGH. */
    void (*on_drain)(void *ctx);
};

struct stream {
    uv_tcp_t tcp; /* the transport; stream_tcp() for what only TCP has (connect, accept, addresses) */
    const struct stream_handler *h;
    void *ctx;
    void (*on_closed)(struct stream *s);
    void (*on_shutdown)(struct stream *s, int status);
    uv_shutdown_t shutdown_req;
    unsigned writes_pending; /* queued writes whose callback has not run */
    bool reading, closing, drain_wanted;
};

/* Prepares an unconnected stream on loop; returns 0 or a libuv error. */
int stream_init(struct stream *s, uv_loop_t *loop, const struct stream_handler *h, void *ctx);

/* The TCP handle under the stream, for connecting, accepting and socket addresses. */
uv_tcp_t *stream_tcp(struct stream *s);

/* Starts (on) or stops reading; a no-op when already so or closing. */
void stream_read(struct stream *s, bool on);

/*
 * Writes the buffers, copying what the socket does not take now. Returns 0,
 * or a libuv error when nothing more can be written (the owner closes).
 */
int stream_writev(struct stream *s, const uv_buf_t *bufs, unsigned nbufs);

/* Returns the bytes queued and not yet written. */
size_t stream_queued(const struct stream *s);

/* Returns 1 while a queued write has not completed. */
int stream_writing(const struct stream *s);

/* Shuts the write side down once the queue is written; cb gets the status. Returns 0 or a libuv error. */
int stream_shutdown(struct stream *s, void (*cb)(struct stream *s, int status));

/* Closes the stream (with a TCP reset when reset is set); on_closed follows from the loop. */
void stream_close(struct stream *s, bool reset, void (*on_closed)(struct stream *s));

/* Returns 1 once stream_close was called. */
int stream_closing(const struct stream *s);

#endif
