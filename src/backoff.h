/*
 * backoff.h - how long to wait before trying again after failures, for
 * every retry loop (qBittorrent's API, Gluetun's control server): 1 s
 * doubling, times a jitter, at most 60 s. Pure.
 */
#ifndef QGS_BACKOFF_H
#define QGS_BACKOFF_H

/* The delay in ms before retry number `failures` (1, 2, ...), times jitter (0.8..1.2); never above 60 s. */
unsigned backoff_ms(unsigned failures, double jitter);

/* A jitter for backoff_ms, uniform in 0.8..1.2 (rand(): seeded once by main). */
double backoff_jitter(void);

#endif
