/*
 * metrics.h - what /metrics reports, in the Prometheus text format. The
 * daemon is one thread, so the counters are plain fields of one global that
 * each module updates where the event happens; rendering reads them all.
 */
#ifndef QGS_METRICS_H
#define QGS_METRICS_H

#include <stdint.h>

#include "buf.h"

#define METRICS_LATENCY_BUCKETS 11
#define METRICS_METHODS 8 /* GET HEAD POST PUT DELETE OPTIONS PATCH other */

enum upstream_error_kind {
    UPSTREAM_ERR_CONNECT,
    UPSTREAM_ERR_TIMEOUT,
    UPSTREAM_ERR_BROKEN,
    UPSTREAM_ERR_KINDS
};

struct metrics {
    /* Port sync. */
    int desired_port; /* the file's port, 0 while there is none */
    int applied_port; /* the port qBittorrent confirmed, 0 if none */
    uint64_t sync_attempts, sync_successes;
    uint64_t sync_failures[6]; /* by enum qbt_result; [0] (ok) unused */
    double last_success_time;  /* Unix time of the last successful sync, 0 = never */
    uint64_t latency_buckets[METRICS_LATENCY_BUCKETS];
    uint64_t latency_count;
    double latency_sum;
    int localhost_bypass_exposed; /* bypass_local_auth on, proxy not trusted, non-loopback clients allowed */
    /* Front door and proxy. */
    uint64_t requests[METRICS_METHODS][5]; /* proxied requests by method and status class 1xx..5xx */
    uint64_t upstream_errors[UPSTREAM_ERR_KINDS];
    uint64_t denied_requests;
    uint64_t misdirected_requests; /* Host not allowed (hostcheck.h) */
    int64_t client_connections, upstream_connections_active, upstream_connections_idle;
};

extern struct metrics metrics;

/* Records the time from a file change to qBittorrent confirming the port. */
void metrics_observe_latency(double seconds);

/* Counts a proxied request by its llhttp method and the status the client got. */
void metrics_count_request(int llhttp_method, int status);

/* Appends the exposition text to out; returns 0 or a buf error. */
int metrics_render(struct buf *out);

#endif
