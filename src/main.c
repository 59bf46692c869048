/* main.c - command line, configuration, signals and the event loop. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <llhttp.h>
#include <sys/resource.h>
#include <unistd.h>
#include <uv.h>

#include "certs.h"
#include "config.h"
#include "endpoints.h"
#include "healthcheck.h"
#include "log.h"
#include "proxy.h"
#include "qbt.h"
#include "server.h"
#include "sync.h"
#include "tls.h"
#include "upstream.h"

#define EXIT_CONFIG 2

struct daemon {
    uv_loop_t *loop;
    struct config cfg;
    struct server *server;
    struct upstream *upstream;
    struct upstream *gluetun_up; /* Gluetun's control server, NULL unless GLUETUN_CONTROL_URL */
    struct proxy *proxy;
    struct endpoints *endpoints;
    struct qbt *qbt;
    struct sync *sync;
    struct certs *certs;
    uv_signal_t sigterm, sigint;
};

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: qbit-gluetun-sync [--check-config | --help | --version | healthcheck]\n"
        "\n"
        "Keeps qBittorrent's listening port equal to Gluetun's forwarded port and\n"
        "serves the qBittorrent WebUI through an allow-listed reverse proxy.\n"
        "Configured by environment variables:\n"
        "  QBIT_ADDR         qBittorrent WebUI address, http:// or https:// (http://localhost:8080)\n"
        "  QBIT_CA_FILE      PEM certificate(s) to trust for an https:// QBIT_ADDR (the system's CAs)\n"
        "  QBIT_TLS_INSECURE do not verify qBittorrent's certificate (false)\n"
        "  QBIT_USER         WebUI user name (empty: rely on localhost bypass)\n"
        "  QBIT_PASS         WebUI password (or QBIT_PASS_FILE: read it from a file)\n"
        "  PORT_FILE         Gluetun's forwarded port file (/tmp/gluetun/forwarded_port)\n"
        "  GLUETUN_CONTROL_URL  Gluetun's control server, asked while PORT_FILE does not exist (unset)\n"
        "  GLUETUN_API_KEY   API key of a Gluetun role (or GLUETUN_API_KEY_FILE)\n"
        "  GLUETUN_USER      user of a Gluetun role with basic auth (GLUETUN_PASS or GLUETUN_PASS_FILE)\n"
        "  GLUETUN_CA_FILE   PEM certificate(s) to trust for an https:// GLUETUN_CONTROL_URL\n"
        "  GLUETUN_POLL_INTERVAL  seconds between questions to the control server (10)\n"
        "  LISTEN_ADDR       address to listen on (all interfaces, IPv4 and IPv6)\n"
        "  LISTEN_PORT       port to listen on (9090)\n"
        "  TLS_CERT_FILE     PEM certificate chain: LISTEN_PORT speaks HTTPS (with TLS_KEY_FILE)\n"
        "  TLS_KEY_FILE      PEM private key of TLS_CERT_FILE\n"
        "  ALLOWED_IPS       comma-separated IPs/CIDRs allowed in (empty: nobody)\n"
        "  ALLOWED_HOSTS     host names allowed in Host, on top of qBittorrent's own list (empty: its list)\n"
        "  LOG_LEVEL         debug, info, warn or error (info)\n"
        "  HEADER_TIMEOUT    seconds a client has to send a request head (10)\n"
        "  IDLE_TIMEOUT      seconds an idle client connection is kept (60)\n"
        "  SHUTDOWN_TIMEOUT  seconds in-flight requests get on SIGTERM (10)\n"
        "  MAX_HEADER_SIZE   largest request head in bytes (16384)\n"
        "  MAX_CONNECTIONS   concurrent client connections (1024)\n"
        "  UPSTREAM_CONNECT_TIMEOUT  seconds to connect to qBittorrent, per address (5)\n"
        "  UPSTREAM_TIMEOUT  seconds to wait for qBittorrent's answer or a stalled transfer (60)\n"
        "  UPSTREAM_MAX_CONNECTIONS  connections to qBittorrent open at once; more requests wait (16)\n"
        "  UPSTREAM_MAX_QUEUE  requests waiting for a connection at most; beyond it 503 (1024)\n"
        "  MAX_BUFFERED_BODY bytes of a chunked request body collected for qBittorrent (67108864)\n"
        "  QBIT_API_KEY      qBittorrent 5.2+ API key instead of user and password (or QBIT_API_KEY_FILE)\n"
        "  RESYNC_INTERVAL   seconds between checks of qBittorrent's port, 0 = never (60)\n"
        "  REBIND_ON_RECONNECT  force a re-bind when forwarding restarts (true)\n"
        "  REANNOUNCE_ON_CHANGE make qBittorrent re-announce every torrent after a port is set (true)\n"
        "  QBIT_TRUST_PROXY  make qBittorrent take client addresses from X-Forwarded-For (true)\n"
        "  LOG_FORMAT        text or json (text)\n"
        "  ACCESS_LOG        one log line per request (false)\n"
        "\n"
        "  --check-config    validate the configuration, print it and exit (0 ok, 2 invalid)\n"
        "  healthcheck       ask the running daemon's /healthz on LISTEN_PORT; exit 0 if it answers 200, "
        "else 1\n"
        "  --help            show this help\n"
        "  --version         show the version\n");
}

/*
 * Each client may hold a connection to qBittorrent too. Raises the soft
 * descriptor limit to the hard one when MAX_CONNECTIONS needs it, and says
 * so when even that is short (libuv then sheds connections silently).
 */
static void check_fd_limit(unsigned max_connections)
{
    struct rlimit rl;
    rlim_t need = (rlim_t)max_connections * 2 + 64;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= need)
        return;
    rlim_t want = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need ? need : rl.rlim_max;
    if (want > rl.rlim_cur) {
        rl.rlim_cur = want;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur < need)
        log_warn("MAX_CONNECTIONS=%u needs about %llu file descriptors, but the limit is %llu; connections "
                 "beyond it are dropped",
                 max_connections, (unsigned long long)need, (unsigned long long)rl.rlim_cur);
}

static void on_stopped(void *arg)
{
    struct daemon *d = arg;
    upstream_close(d->upstream);
    if (d->gluetun_up)
        upstream_close(d->gluetun_up);
    certs_stop(d->certs);
    uv_close((uv_handle_t *)&d->sigterm, NULL);
    uv_close((uv_handle_t *)&d->sigint, NULL);
}

static void on_renewed(void *arg, struct tls_ctx *ctx)
{
    struct daemon *d = arg;
    server_use_tls(d->server, ctx);
}

static void on_signal(uv_signal_t *handle, int signum)
{
    struct daemon *d = handle->data;
    static int count;
    if (count++ == 0)
        log_info("received %s; shutting down (up to %u s for requests in flight)", strsignal(signum),
                 d->cfg.shutdown_timeout_ms / 1000);
    else
        log_info("received %s again; closing every connection now", strsignal(signum));
    server_stop(d->server, on_stopped, d);
    sync_stop(d->sync);
}

int main(int argc, char **argv)
{
    int check_only = 0, health = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--version") == 0 || strcmp(argv[i], "-V") == 0) {
            /* The libraries are linked in, so their versions are this binary's: bug reports need them. */
            printf("qbit-gluetun-sync %s\nllhttp %d.%d.%d, libuv %s, jansson %s\n", QGS_VERSION,
                   LLHTTP_VERSION_MAJOR, LLHTTP_VERSION_MINOR, LLHTTP_VERSION_PATCH, uv_version_string(),
                   JANSSON_VERSION);
            /* OpenSSL is the system's, loaded only when TLS is configured: say which one that would be. */
            char why[256];
            if (tls_load(why, sizeof why) == 0)
                printf("%s (loaded when TLS is configured)\n", tls_version());
            else
                printf("TLS unavailable: %s\n", why);
            return 0;
        } else if (strcmp(argv[i], "--check-config") == 0) {
            check_only = 1;
        } else if (strcmp(argv[i], "healthcheck") == 0) {
            health = 1;
        } else {
            fprintf(stderr, "qbit-gluetun-sync: unknown argument \"%s\"\n", argv[i]);
            usage(stderr);
            return EXIT_CONFIG;
        }
    }

    static struct daemon d;
    char err[4096];
    if (config_load(&d.cfg, err, sizeof err) != 0) {
        fprintf(stderr, "qbit-gluetun-sync: invalid configuration:\n");
        for (char *line = err, *nl; *line; line = nl ? nl + 1 : line + strlen(line)) {
            nl = strchr(line, '\n');
            fprintf(stderr, "  %.*s\n", nl ? (int)(nl - line) : (int)strlen(line), line);
        }
        /* For a container runtime a health check exits 0 or 1; 2 means something else there. */
        return health ? 1 : EXIT_CONFIG;
    }
    if (health) {
        int rc = healthcheck_run(&d.cfg, 3000);
        config_free(&d.cfg);
        return rc;
    }
    /* The certificates are part of the configuration: a bad pair stops the start (and --check-config). */
    if (certs_load(&d.cfg, &d.certs, err, sizeof err) != 0) {
        fprintf(stderr, "qbit-gluetun-sync: invalid configuration:\n  %s\n", err);
        config_free(&d.cfg);
        return EXIT_CONFIG;
    }
    if (check_only) {
        config_print(&d.cfg, stdout);
        if (certs_front(d.certs))
            printf("front door certificate: %s\n", certs_front_describe(d.certs));
        printf("configuration OK\n");
        certs_free(d.certs);
        config_free(&d.cfg);
        return 0;
    }
    log_set_level(d.cfg.log_level);
    log_set_json(d.cfg.log_json);
    if (allowlist_count(d.cfg.allowed) == 0)
        log_warn("ALLOWED_IPS is empty: every client except health probes is denied");
    if (d.cfg.qbit_tls_insecure)
        log_warn(
            "QBIT_TLS_INSECURE=true: qBittorrent's certificate is not checked, so whoever can get between "
            "the two can read the WebUI password; set QBIT_CA_FILE to its certificate instead");

    check_fd_limit(d.cfg.max_connections);

    /* Writes to a closed socket must fail with EPIPE, not kill the daemon. */
    signal(SIGPIPE, SIG_IGN);

    d.loop = uv_default_loop();
    srand((unsigned)(uv_hrtime() ^ (uint64_t)getpid())); /* the retry jitter (backoff.h) */
    int exit_code = 0;
    struct upstream_options uo = {
        .connect_timeout_ms = d.cfg.upstream_connect_timeout_ms,
        .response_timeout_ms = d.cfg.upstream_timeout_ms,
        .io_timeout_ms = d.cfg.upstream_timeout_ms,
        .pool_idle_ms = 4000, /* qBittorrent closes idle connections after about 7 s */
        .pool_max = d.cfg.upstream_max_connections,
        .max_conns = d.cfg.upstream_max_connections,
        .reserved = 1, /* the port sync's API calls never wait behind the WebUI */
        .queue_max = d.cfg.upstream_max_queue,
        .tls = certs_upstream(d.certs),
    };
    /* Gluetun's control server gets a client of its own: another host, another pool. */
    struct upstream_options go = uo;
    go.pool_max = 1;
    go.max_conns = 0; /* one question at a time */
    go.tls = certs_gluetun(d.certs);
    if (upstream_new(d.loop, &d.cfg.qbit, &uo, &d.upstream) != 0 ||
        (d.cfg.have_gluetun && upstream_new(d.loop, &d.cfg.gluetun, &go, &d.gluetun_up) != 0) ||
        proxy_new(d.loop, &d.cfg, d.upstream, &d.proxy) != 0 || qbt_new(d.upstream, &d.cfg, &d.qbt) != 0 ||
        sync_new(d.loop, &d.cfg, d.qbt, d.gluetun_up, &d.sync) != 0 ||
        endpoints_new(d.loop, &d.cfg, d.sync, d.proxy, d.upstream, &d.endpoints) != 0) {
        log_error("out of memory");
        return 1;
    }
    const struct router router = endpoints_router(d.endpoints);
    if (server_start(d.loop, &d.cfg, &router, &d.server) != 0) {
        exit_code = 1;
        sync_stop(d.sync);
        upstream_close(d.upstream);
        if (d.gluetun_up)
            upstream_close(d.gluetun_up);
        uv_run(d.loop, UV_RUN_DEFAULT);
        goto out;
    }
    if (certs_front(d.certs)) {
        server_use_tls(d.server, certs_front(d.certs));
        log_info("LISTEN_PORT %u speaks HTTPS; certificate from %s: %s", d.cfg.listen_port,
                 d.cfg.tls_cert_file, certs_front_describe(d.certs));
        int wrc = certs_watch(d.certs, d.loop, on_renewed, &d);
        if (wrc != 0)
            log_error("cannot watch TLS_CERT_FILE and TLS_KEY_FILE: %s; renewals need a restart",
                      uv_strerror(wrc));
    }
    /*
     * As PID 1 in a container the kernel ignores signals that have no handler,
     * so SIGTERM must be handled explicitly for `docker stop` to work.
     */
    uv_signal_init(d.loop, &d.sigterm);
    uv_signal_init(d.loop, &d.sigint);
    d.sigterm.data = d.sigint.data = &d;
    uv_signal_start(&d.sigterm, on_signal, SIGTERM);
    uv_signal_start(&d.sigint, on_signal, SIGINT);
    log_info("qbit-gluetun-sync %s started; qBittorrent at %s, port file %s%s%s%s", QGS_VERSION,
             d.cfg.qbit.origin, d.cfg.port_file,
             d.cfg.have_gluetun ? ", or while it does not exist Gluetun's control server at " : "",
             d.cfg.have_gluetun ? d.cfg.gluetun.origin : "", d.cfg.have_gluetun ? d.cfg.gluetun.prefix : "");
    int rc = sync_start(d.sync);
    if (rc != 0)
        log_error("cannot watch PORT_FILE %s: %s", d.cfg.port_file, uv_strerror(rc));

    uv_run(d.loop, UV_RUN_DEFAULT);
    log_info("stopped");

out:
    server_free(d.server);
    endpoints_free(d.endpoints);
    sync_free(d.sync);
    qbt_free(d.qbt);
    proxy_free(d.proxy);
    upstream_free(d.upstream);
    upstream_free(d.gluetun_up);
    certs_free(d.certs);
    /* Every handle must be closed by now: one still open is a leak every SIGTERM test would miss. */
    if (uv_loop_close(d.loop) != 0) {
        log_error("the event loop did not close cleanly: a handle was left open");
        exit_code = 1;
    }
    config_free(&d.cfg);
    return exit_code;
}
