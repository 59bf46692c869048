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

/* Seconds, in the buckets 5 ms .. 10 s (cumulative when rendered). */
struct histogram {
    uint64_t buckets[METRICS_LATENCY_BUCKETS];
    uint64_t count;
    double sum;
};

struct metrics {
    /* Port sync. */
    int desired_port; /* the file's port, 0 while there is none */
    int applied_port; /* the port qBittorrent confirmed, 0 if none */
    uint64_t sync_attempts, sync_successes;
    uint64_t sync_failures[6];      /* by enum qbt_result; [0] (ok) unused */
    double last_success_time;       /* Unix time of the last successful sync, 0 = never */
    struct histogram apply_latency; /* file change to qBittorrent confirming */
    int localhost_bypass_exposed; /* bypass_local_auth on, proxy not trusted, non-loopback clients allowed */
    /* Front door and proxy. */
    uint64_t requests[METRICS_METHODS][5]; /* proxied requests by method and status class 1xx..5xx */
    uint64_t upstream_errors[UPSTREAM_ERR_KINDS];
    uint64_t denied_requests;
    uint64_t misdirected_requests; /* Host not allowed (hostcheck.h) */
    int64_t client_connections, upstream_connections_active, upstream_connections_idle;
    int64_t upstream_queue_length;        /* requests waiting for a connection to qBittorrent */
    struct histogram upstream_queue_wait; /* how long each waited (those that did not wait: not counted) */
    uint64_t upstream_queue_full;         /* requests refused (503) because the queue was full */
};

extern struct metrics metrics;

/* Records one observation of seconds in h. */
void metrics_observe(struct histogram *h, double seconds);

/* Counts a proxied request by its llhttp method and the status the client got. */
void metrics_count_request(int llhttp_method, int status);

/* Appends the exposition text to out; returns 0 or a buf error. */
int metrics_render(struct buf *out);

#endif
