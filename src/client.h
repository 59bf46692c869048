/*
 * client.h - what an exchange (exchange.h: the proxy, the sidecar's own
 * endpoints) may do with the client connection it serves; implemented by
 * server.c, which owns the connection. An exchange ends when it calls
 * client_exchange_done, client_exchange_fail or client_abort; after that the
 * server never calls it again, and it forgets the client.
 */
#ifndef QGS_CLIENT_H
#define QGS_CLIENT_H

#include <stddef.h>
#include <uv.h>

struct client_conn;

/* Sends bytes to the client, copying what cannot be written at once. */
void client_writev(struct client_conn *c, const uv_buf_t *bufs, unsigned nbufs);
void client_write(struct client_conn *c, const char *data, size_t len);

/* Returns the bytes queued to the client and not yet written. */
size_t client_queued(const struct client_conn *c);

/* Returns 1 when this connection will close after the current response (e.g. the server is stopping). */
int client_closing(const struct client_conn *c);

/* The client's address, for logs and X-Forwarded-For. */
const char *client_peer(const struct client_conn *c);

/* Lets the request parser go on after proxy_begin asked it to wait. */
void client_continue(struct client_conn *c);

/* Stops (1) or resumes (0) reading the client, for back-pressure. */
void client_pause(struct client_conn *c, int paused);

/* From now on bytes from the client go raw to proxy_tunnel (after a 101). */
void client_start_tunnel(struct client_conn *c);

/*
 * Sends a whole response the sidecar makes itself (content_type NULL: plain
 * text; extra_headers NULL or lines ending in CRLF); the head only for a HEAD
 * request. With keep_alive 0 the connection closes after it. Returns the bytes
 * sent, for the access log. The exchange still ends with client_exchange_done.
 */
size_t client_respond(struct client_conn *c, int status, const char *content_type, const char *extra_headers,
                      const char *body, size_t body_len, int keep_alive);

/* The response was sent whole: serve the next request, or close when !keep_alive. */
void client_exchange_done(struct client_conn *c, int keep_alive);

/* Nothing was sent yet: answers status with a short text body, then closes; returns the bytes sent. */
size_t client_exchange_fail(struct client_conn *c, int status, const char *body);

/* A response already started cannot be finished: the connection is reset. */
void client_abort(struct client_conn *c);

#endif
