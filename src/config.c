/* config.c - reads and validates every environment variable before anything listens. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "parse.h"

#define PASS_FILE_MAX 4096
#define GLUETUN_SECRET_MAX 256 /* each; the request head has room for no more */

/* Collects one line per problem so a user can fix them all in one go. */
struct problems {
    char *buf;
    size_t len, cap;
    int count;
};

static void problem(struct problems *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void problem(struct problems *p, const char *fmt, ...)
{
    p->count++;
    if (p->cap == 0 || p->len + 1 >= p->cap)
        return;
    if (p->len > 0)
        p->buf[p->len++] = '\n';
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(p->buf + p->len, p->cap - p->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        p->len += (size_t)n < p->cap - p->len ? (size_t)n : p->cap - p->len - 1;
}

/* Returns the variable's value, or NULL when it is unset or empty (empty means default). */
static const char *env(const char *name)
{
    const char *v = getenv(name);
    return (v && *v) ? v : NULL;
}

static char *dup_or_die(struct problems *p, const char *s)
{
    char *d = strdup(s);
    if (!d)
        problem(p, "out of memory");
    return d;
}

static void load_number(struct problems *p, const char *name, unsigned long min, unsigned long max,
                        unsigned long def, const char *what, unsigned long *out)
{
    const char *v = env(name);
    *out = def;
    if (v && parse_ulong(v, min, max, out) != 0)
        problem(p, "%s=\"%s\": expected %s from %lu to %lu (digits only)", name, v, what, min, max);
}

/* Reads a secret from a file, without its trailing line break. */
static char *read_secret_file(struct problems *p, const char *var, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        problem(p, "%s=\"%s\": cannot read the file: %s", var, path, strerror(errno));
        return NULL;
    }
    char *buf = calloc(1, PASS_FILE_MAX + 1);
    size_t n = buf ? fread(buf, 1, PASS_FILE_MAX + 1, f) : 0;
    int failed = buf ? ferror(f) : 1;
    fclose(f);
    if (failed || n > PASS_FILE_MAX) {
        problem(p, "%s=\"%s\": %s", var, path, failed ? "cannot read the file" : "file is larger than 4 KiB");
        free(buf);
        return NULL;
    }
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    if (n == 0 || memchr(buf, '\0', n)) {
        problem(p, "%s=\"%s\": the file is empty or not text", var, path);
        free(buf);
        return NULL;
    }
    return buf;
}

static int parse_bool(const char *v, int *out)
{
    static const char *const yes[] = {"true", "1", "yes", "on"}, *const no[] = {"false", "0", "no", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0)
            return *out = 1, 0;
        if (strcasecmp(v, no[i]) == 0)
            return *out = 0, 0;
    }
    return -1;
}

static void load_bool(struct problems *p, const char *name, int def, int *out)
{
    const char *v = env(name);
    *out = def;
    if (v && parse_bool(v, out) != 0)
        problem(p, "%s=\"%s\": expected true or false", name, v);
}

static void wipe_free(char *s)
{
    if (s) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

/* A secret from VAR or VAR_FILE (not both); NULL when neither is set. */
static char *load_secret(struct problems *p, const char *var, const char *file_var)
{
    const char *value = env(var), *file = env(file_var);
    if (value && file) {
        problem(p, "%s and %s=\"%s\" are both set; set only one", var, file_var, file);
        return NULL;
    }
    return value ? dup_or_die(p, value) : file ? read_secret_file(p, file_var, file) : NULL;
}

/* Gluetun's control server, the port source for set-ups that share no volume with Gluetun. */
static void load_gluetun(struct problems *p, struct config *cfg)
{
    char msg[512];
    unsigned long n;
    load_number(p, "GLUETUN_POLL_INTERVAL", 1, 86400, 10, "a number of seconds", &n);
    cfg->gluetun_poll_ms = (unsigned)n * 1000;
    const char *url = env("GLUETUN_CONTROL_URL"), *ca_file = env("GLUETUN_CA_FILE");
    const char *user = env("GLUETUN_USER");
    char *key = load_secret(p, "GLUETUN_API_KEY", "GLUETUN_API_KEY_FILE");
    char *pass = load_secret(p, "GLUETUN_PASS", "GLUETUN_PASS_FILE");
    if (url && url_parse(url, &cfg->gluetun, msg, sizeof msg) != 0)
        problem(p, "GLUETUN_CONTROL_URL=\"%s\": %s", url, msg);
    else if (url)
        cfg->have_gluetun = 1;
    if (!url && (key || user || pass || ca_file))
        problem(p,
                "%s is set but GLUETUN_CONTROL_URL is not; set it to Gluetun's control server, "
                "such as http://127.0.0.1:8000",
                key    ? "GLUETUN_API_KEY"
                : user ? "GLUETUN_USER"
                : pass ? "GLUETUN_PASS"
                       : "GLUETUN_CA_FILE");
    else if (key && (user || pass))
        problem(p, "GLUETUN_API_KEY and GLUETUN_USER/GLUETUN_PASS are both set; a Gluetun role uses "
                   "either an API key or a user and password");
    else if (user && !pass)
        problem(p, "GLUETUN_USER=\"%s\" is set but GLUETUN_PASS (or GLUETUN_PASS_FILE) is not; set both",
                user);
    else if (!user && pass)
        problem(p, "GLUETUN_PASS is set but GLUETUN_USER is not; set both or neither");
    else if ((key && strlen(key) > GLUETUN_SECRET_MAX) || (user && strlen(user) > GLUETUN_SECRET_MAX) ||
             (pass && strlen(pass) > GLUETUN_SECRET_MAX))
        problem(p, "%s is longer than %d bytes",
                key                                         ? "GLUETUN_API_KEY"
                : user && strlen(user) > GLUETUN_SECRET_MAX ? "GLUETUN_USER"
                                                            : "GLUETUN_PASS",
                GLUETUN_SECRET_MAX);
    else if (user && strchr(user, ':'))
        problem(p, "GLUETUN_USER=\"%s\": HTTP basic authentication allows no \":\" in a user name", user);
    else if (ca_file && cfg->have_gluetun && !cfg->gluetun.https)
        problem(p,
                "GLUETUN_CA_FILE is set but GLUETUN_CONTROL_URL=\"%s\" is not https://; it applies to "
                "HTTPS only",
                url);
    else {
        cfg->gluetun_api_key = key;
        cfg->gluetun_pass = pass;
        key = pass = NULL;
        if (user)
            cfg->gluetun_user = dup_or_die(p, user);
        if (ca_file)
            cfg->gluetun_ca_file = dup_or_die(p, ca_file);
    }
    wipe_free(key);
    wipe_free(pass);
}

int config_load(struct config *cfg, char *err, size_t errlen)
{
    struct problems p = {.buf = err, .cap = errlen};
    char msg[512];
    const char *v;
    unsigned long n;

    memset(cfg, 0, sizeof *cfg);
    if (errlen > 0)
        err[0] = '\0';

    v = env("QBIT_ADDR");
    if (!v)
        v = "http://localhost:8080";
    if (url_parse(v, &cfg->qbit, msg, sizeof msg) != 0)
        problem(&p, "QBIT_ADDR=\"%s\": %s", v, msg);

    const char *ca_file = env("QBIT_CA_FILE");
    load_bool(&p, "QBIT_TLS_INSECURE", 0, &cfg->qbit_tls_insecure);
    if (ca_file && cfg->qbit_tls_insecure)
        problem(&p,
                "QBIT_CA_FILE=\"%s\" and QBIT_TLS_INSECURE=true are both set; trust a certificate or skip "
                "the check, not both",
                ca_file);
    else if ((ca_file || cfg->qbit_tls_insecure) && !cfg->qbit.https)
        problem(&p, "%s is set but QBIT_ADDR=\"%s\" is not https://; it applies to HTTPS only",
                ca_file ? "QBIT_CA_FILE" : "QBIT_TLS_INSECURE", v);
    else if (ca_file)
        cfg->qbit_ca_file = dup_or_die(&p, ca_file);

    const char *cert = env("TLS_CERT_FILE"), *tls_key = env("TLS_KEY_FILE");
    if (cert && !tls_key)
        problem(&p, "TLS_CERT_FILE=\"%s\" is set but TLS_KEY_FILE is not; set both or neither", cert);
    else if (!cert && tls_key)
        problem(&p, "TLS_KEY_FILE=\"%s\" is set but TLS_CERT_FILE is not; set both or neither", tls_key);
    else if (cert) {
        cfg->tls_cert_file = dup_or_die(&p, cert);
        cfg->tls_key_file = dup_or_die(&p, tls_key);
    }

    const char *user = env("QBIT_USER"), *pass = env("QBIT_PASS"), *pass_file = env("QBIT_PASS_FILE");
    if (pass && pass_file)
        problem(&p, "QBIT_PASS and QBIT_PASS_FILE=\"%s\" are both set; set only one", pass_file);
    else if (user && !pass && !pass_file)
        problem(&p, "QBIT_USER=\"%s\" is set but QBIT_PASS (or QBIT_PASS_FILE) is not; set both or neither",
                user);
    else if (!user && (pass || pass_file))
        problem(&p, "%s is set but QBIT_USER is not; set both or neither",
                pass ? "QBIT_PASS" : "QBIT_PASS_FILE");
    else if (user) {
        cfg->qbit_user = dup_or_die(&p, user);
        cfg->qbit_pass = pass ? dup_or_die(&p, pass) : read_secret_file(&p, "QBIT_PASS_FILE", pass_file);
    }

    const char *key = env("QBIT_API_KEY"), *key_file = env("QBIT_API_KEY_FILE");
    if (key && key_file)
        problem(&p, "QBIT_API_KEY and QBIT_API_KEY_FILE=\"%s\" are both set; set only one", key_file);
    else if ((key || key_file) && user)
        problem(&p, "%s and QBIT_USER=\"%s\" are both set; use either an API key or a user and password",
                key ? "QBIT_API_KEY" : "QBIT_API_KEY_FILE", user);
    else if (key)
        cfg->qbit_api_key = dup_or_die(&p, key);
    else if (key_file)
        cfg->qbit_api_key = read_secret_file(&p, "QBIT_API_KEY_FILE", key_file);

    load_gluetun(&p, cfg);

    v = env("PORT_FILE");
    cfg->port_file = dup_or_die(&p, v ? v : "/tmp/gluetun/forwarded_port");

    load_number(&p, "LISTEN_PORT", 1, 65535, 9090, "a port number", &n);
    cfg->listen_port = (uint16_t)n;

    v = env("LISTEN_ADDR");
    if (v) {
        struct in6_addr a;
        char bare[INET6_ADDRSTRLEN];
        size_t len = strlen(v);
        /* Accept "[::1]" as well as "::1": people copy addresses from URLs. */
        if (len > 2 && v[0] == '[' && v[len - 1] == ']' && len - 2 < sizeof bare) {
            memcpy(bare, v + 1, len - 2);
            bare[len - 2] = '\0';
        } else if (len < sizeof bare) {
            memcpy(bare, v, len + 1);
        } else {
            bare[0] = '\0';
        }
        if (inet_pton(AF_INET, bare, &a) == 1 || inet_pton(AF_INET6, bare, &a) == 1)
            cfg->listen_addr = dup_or_die(&p, bare);
        else
            problem(&p, "LISTEN_ADDR=\"%s\": expected an IPv4 or IPv6 address such as 127.0.0.1 or ::", v);
    }

    v = getenv("ALLOWED_IPS");
    cfg->allowed_ips_text = dup_or_die(&p, v ? v : "");
    if (allowlist_parse(v ? v : "", &cfg->allowed, msg, sizeof msg) != 0)
        problem(&p,
                "ALLOWED_IPS=\"%s\": %s; expected comma-separated IPs or CIDRs such as 192.168.1.0/24, ::1",
                v, msg);

    v = getenv("ALLOWED_HOSTS");
    cfg->allowed_hosts_text = dup_or_die(&p, v ? v : "");
    if (hostcheck_parse(v ? v : "", &cfg->hosts, msg, sizeof msg) != 0)
        problem(&p,
                "ALLOWED_HOSTS=\"%s\": %s; expected comma-separated host names such as qbt.lan, *.home.arpa",
                v, msg);

    v = env("LOG_LEVEL");
    cfg->log_level = LOG_INFO;
    if (v && log_level_parse(v, &cfg->log_level) != 0)
        problem(&p, "LOG_LEVEL=\"%s\": expected debug, info, warn or error", v);

    load_number(&p, "HEADER_TIMEOUT", 1, 3600, 10, "a number of seconds", &n);
    cfg->header_timeout_ms = (unsigned)n * 1000;
    load_number(&p, "IDLE_TIMEOUT", 1, 86400, 60, "a number of seconds", &n);
    cfg->idle_timeout_ms = (unsigned)n * 1000;
    load_number(&p, "SHUTDOWN_TIMEOUT", 0, 3600, 10, "a number of seconds", &n);
    cfg->shutdown_timeout_ms = (unsigned)n * 1000;
    load_number(&p, "MAX_HEADER_SIZE", 1024, 1048576, 16384, "a size in bytes", &n);
    cfg->max_header_size = n;
    load_number(&p, "MAX_CONNECTIONS", 1, 1000000, 1024, "a number of connections", &n);
    cfg->max_connections = (unsigned)n;
    load_number(&p, "UPSTREAM_CONNECT_TIMEOUT", 1, 600, 5, "a number of seconds", &n);
    cfg->upstream_connect_timeout_ms = (unsigned)n * 1000;
    load_number(&p, "UPSTREAM_TIMEOUT", 1, 3600, 60, "a number of seconds", &n);
    cfg->upstream_timeout_ms = (unsigned)n * 1000;
    load_number(&p, "UPSTREAM_MAX_CONNECTIONS", 2, 10000, 16,
                "a number of connections (one is kept for the API)", &n);
    cfg->upstream_max_connections = (unsigned)n;
    load_number(&p, "UPSTREAM_MAX_QUEUE", 0, 1000000, 1024, "a number of requests", &n);
    cfg->upstream_max_queue = (unsigned)n;
    load_number(&p, "MAX_BUFFERED_BODY", 0, 1UL << 30, 64UL << 20, "a size in bytes", &n);
    cfg->max_buffered_body = n;
    load_number(&p, "RESYNC_INTERVAL", 0, 86400, 60, "a number of seconds (0 disables)", &n);
    cfg->resync_interval_ms = (unsigned)n * 1000;

    load_bool(&p, "REBIND_ON_RECONNECT", 1, &cfg->rebind_on_reconnect);
    load_bool(&p, "REANNOUNCE_ON_CHANGE", 1, &cfg->reannounce_on_change);
    load_bool(&p, "ACCESS_LOG", 0, &cfg->access_log);
    load_bool(&p, "QBIT_TRUST_PROXY", 1, &cfg->trust_proxy);

    v = env("LOG_FORMAT");
    cfg->log_json = v && strcmp(v, "json") == 0;
    if (v && strcmp(v, "json") != 0 && strcmp(v, "text") != 0)
        problem(&p, "LOG_FORMAT=\"%s\": expected text or json", v);

    if (p.count > 0) {
        config_free(cfg);
        return -1;
    }
    return 0;
}

void config_free(struct config *cfg)
{
    free(cfg->qbit_user);
    wipe_free(cfg->qbit_pass);
    wipe_free(cfg->qbit_api_key);
    free(cfg->port_file);
    free(cfg->listen_addr);
    free(cfg->allowed_ips_text);
    allowlist_free(cfg->allowed);
    free(cfg->allowed_hosts_text);
    hostcheck_free(cfg->hosts);
    free(cfg->tls_cert_file);
    free(cfg->tls_key_file);
    free(cfg->qbit_ca_file);
    wipe_free(cfg->gluetun_api_key);
    free(cfg->gluetun_user);
    wipe_free(cfg->gluetun_pass);
    free(cfg->gluetun_ca_file);
    memset(cfg, 0, sizeof *cfg);
}

void config_print(const struct config *cfg, FILE *out)
{
    fprintf(out, "QBIT_ADDR=%s%s\n", cfg->qbit.origin, cfg->qbit.prefix);
    if (cfg->qbit.https) {
        fprintf(out, "QBIT_CA_FILE=%s\n",
                cfg->qbit_ca_file ? cfg->qbit_ca_file : "(the system's CA certificates)");
        fprintf(out, "QBIT_TLS_INSECURE=%s\n",
                cfg->qbit_tls_insecure ? "true (the certificate is not checked)" : "false");
    }
    fprintf(out, "QBIT_USER=%s\n", cfg->qbit_user ? cfg->qbit_user : "");
    fprintf(out, "QBIT_PASS=%s\n", cfg->qbit_pass ? "******** (set)" : "");
    fprintf(out, "QBIT_API_KEY=%s\n", cfg->qbit_api_key ? "******** (set)" : "");
    fprintf(out, "PORT_FILE=%s\n", cfg->port_file);
    if (cfg->have_gluetun) {
        fprintf(out, "GLUETUN_CONTROL_URL=%s%s (asked while PORT_FILE does not exist)\n", cfg->gluetun.origin,
                cfg->gluetun.prefix);
        fprintf(out, "GLUETUN_AUTH=%s\n",
                cfg->gluetun_api_key ? "API key (set)"
                : cfg->gluetun_user  ? "basic, user and password (set)"
                                     : "none");
        if (cfg->gluetun.https)
            fprintf(out, "GLUETUN_CA_FILE=%s\n",
                    cfg->gluetun_ca_file ? cfg->gluetun_ca_file : "(the system's CA certificates)");
        fprintf(out, "GLUETUN_POLL_INTERVAL=%u\n", cfg->gluetun_poll_ms / 1000);
    } else {
        fprintf(out, "GLUETUN_CONTROL_URL=(unset: the port file only)\n");
    }
    fprintf(out, "LISTEN_ADDR=%s\n", cfg->listen_addr ? cfg->listen_addr : "(all interfaces, IPv4 and IPv6)");
    fprintf(out, "LISTEN_PORT=%u\n", cfg->listen_port);
    fprintf(out, "TLS_CERT_FILE=%s\n", cfg->tls_cert_file ? cfg->tls_cert_file : "(unset: plain HTTP)");
    fprintf(out, "TLS_KEY_FILE=%s\n", cfg->tls_key_file ? cfg->tls_key_file : "");
    fprintf(out, "ALLOWED_IPS=");
    size_t count = allowlist_count(cfg->allowed);
    for (size_t i = 0; i < count; i++) {
        char buf[INET6_ADDRSTRLEN + 8];
        fprintf(out, "%s%s", i ? "," : "", allowlist_entry_format(cfg->allowed, i, buf, sizeof buf));
    }
    fprintf(out, "%s\n", count ? "" : "(empty: every client is denied)");
    fprintf(out, "ALLOWED_HOSTS=%s\n",
            hostcheck_has_own_list(cfg->hosts) ? cfg->allowed_hosts_text
                                               : "(empty: qBittorrent's own list decides)");
    fprintf(out, "LOG_LEVEL=%s\n", log_level_name(cfg->log_level));
    fprintf(out, "HEADER_TIMEOUT=%u\n", cfg->header_timeout_ms / 1000);
    fprintf(out, "IDLE_TIMEOUT=%u\n", cfg->idle_timeout_ms / 1000);
    fprintf(out, "SHUTDOWN_TIMEOUT=%u\n", cfg->shutdown_timeout_ms / 1000);
    fprintf(out, "MAX_HEADER_SIZE=%zu\n", cfg->max_header_size);
    fprintf(out, "MAX_CONNECTIONS=%u\n", cfg->max_connections);
    fprintf(out, "UPSTREAM_CONNECT_TIMEOUT=%u\n", cfg->upstream_connect_timeout_ms / 1000);
    fprintf(out, "UPSTREAM_TIMEOUT=%u\n", cfg->upstream_timeout_ms / 1000);
    fprintf(out, "UPSTREAM_MAX_CONNECTIONS=%u\n", cfg->upstream_max_connections);
    fprintf(out, "UPSTREAM_MAX_QUEUE=%u\n", cfg->upstream_max_queue);
    fprintf(out, "MAX_BUFFERED_BODY=%zu\n", cfg->max_buffered_body);
    fprintf(out, "RESYNC_INTERVAL=%u\n", cfg->resync_interval_ms / 1000);
    fprintf(out, "REBIND_ON_RECONNECT=%s\n", cfg->rebind_on_reconnect ? "true" : "false");
    fprintf(out, "REANNOUNCE_ON_CHANGE=%s\n", cfg->reannounce_on_change ? "true" : "false");
    fprintf(out, "QBIT_TRUST_PROXY=%s\n", cfg->trust_proxy ? "true" : "false");
    fprintf(out, "LOG_FORMAT=%s\n", cfg->log_json ? "json" : "text");
    fprintf(out, "ACCESS_LOG=%s\n", cfg->access_log ? "true" : "false");
}
