/*
 * qbt.h - the qBittorrent WebUI API calls the port sync needs, carried by the
 * upstream client: log in (when credentials are set), read listen_port, set
 * it, re-announce the torrents. The session cookie is kept whatever its name (SID up to 5.1,
 * QBT_SID_<port> from 5.2) and a 403 triggers one fresh login. One call at a
 * time; its callback runs from the loop, never inside the call.
 */
#ifndef QGS_QBT_H
#define QGS_QBT_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "upstream.h"

enum qbt_result {
    QBT_OK,
    QBT_UNREACHABLE,  /* no connection, or it broke */
    QBT_TIMEOUT,      /* no answer in time */
    QBT_AUTH_FAILED,  /* wrong credentials or API key, or a login is needed and none is configured */
    QBT_BANNED,       /* qBittorrent banned our address after failed logins */
    QBT_BAD_RESPONSE, /* an answer we cannot use */
};

struct qbt;

/* Creates the client; cfg and up must outlive it. Returns 0 or UV_ENOMEM. */
int qbt_new(struct upstream *up, const struct config *cfg, struct qbt **out);

/* Frees the client (a call in flight is aborted without its callback); NULL is a no-op. */
void qbt_free(struct qbt *q);

/* With port >= 0 the result of a read, else -1; detail explains a failure. */
typedef void (*qbt_cb)(void *ctx, enum qbt_result result, int port, const char *detail);

/* Reads qBittorrent's listen_port. Returns 0, UV_EBUSY while another call runs, or UV_ENOMEM. */
int qbt_get_port(struct qbt *q, qbt_cb cb, void *ctx);

/* Sets listen_port (1..65535 only). Returns 0, UV_EINVAL, UV_EBUSY or UV_ENOMEM. */
int qbt_set_port(struct qbt *q, uint16_t port, qbt_cb cb, void *ctx);

/* Asks qBittorrent to announce every torrent to its trackers now (after a port change). Returns 0,
 * UV_EBUSY or UV_ENOMEM. */
int qbt_reannounce(struct qbt *q, qbt_cb cb, void *ctx);

/* The preferences besides listen_port that the sidecar looks at. */
struct qbt_prefs {
    int listen_port;
    int has_proxy_settings;    /* the two reverse-proxy preferences were present */
    int reverse_proxy_enabled; /* web_ui_reverse_proxy_enabled */
    char proxies_list[1024];   /* web_ui_reverse_proxies_list */
    int bypass_local_auth;     /* bypass_local_auth */
    int has_host_settings;     /* the two Host-validation preferences were present (and the list fits) */
    int host_validation;       /* web_ui_host_header_validation_enabled */
    char domain_list[2048];    /* web_ui_domain_list */
};

/* The preferences from the last successful qbt_get_port. */
const struct qbt_prefs *qbt_prefs(const struct qbt *q);

/* The sidecar's own address as qBittorrent sees it ("127.0.0.1"), from the last call's connection; "" if
 * unknown. */
const char *qbt_local_addr(const struct qbt *q);

/* Makes qBittorrent trust proxy_addr: turns reverse-proxy support on and sets the trusted list to list.
 * Returns 0, UV_EBUSY or UV_ENOMEM. */
int qbt_set_trusted_proxies(struct qbt *q, const char *list, qbt_cb cb, void *ctx);

/* Aborts the call in flight, if any; its callback does not run. */
void qbt_cancel(struct qbt *q);

/* Returns a short name for a result ("unreachable"). */
const char *qbt_result_name(enum qbt_result result);

/* ---- pure helpers, exposed for tests ---- */

/* Copies "name=value" of a Set-Cookie value into out; returns 0, or -1 when there is none or it does not fit.
 */
int qbt_session_cookie(const char *set_cookie, size_t len, char *out, size_t outlen);

/* Classifies a login answer: 200 "Ok." or 204 is QBT_OK; 200 "Fails." or 401 is QBT_AUTH_FAILED; 403
 * QBT_BANNED. */
enum qbt_result qbt_login_result(int status, const char *body, size_t len);

/* Finds listen_port in a preferences JSON object; returns 0 and the port, or -1. */
int qbt_parse_listen_port(const char *json, size_t len, int *port);

/* Reads the preferences the sidecar uses from a JSON object; returns 0, or -1 without a valid listen_port. */
int qbt_parse_prefs(const char *json, size_t len, struct qbt_prefs *out);

#endif
