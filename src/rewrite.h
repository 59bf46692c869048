/*
 * rewrite.h - what the proxy changes in the heads passing through it, and the
 * same-origin check it makes at the edge. Pure: heads in, bytes out.
 *
 * qBittorrent refuses a request whose Host port is not its own, and one whose
 * Origin (or else Referer) names another host:port than Host. So the proxy
 * checks Origin against the Host the client used, then rewrites Host, Origin
 * and Referer to qBittorrent's own, and replaces whatever forwarding headers
 * the client sent with its own X-Forwarded-For and X-Forwarded-Proto. On the
 * way back, a cookie's Secure attribute follows the client's scheme.
 */
#ifndef QGS_REWRITE_H
#define QGS_REWRITE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "http.h"
#include "url.h"

/*
 * Returns 0 when the request has no Origin or Referer, or when the one that
 * counts (Origin, else Referer) names the origin the client reached: the
 * front door's scheme (https set: TLS) with the host and port of its Host
 * header. Returns -1 otherwise, with the reason in why.
 */
int rewrite_check_origin(const struct http_head *req, int https, char *why, size_t whylen);

struct rewrite_request {
    const char *method;         /* "GET" */
    const struct url *upstream; /* QBIT_ADDR: Host, path prefix, Origin */
    const char *client_addr;    /* for X-Forwarded-For */
    int https;                  /* the client came over TLS (X-Forwarded-Proto) */
    int has_body;               /* send Content-Length: content_length */
    uint64_t content_length;
    int upgrade; /* keep Upgrade and send Connection: Upgrade */
};

/* Appends the head to send upstream for req; returns 0 or a buf error. */
int rewrite_request_head(struct buf *out, const struct http_head *req, const struct rewrite_request *r);

struct rewrite_response {
    int status;
    enum framing framing;
    uint64_t content_length; /* with FRAMING_LENGTH */
    int keep_alive;          /* Connection: keep-alive, else close */
    int upgrade;             /* a 101: keep Upgrade, send Connection: Upgrade */
    int https;               /* the client came over TLS: cookies are Secure; over plain HTTP they are not */
};

/* Appends the head to send the client for the upstream response resp; returns 0 or a buf error. */
int rewrite_response_head(struct buf *out, const struct http_head *resp, const struct rewrite_response *r);

#endif
