/*
 * stream.h - a connected byte stream: the one path bytes take into and out of
 * the daemon, for client connections and connections to qBittorrent alike.
 * Plain TCP, or TLS over it (tls.h) once stream_tls_accept or
 * stream_tls_connect is called: the same calls either way, on plaintext.
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

struct tls_conn;
struct tls_ctx;

struct stream {
    uv_tcp_t tcp; /* the transport; stream_tcp() for what only TCP has (connect, accept, addresses) */
    const struct stream_handler *h;
    void *ctx;
    void (*on_closed)(struct stream *s);
    void (*on_shutdown)(struct stream *s, int status);
    uv_shutdown_t shutdown_req;
    unsigned writes_pending; /* queued writes whose callback has not run */
    bool reading, closing, drain_wanted;
    /* TLS, when on: the connection, whether the first bytes are still to be told apart from plain
     * HTTP (server side), and who hears of the handshake (client side) or of plain HTTP. */
    struct tls_conn *tls;
    bool sniffing, handshaken;
    unsigned char sniffed[16]; /* the first bytes, while too few to tell */
    unsigned nsniffed;
    void (*on_handshake)(struct stream *s, int status);
    void (*on_plain)(struct stream *s);
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

/*
 * Makes an accepted stream speak TLS as the server, over ctx. When the first
 * bytes are plain HTTP instead of a TLS handshake, the stream goes plain
 * and calls on_plain (from the loop) for the owner to answer in plain text
 * and close. Returns 0 or UV_ENOMEM.
 */
int stream_tls_accept(struct stream *s, struct tls_ctx *ctx, void (*on_plain)(struct stream *s));

/*
 * Starts TLS as the client on a connected stream, checking the peer's
 * certificate against host; reading must be on. on_handshake gets 0 once the
 * stream is ready for writes, or UV_EPROTO (stream_error says why); it runs
 * from the loop, never inside this call. Returns 0 or a libuv error (then
 * stream_error may say why).
 */
int stream_tls_connect(struct stream *s, struct tls_ctx *ctx, const char *host,
                       void (*on_handshake)(struct stream *s, int status));

/* Why the stream failed, in words (a TLS handshake or record error); "" when nothing says more. */
const char *stream_error(const struct stream *s);

#endif
