/*
 * gluetun.h - Gluetun's control server as a port source, for set-ups that
 * share no volume with Gluetun (and for Gluetun 4, which drops the port
 * file). Asks GET /v1/portforward (Gluetun 3.41+), or /v1/openvpn/portforwarded
 * where only that answers (3.40), and remembers which one did. Sends the API
 * key (X-API-Key) or the user and password (HTTP basic) configured. Never
 * follows a redirect. Asked on demand, and every GLUETUN_POLL_INTERVAL while
 * polling is on (after a failure sooner, then backing off). Reports each
 * answer through its callback, from the loop, never inside a call; it logs
 * nothing itself.
 */
#ifndef QGS_GLUETUN_H
#define QGS_GLUETUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "upstream.h"

enum gluetun_state {
    GLUETUN_UNKNOWN, /* not asked yet */
    GLUETUN_PORT,    /* it serves a forwarded port */
    GLUETUN_DOWN,    /* it answers port 0 or no ports: forwarding is down */
    GLUETUN_FAILED,  /* no usable answer (detail says why): whatever was known stays */
};

/* Called after each answer, or failure; detail describes FAILED. */
typedef void (*gluetun_cb)(void *ctx, enum gluetun_state state, uint16_t port, const char *detail);

struct gluetun;

/*
 * Creates the source over up (a client for GLUETUN_CONTROL_URL, which the
 * caller owns and closes after gluetun_stop); cfg and up must outlive it.
 * Nothing is asked until gluetun_poll or gluetun_ask. Returns 0 or UV_ENOMEM.
 */
int gluetun_new(uv_loop_t *loop, const struct config *cfg, struct upstream *up, gluetun_cb cb, void *ctx,
                struct gluetun **out);

/* Polling on: asks now and then every GLUETUN_POLL_INTERVAL. Off: no more asking (an answer on its way still
 * reports). */
void gluetun_poll(struct gluetun *g, bool on);

/* Asks now (for /sync); while a request is on its way, its answer is the one reported. */
void gluetun_ask(struct gluetun *g);

/* Stops asking and reporting; it frees itself once its handles are closed. NULL is a no-op. */
void gluetun_stop(struct gluetun *g);

/* Returns a short name for a state ("port", "down", ...). */
const char *gluetun_state_name(enum gluetun_state state);

/*
 * Reads the port from an answer of either route, any Gluetun version:
 * {"port":N}, {"ports":[...]} or both ("port" wins when it is not 0).
 * Returns 0 with *port set (0: forwarding is down), or -1 with why in err. Pure.
 */
int gluetun_parse(const char *json, size_t len, uint16_t *port, char *err, size_t errlen);

#endif
