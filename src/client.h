/*
 * client.h - what the proxy may do with the client connection it serves
 * (implemented by server.c, which owns the connection). An exchange starts
 * with proxy_begin and ends when the proxy calls client_exchange_done,
 * client_exchange_fail or client_abort; after that the server never calls
 * the proxy about it again, and the proxy forgets the client.
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

/* The response was sent whole: serve the next request, or close when !keep_alive. */
void client_exchange_done(struct client_conn *c, int keep_alive);

/* Nothing was sent yet: answers status with a short text body, then closes. */
void client_exchange_fail(struct client_conn *c, int status, const char *body);

/* A response already started cannot be finished: the connection is reset. */
void client_abort(struct client_conn *c);

#endif
