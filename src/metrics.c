/* metrics.c - the counters, and their Prometheus text exposition (format 0.0.4). */
#include "metrics.h"

#include <llhttp.h>
#include <stdio.h>

#include "qbt.h"

struct metrics metrics = {.desired_port = 0};

static const double latency_bounds[METRICS_LATENCY_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                               0.5,   1,    2.5,   5,    10};
static const char *const method_names[METRICS_METHODS] = {"GET",    "HEAD",    "POST",  "PUT",
                                                          "DELETE", "OPTIONS", "PATCH", "other"};
static const char *const upstream_error_names[UPSTREAM_ERR_KINDS] = {"connect", "timeout", "broken"};

void metrics_observe(struct histogram *h, double seconds)
{
    for (int i = 0; i < METRICS_LATENCY_BUCKETS; i++) {
        if (seconds <= latency_bounds[i])
            h->buckets[i]++;
    }
    h->count++;
    h->sum += seconds;
}

void metrics_count_request(int method, int status)
{
    int m;
    switch (method) {
    case HTTP_GET:
        m = 0;
        break;
    case HTTP_HEAD:
        m = 1;
        break;
    case HTTP_POST:
        m = 2;
        break;
    case HTTP_PUT:
        m = 3;
        break;
    case HTTP_DELETE:
        m = 4;
        break;
    case HTTP_OPTIONS:
        m = 5;
        break;
    case HTTP_PATCH:
        m = 6;
        break;
    default:
        m = 7;
        break;
    }
    int class = status / 100;
    if (class >= 1 && class <= 5)
        metrics.requests[m][class - 1]++;
}

#define PREFIX "qbit_gluetun_sync_"

/* HELP and TYPE lines; every metric has both. */
static int family(struct buf *out, const char *name, const char *type, const char *help)
{
    return buf_printf(out, "# HELP " PREFIX "%s %s\n# TYPE " PREFIX "%s %s\n", name, help, name, type);
}

static int render_histogram(struct buf *out, const char *name, const char *help, const struct histogram *h)
{
    int rc = family(out, name, "histogram", help);
    for (int i = 0; i < METRICS_LATENCY_BUCKETS; i++)
        rc |= buf_printf(out, PREFIX "%s_bucket{le=\"%g\"} %llu\n", name, latency_bounds[i],
                         (unsigned long long)h->buckets[i]);
    rc |= buf_printf(out, PREFIX "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)h->count);
    rc |= buf_printf(out, PREFIX "%s_sum %.6f\n", name, h->sum);
    rc |= buf_printf(out, PREFIX "%s_count %llu\n", name, (unsigned long long)h->count);
    return rc;
}

int metrics_render(struct buf *out)
{
    int rc = 0;
    rc |= family(out, "build_info", "gauge", "Version of the running daemon (always 1).");
    rc |= buf_printf(out, PREFIX "build_info{version=\"%s\"} 1\n", QGS_VERSION);

    rc |= family(out, "desired_port", "gauge", "Forwarded port read from PORT_FILE (0 while there is none).");
    rc |= buf_printf(out, PREFIX "desired_port %d\n", metrics.desired_port);
    rc |= family(out, "applied_port", "gauge", "Port qBittorrent confirmed listening on (0 if none).");
    rc |= buf_printf(out, PREFIX "applied_port %d\n", metrics.applied_port);

    rc |= family(out, "sync_attempts_total", "counter", "Reconcile runs started.");
    rc |= buf_printf(out, PREFIX "sync_attempts_total %llu\n", (unsigned long long)metrics.sync_attempts);
    rc |= family(out, "sync_successes_total", "counter",
                 "Reconcile runs that ended in agreement with qBittorrent.");
    rc |= buf_printf(out, PREFIX "sync_successes_total %llu\n", (unsigned long long)metrics.sync_successes);
    rc |= family(out, "sync_failures_total", "counter", "Reconcile runs that failed, by reason.");
    for (int r = QBT_UNREACHABLE; r <= QBT_BAD_RESPONSE; r++)
        rc |= buf_printf(out, PREFIX "sync_failures_total{reason=\"%s\"} %llu\n", qbt_result_name(r),
                         (unsigned long long)metrics.sync_failures[r]);
    rc |= family(out, "last_success_timestamp_seconds", "gauge",
                 "Unix time of the last successful sync (0 = never).");
    rc |= buf_printf(out, PREFIX "last_success_timestamp_seconds %.3f\n", metrics.last_success_time);

    rc |= render_histogram(out, "apply_latency_seconds",
                           "Time from a change of the port file to qBittorrent confirming the new port.",
                           &metrics.apply_latency);

    rc |= family(out, "proxied_requests_total", "counter",
                 "Requests proxied to qBittorrent, by method and status class.");
    for (int m = 0; m < METRICS_METHODS; m++) {
        for (int c = 0; c < 5; c++) {
            if (metrics.requests[m][c])
                rc |= buf_printf(out, PREFIX "proxied_requests_total{method=\"%s\",code=\"%dxx\"} %llu\n",
                                 method_names[m], c + 1, (unsigned long long)metrics.requests[m][c]);
        }
    }
    rc |= family(out, "upstream_errors_total", "counter", "Failed exchanges with qBittorrent, by kind.");
    for (int k = 0; k < UPSTREAM_ERR_KINDS; k++)
        rc |= buf_printf(out, PREFIX "upstream_errors_total{kind=\"%s\"} %llu\n", upstream_error_names[k],
                         (unsigned long long)metrics.upstream_errors[k]);
    rc |= family(out, "denied_requests_total", "counter",
                 "Requests refused because the client is not in ALLOWED_IPS.");
    rc |= buf_printf(out, PREFIX "denied_requests_total %llu\n", (unsigned long long)metrics.denied_requests);
    rc |= family(out, "misdirected_requests_total", "counter",
                 "Requests refused because qBittorrent (or ALLOWED_HOSTS) does not allow their Host name.");
    rc |= buf_printf(out, PREFIX "misdirected_requests_total %llu\n",
                     (unsigned long long)metrics.misdirected_requests);
    rc |= family(out, "client_connections", "gauge", "Open client connections.");
    rc |= buf_printf(out, PREFIX "client_connections %lld\n", (long long)metrics.client_connections);
    rc |= family(out, "upstream_connections", "gauge", "Open connections to qBittorrent, by state.");
    rc |= buf_printf(out, PREFIX "upstream_connections{state=\"active\"} %lld\n",
                     (long long)metrics.upstream_connections_active);
    rc |= buf_printf(out, PREFIX "upstream_connections{state=\"idle\"} %lld\n",
                     (long long)metrics.upstream_connections_idle);
    rc |= family(out, "upstream_queue_length", "gauge",
                 "Requests waiting for a connection to qBittorrent (UPSTREAM_MAX_CONNECTIONS are open).");
    rc |= buf_printf(out, PREFIX "upstream_queue_length %lld\n", (long long)metrics.upstream_queue_length);
    rc |= render_histogram(out, "upstream_queue_wait_seconds",
                           "How long requests that had to wait for a connection to qBittorrent waited.",
                           &metrics.upstream_queue_wait);
    rc |= family(out, "upstream_queue_full_total", "counter",
                 "Requests answered 503 because too many were waiting for a connection to qBittorrent.");
    rc |= buf_printf(out, PREFIX "upstream_queue_full_total %llu\n",
                     (unsigned long long)metrics.upstream_queue_full);
    rc |= family(out, "localhost_bypass_exposed", "gauge",
                 "1 when qBittorrent's localhost bypass is on, it does not trust this proxy, and ALLOWED_IPS "
                 "admits non-loopback clients: they get the WebUI without a password.");
    rc |= buf_printf(out, PREFIX "localhost_bypass_exposed %d\n", metrics.localhost_bypass_exposed);
    return rc ? -1 : 0;
}
