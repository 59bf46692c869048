/*
 * config.h - the daemon's whole configuration, read from the environment and
 * validated before anything listens. Variable names and defaults are those of
 * the Go sidecar this replaces, plus a few of our own.
 */
#ifndef QGS_CONFIG_H
#define QGS_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "allowlist.h"
#include "hostcheck.h"
#include "log.h"
#include "url.h"

struct config {
    struct url qbit;              /* QBIT_ADDR */
    char *qbit_user;              /* QBIT_USER, NULL when unset */
    char *qbit_pass;              /* QBIT_PASS or QBIT_PASS_FILE's contents, NULL when unset */
    char *qbit_api_key;           /* QBIT_API_KEY or QBIT_API_KEY_FILE's contents (qBittorrent 5.2+) */
    char *port_file;              /* PORT_FILE */
    uint16_t listen_port;         /* LISTEN_PORT */
    char *listen_addr;            /* LISTEN_ADDR, NULL = all interfaces, dual-stack if possible */
    char *allowed_ips_text;       /* ALLOWED_IPS as given */
    struct allowlist *allowed;    /* ALLOWED_IPS parsed; empty denies everyone */
    char *allowed_hosts_text;     /* ALLOWED_HOSTS as given */
    struct hostcheck *hosts;      /* ALLOWED_HOSTS parsed, and qBittorrent's own Host rule once read */
    enum log_level log_level;     /* LOG_LEVEL */
    unsigned header_timeout_ms;   /* HEADER_TIMEOUT: a request head must arrive within it */
    unsigned idle_timeout_ms;     /* IDLE_TIMEOUT: an idle client connection is closed after it */
    unsigned shutdown_timeout_ms; /* SHUTDOWN_TIMEOUT: in-flight requests get this long on SIGTERM */
    size_t max_header_size;       /* MAX_HEADER_SIZE: larger request heads get 431 */
    unsigned max_connections;     /* MAX_CONNECTIONS: concurrent clients, beyond it 503 */
    unsigned upstream_connect_timeout_ms; /* UPSTREAM_CONNECT_TIMEOUT: per qBittorrent address tried */
    unsigned upstream_timeout_ms;         /* UPSTREAM_TIMEOUT: qBittorrent's answer, or a stalled transfer */
    unsigned upstream_max_connections;    /* UPSTREAM_MAX_CONNECTIONS: open to qBittorrent at once */
    unsigned upstream_max_queue;          /* UPSTREAM_MAX_QUEUE: requests waiting for one, beyond it 503 */
    size_t max_buffered_body;    /* MAX_BUFFERED_BODY: chunked request bodies are collected up to it */
    unsigned resync_interval_ms; /* RESYNC_INTERVAL: re-check qBittorrent's port; 0 = never */
    int rebind_on_reconnect;     /* REBIND_ON_RECONNECT: force a re-bind after forwarding restarts */
    int reannounce_on_change;    /* REANNOUNCE_ON_CHANGE: tell the trackers after a port is set */
    int log_json;                /* LOG_FORMAT: 1 for json, 0 for text */
    int access_log;              /* ACCESS_LOG: one line per request */
    int trust_proxy;             /* QBIT_TRUST_PROXY: make qBittorrent trust our X-Forwarded-For */
    char *tls_cert_file;         /* TLS_CERT_FILE: the front door speaks HTTPS (with TLS_KEY_FILE) */
    char *tls_key_file;          /* TLS_KEY_FILE */
    char *qbit_ca_file;          /* QBIT_CA_FILE: trust this PEM for an https:// QBIT_ADDR */
    int qbit_tls_insecure;       /* QBIT_TLS_INSECURE: do not verify qBittorrent's certificate */
    int have_gluetun;            /* GLUETUN_CONTROL_URL is set: a second port source */
    struct url gluetun;          /* GLUETUN_CONTROL_URL */
    char *gluetun_api_key;       /* GLUETUN_API_KEY or GLUETUN_API_KEY_FILE's contents, sent as X-API-Key */
    char *gluetun_user;          /* GLUETUN_USER, for HTTP basic */
    char *gluetun_pass;          /* GLUETUN_PASS or GLUETUN_PASS_FILE's contents */
    char *gluetun_ca_file;       /* GLUETUN_CA_FILE: trust this PEM for an https:// control server */
    unsigned gluetun_poll_ms;    /* GLUETUN_POLL_INTERVAL: how often it is asked while it is the source */
};

/*
 * Reads every variable from the environment into *cfg. Returns 0, or -1 when
 * anything is invalid; then err holds one line per problem, each naming the
 * variable, its value and what is expected. (Certificates are read where TLS
 * is set up: tlsconfig.h.) On failure *cfg holds nothing that
 * needs freeing. On success free it with config_free.
 */
int config_load(struct config *cfg, char *err, size_t errlen);

/* Frees what config_load allocated (the password is wiped first). */
void config_free(struct config *cfg);

/* Writes the effective configuration, one VAR=value per line, password masked. */
void config_print(const struct config *cfg, FILE *out);

#endif
