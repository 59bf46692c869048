/*
 * healthcheck.h - the `healthcheck` subcommand: asks the running daemon's
 * /healthz on the configured port, so an image without a shell or curl can
 * have a HEALTHCHECK. Blocking and short: it runs as its own process.
 */
#ifndef QGS_HEALTHCHECK_H
#define QGS_HEALTHCHECK_H

#include "config.h"

/* Returns 0 when GET /healthz answers 200 within timeout_ms, else 1 (with the reason on stderr). */
int healthcheck_run(const struct config *cfg, unsigned timeout_ms);

#endif
