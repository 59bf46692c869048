/*
 * certs.h - TLS as the configuration asks for it: the front door's
 * certificate (TLS_CERT_FILE, TLS_KEY_FILE), loaded at start and again
 * whenever either file changes, and the trust for an https:// QBIT_ADDR
 * (QBIT_CA_FILE, QBIT_TLS_INSECURE) and an https:// GLUETUN_CONTROL_URL
 * (GLUETUN_CA_FILE). Owns every context it made; a renewed
 * certificate replaces the old one for new connections, while open ones
 * keep theirs. A broken new pair is logged and the old one kept.
 */
#ifndef QGS_CERTS_H
#define QGS_CERTS_H

#include <stddef.h>
#include <uv.h>

#include "config.h"

struct certs;
struct tls_ctx;

/*
 * Loads OpenSSL and the contexts cfg needs (none when it asks for no TLS).
 * Returns 0 and the set in *out, or -1 with why in err, naming the variable
 * and the file. The config must outlive the set.
 */
int certs_load(const struct config *cfg, struct certs **out, char *err, size_t errlen);

/* The front door's context now, or NULL for plain HTTP; valid until the next renewal or certs_free. */
struct tls_ctx *certs_front(const struct certs *c);

/* The context for connections to qBittorrent, or NULL when QBIT_ADDR is http://; valid until certs_free. */
struct tls_ctx *certs_upstream(const struct certs *c);

/* The context for Gluetun's control server, or NULL unless GLUETUN_CONTROL_URL is https://. */
struct tls_ctx *certs_gluetun(const struct certs *c);

/* Describes the front door's certificate ("serial 1A2B, valid until ..."), "" without one. */
const char *certs_front_describe(const struct certs *c);

/*
 * Watches the front door's files: after a renewal on_renewed(arg, ctx) gets
 * the new context (certs_front's from then on) and the old one is freed once
 * no connection uses it. Returns 0 or a libuv error; without a front door
 * certificate it does nothing.
 */
int certs_watch(struct certs *c, uv_loop_t *loop, void (*on_renewed)(void *arg, struct tls_ctx *ctx),
                void *arg);

/* Stops watching (from the loop, before it ends). */
void certs_stop(struct certs *c);

/* Frees the set and its contexts; NULL is a no-op. */
void certs_free(struct certs *c);

#endif
