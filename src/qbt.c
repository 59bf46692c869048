/* qbt.c - login, read and set listen_port, over the shared upstream client. */
#include "qbt.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "apicall.h"
#include "buf.h"
#include "log.h"

#define RESPONSE_LIMIT (4 * 1024 * 1024)
#define COOKIE_MAX 512

enum step { STEP_LOGIN, STEP_GET, STEP_SET, STEP_REANNOUNCE };

struct qbt {
    struct upstream *up;
    const struct config *cfg;
    char cookie[COOKIE_MAX]; /* "SID=..." once logged in */
    /* The call in flight: one or two steps (a login first), each an apicall. */
    bool busy, relogged;
    uint64_t deadline; /* the call must be over by this loop time (UPSTREAM_TIMEOUT from its start) */
    enum step op;      /* what the caller asked for */
    enum step step;    /* what is on the wire */
    uint16_t set_port;
    char *set_json;         /* the JSON for setPreferences, owned; NULL for set_port */
    struct qbt_prefs prefs; /* from the last successful read */
    char local_addr[64];
    qbt_cb cb;
    void *ctx;
    struct apicall call;
    struct buf req;
    char new_cookie[COOKIE_MAX];
    bool saw_cookie; /* the answer set a cookie, usable or not */
};

static const struct apicall_ops ops;

const char *qbt_result_name(enum qbt_result result)
{
    static const char *const names[] = {"ok",          "unreachable", "timeout",
                                        "auth_failed", "banned",      "bad_response"};
    return names[result];
}

int qbt_session_cookie(const char *set_cookie, size_t len, char *out, size_t outlen)
{
    size_t end = 0;
    while (end < len && set_cookie[end] != ';')
        end++;
    size_t start = 0;
    while (start < end && (set_cookie[start] == ' ' || set_cookie[start] == '\t'))
        start++;
    while (end > start && (set_cookie[end - 1] == ' ' || set_cookie[end - 1] == '\t'))
        end--;
    const char *eq = memchr(set_cookie + start, '=', end - start);
    if (!eq || eq == set_cookie + start || end - start + 1 > outlen)
        return -1;
    for (size_t i = start; i < end; i++) {
        unsigned char c = (unsigned char)set_cookie[i];
        if (c < 0x21 || c == 0x7f || c == ',' || c == '"' || c == '\\')
            return -1; /* not a cookie-pair we could send back as is */
    }
    memcpy(out, set_cookie + start, end - start);
    out[end - start] = '\0';
    return 0;
}

enum qbt_result qbt_login_result(int status, const char *body, size_t len)
{
    if (status == 204)
        return QBT_OK;
    if (status == 200) {
        if (len >= 3 && strncmp(body, "Ok.", 3) == 0)
            return QBT_OK;
        if (len >= 6 && strncmp(body, "Fails.", 6) == 0)
            return QBT_AUTH_FAILED;
        return QBT_BAD_RESPONSE;
    }
    if (status == 401)
        return QBT_AUTH_FAILED;
    if (status == 403)
        return QBT_BANNED;
    return QBT_BAD_RESPONSE;
}

/* Reads a boolean preference and the list it goes with; returns 1 when both are there and the list fits. */
static int switch_and_list(json_t *root, const char *switch_key, int *on, const char *list_key, char *list,
                           size_t size)
{
    json_t *flag = json_object_get(root, switch_key), *text = json_object_get(root, list_key);
    if (!json_is_boolean(flag) || !json_is_string(text) || json_string_length(text) >= size)
        return 0;
    *on = json_is_true(flag);
    snprintf(list, size, "%s", json_string_value(text));
    return 1;
}

int qbt_parse_prefs(const char *json, size_t len, struct qbt_prefs *out)
{
    json_error_t error;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &error);
    int rc = -1;
    if (!root)
        return -1;
    memset(out, 0, sizeof *out);
    json_t *v = json_is_object(root) ? json_object_get(root, "listen_port") : NULL;
    if (v && json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) <= 65535) {
        out->listen_port = (int)json_integer_value(v);
        rc = 0;
    }
    out->has_proxy_settings =
        switch_and_list(root, "web_ui_reverse_proxy_enabled", &out->reverse_proxy_enabled,
                        "web_ui_reverse_proxies_list", out->proxies_list, sizeof out->proxies_list);
    out->bypass_local_auth = json_is_true(json_object_get(root, "bypass_local_auth"));
    out->has_host_settings =
        switch_and_list(root, "web_ui_host_header_validation_enabled", &out->host_validation,
                        "web_ui_domain_list", out->domain_list, sizeof out->domain_list);
    json_decref(root);
    return rc;
}

int qbt_parse_listen_port(const char *json, size_t len, int *port)
{
    struct qbt_prefs prefs;
    if (qbt_parse_prefs(json, len, &prefs) != 0)
        return -1;
    *port = prefs.listen_port;
    return 0;
}

int qbt_new(struct upstream *up, const struct config *cfg, struct qbt **out)
{
    struct qbt *q = calloc(1, sizeof *q);
    if (!q)
        return UV_ENOMEM;
    q->up = up;
    q->cfg = cfg;
    buf_init(&q->req, 64 * 1024);
    apicall_init(&q->call, up, RESPONSE_LIMIT, &ops, q);
    *out = q;
    return 0;
}

void qbt_cancel(struct qbt *q)
{
    apicall_abort(&q->call);
    q->busy = false;
}

void qbt_free(struct qbt *q)
{
    if (!q)
        return;
    qbt_cancel(q);
    buf_free(&q->req);
    apicall_free(&q->call);
    free(q->set_json);
    explicit_bzero(q->cookie, sizeof q->cookie);
    free(q);
}

/* Appends s form-urlencoded (RFC 3986 unreserved bytes kept, the rest %XX). */
static int put_form_value(struct buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    int rc = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p && rc == 0; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' ||
            *p == '.' || *p == '_' || *p == '~') {
            rc = buf_append(b, p, 1);
        } else {
            char enc[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            rc = buf_append(b, enc, 3);
        }
    }
    return rc;
}

/* Builds the request for the current step into q->req. */
static int build_request(struct qbt *q)
{
    struct buf body;
    buf_init(&body, 8192);
    const char *method = "GET", *path = "/api/v2/app/preferences";
    int rc = 0;
    if (q->step == STEP_LOGIN) {
        method = "POST";
        path = "/api/v2/auth/login";
        rc = buf_puts(&body, "username=");
        if (rc == 0)
            rc = put_form_value(&body, q->cfg->qbit_user);
        if (rc == 0)
            rc = buf_puts(&body, "&password=");
        if (rc == 0)
            rc = put_form_value(&body, q->cfg->qbit_pass);
    } else if (q->step == STEP_REANNOUNCE) {
        method = "POST";
        path = "/api/v2/torrents/reannounce";
        rc = buf_puts(&body, "hashes=all");
    } else if (q->step == STEP_SET) {
        method = "POST";
        path = "/api/v2/app/setPreferences";
        if (q->set_json) {
            rc = buf_puts(&body, "json=");
            if (rc == 0)
                rc = put_form_value(&body, q->set_json);
        } else {
            /* json={"listen_port":N}, form-encoded; N is a validated integer, never anything else. */
            rc = buf_printf(&body, "json=%%7B%%22listen_port%%22%%3A%u%%7D", q->set_port);
        }
    }
    buf_reset(&q->req);
    if (rc == 0)
        rc = buf_printf(&q->req, "%s %s%s HTTP/1.1\r\nHost: %s\r\nUser-Agent: qbit-gluetun-sync/%s\r\n",
                        method, q->cfg->qbit.prefix, path, q->cfg->qbit.authority, QGS_VERSION);
    if (rc == 0 && q->cfg->qbit_api_key)
        rc = buf_printf(&q->req, "Authorization: Bearer %s\r\n", q->cfg->qbit_api_key);
    else if (rc == 0 && q->cookie[0] && q->step != STEP_LOGIN)
        rc = buf_printf(&q->req, "Cookie: %s\r\n", q->cookie);
    if (rc == 0 && body.len > 0)
        rc = buf_printf(&q->req, "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %zu\r\n",
                        body.len);
    if (rc == 0)
        rc = buf_puts(&q->req, "Connection: keep-alive\r\n\r\n");
    if (rc == 0)
        rc = buf_append(&q->req, body.data, body.len);
    if (body.data)
        explicit_bzero(body.data, body.len); /* it may hold the password */
    buf_free(&body);
    return rc;
}

static void finish(struct qbt *q, enum qbt_result result, int port, const char *detail);

/* Puts the step on a connection; returns 0, or UV_ENOMEM with nothing started. */
static int send_step(struct qbt *q, enum step step)
{
    q->step = step;
    /* Priority: the reconciler never waits behind proxied WebUI traffic for a connection. Every step
     * within the call's one deadline (UPSTREAM_TIMEOUT), so that a trickling answer cannot hold the
     * reconciler (and /sync) for as long as it trickles. Reading and setting a port can be repeated;
     * a login cannot: a wrong password would count twice. */
    return apicall_start(&q->call, UPSTREAM_PRIORITY, step != STEP_LOGIN, q->deadline);
}

/* The next step of a call in progress; a failure to start it ends the call. */
static void next_step(struct qbt *q, enum step step)
{
    if (send_step(q, step) != 0)
        finish(q, QBT_UNREACHABLE, -1, "out of memory for a qBittorrent API call");
}

static bool needs_login(const struct qbt *q)
{
    return q->cfg->qbit_user && !q->cfg->qbit_api_key;
}

static int start(struct qbt *q, enum step op, qbt_cb cb, void *ctx)
{
    if (q->busy)
        return UV_EBUSY;
    q->busy = true;
    q->relogged = false;
    q->op = op;
    q->cb = cb;
    q->ctx = ctx;
    q->deadline = upstream_now(q->up) + q->cfg->upstream_timeout_ms;
    int rc = send_step(q, needs_login(q) && !q->cookie[0] ? STEP_LOGIN : op);
    if (rc != 0)
        q->busy = false;
    return rc;
}

int qbt_get_port(struct qbt *q, qbt_cb cb, void *ctx)
{
    return start(q, STEP_GET, cb, ctx);
}

int qbt_set_port(struct qbt *q, uint16_t port, qbt_cb cb, void *ctx)
{
    if (port == 0)
        return UV_EINVAL;
    if (q->busy)
        return UV_EBUSY;
    free(q->set_json);
    q->set_json = NULL;
    q->set_port = port;
    return start(q, STEP_SET, cb, ctx);
}

int qbt_reannounce(struct qbt *q, qbt_cb cb, void *ctx)
{
    return start(q, STEP_REANNOUNCE, cb, ctx);
}

int qbt_set_trusted_proxies(struct qbt *q, const char *list, qbt_cb cb, void *ctx)
{
    if (q->busy)
        return UV_EBUSY;
    /* Built by hand, not with json_pack: that one call linked 10 KiB of jansson's pack/unpack,
     * all of it resident (see the README's memory figures). */
    json_t *o = json_object();
    if (o && (json_object_set_new(o, "web_ui_reverse_proxy_enabled", json_true()) ||
              json_object_set_new(o, "web_ui_reverse_proxies_list", json_string(list)))) {
        json_decref(o);
        o = NULL;
    }
    free(q->set_json);
    q->set_json = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!q->set_json)
        return UV_ENOMEM;
    q->set_port = 0;
    return start(q, STEP_SET, cb, ctx);
}

const struct qbt_prefs *qbt_prefs(const struct qbt *q)
{
    return &q->prefs;
}

const char *qbt_local_addr(const struct qbt *q)
{
    return q->local_addr;
}

static void finish(struct qbt *q, enum qbt_result result, int port, const char *detail)
{
    if (!q->busy)
        return;
    q->busy = false;
    q->cb(q->ctx, result, port, detail);
}

/* ---- upstream events ---- */

/* Every attempt of a step, a retry included: the request as it must be now. */
static int write_request(void *ctx, struct upstream_conn *c)
{
    struct qbt *q = ctx;
    q->new_cookie[0] = '\0';
    q->saw_cookie = false;
    if (upstream_conn_local_addr(c, q->local_addr, sizeof q->local_addr) != 0)
        q->local_addr[0] = '\0';
    int rc = build_request(q);
    if (rc == 0)
        rc = upstream_conn_write(c, q->req.data, q->req.len);
    if (q->req.data)
        explicit_bzero(q->req.data, q->req.len);
    return rc;
}

static void on_head(void *ctx, const struct upstream_response *r)
{
    struct qbt *q = ctx;
    const struct http_head *head = r->head;
    /* The session cookie is the one qBittorrent sets at login, whatever it is called. */
    for (unsigned i = 0; i < head->count && !q->new_cookie[0]; i++) {
        if (http_header_is(head, i, "set-cookie")) {
            q->saw_cookie = true;
            qbt_session_cookie(http_header_value(head, i), head->headers[i].value_len, q->new_cookie,
                               sizeof q->new_cookie);
        }
    }
}

static void on_answer(void *ctx, int status, const char *body, size_t len)
{
    struct qbt *q = ctx;
    char msg[512];

    if (q->step == STEP_LOGIN) {
        enum qbt_result r = qbt_login_result(status, body, len);
        if (r == QBT_OK && !q->new_cookie[0]) {
            snprintf(msg, sizeof msg,
                     q->saw_cookie
                         ? "qBittorrent accepted the login, but its session cookie cannot be sent back "
                           "(longer than %d bytes, or with a blank, control byte or quote in it)"
                         : "qBittorrent accepted the login (HTTP %d) but set no session cookie",
                     q->saw_cookie ? COOKIE_MAX - 1 : status);
            finish(q, QBT_BAD_RESPONSE, -1, msg);
            return;
        }
        if (r != QBT_OK) {
            if (r == QBT_AUTH_FAILED)
                snprintf(msg, sizeof msg,
                         "qBittorrent refused the login of user \"%s\": wrong QBIT_USER or QBIT_PASS",
                         q->cfg->qbit_user);
            else if (r == QBT_BANNED)
                snprintf(msg, sizeof msg,
                         "qBittorrent has banned this address after failed logins (HTTP 403); "
                         "it lifts the ban after its ban time (1 hour by default)");
            else
                snprintf(msg, sizeof msg, "unexpected answer to the login: HTTP %d", status);
            finish(q, r, -1, msg);
            return;
        }
        snprintf(q->cookie, sizeof q->cookie, "%s", q->new_cookie);
        log_info("logged in to qBittorrent as \"%s\"", q->cfg->qbit_user);
        next_step(q, q->op);
        return;
    }

    if (status == 403 || status == 401) {
        /* The session expired (qBittorrent restarted): log in again, once per call. */
        if (needs_login(q) && !q->relogged) {
            q->relogged = true;
            q->cookie[0] = '\0';
            next_step(q, STEP_LOGIN);
            return;
        }
        if (q->cfg->qbit_api_key)
            snprintf(msg, sizeof msg, "qBittorrent refused the API key (HTTP %d): check QBIT_API_KEY",
                     status);
        else if (needs_login(q))
            snprintf(msg, sizeof msg, "qBittorrent refused the session right after a login (HTTP %d)",
                     status);
        else
            snprintf(msg, sizeof msg,
                     "qBittorrent requires a login (HTTP %d): set QBIT_USER and QBIT_PASS (or QBIT_API_KEY), "
                     "or enable \"Bypass authentication for clients on localhost\"",
                     status);
        finish(q, QBT_AUTH_FAILED, -1, msg);
        return;
    }
    if (status < 200 || status > 299) {
        snprintf(msg, sizeof msg, "unexpected answer from qBittorrent: HTTP %d", status);
        finish(q, QBT_BAD_RESPONSE, -1, msg);
        return;
    }
    if (q->step == STEP_SET) {
        finish(q, QBT_OK, q->set_json ? -1 : q->set_port, NULL);
        return;
    }
    if (q->step == STEP_REANNOUNCE) {
        finish(q, QBT_OK, -1, NULL);
        return;
    }
    if (qbt_parse_prefs(body, len, &q->prefs) != 0) {
        finish(q, QBT_BAD_RESPONSE, -1, "qBittorrent's preferences have no valid listen_port");
        return;
    }
    finish(q, QBT_OK, q->prefs.listen_port, NULL);
}

static void on_failure(void *ctx, const struct apicall_failure *f)
{
    struct qbt *q = ctx;
    const char *at = q->cfg->qbit.authority;
    char msg[512];
    enum qbt_result result = f->err == UV_ETIMEDOUT ? QBT_TIMEOUT : QBT_UNREACHABLE;
    switch (f->stage) {
    case APICALL_CONNECT:
        snprintf(msg, sizeof msg, "cannot connect to qBittorrent at %s: %s", at, f->reason);
        break;
    case APICALL_SEND:
        snprintf(msg, sizeof msg, "cannot send a request to qBittorrent at %s: %s", at, f->reason);
        break;
    case APICALL_TOO_LARGE:
        snprintf(msg, sizeof msg, "qBittorrent's answer is larger than %d MiB", RESPONSE_LIMIT >> 20);
        result = QBT_BAD_RESPONSE;
        break;
    case APICALL_NO_MEMORY:
        snprintf(msg, sizeof msg, "out of memory for a qBittorrent API call");
        break;
    case APICALL_EXCHANGE:
    default:
        if (f->err == UV_ETIMEDOUT)
            /* The connection was made; the answer did not come (or not all of it) in time. */
            snprintf(msg, sizeof msg, "qBittorrent at %s did not answer within %u s (UPSTREAM_TIMEOUT)", at,
                     q->cfg->upstream_timeout_ms / 1000);
        else if (f->err == UV_EPROTO)
            snprintf(msg, sizeof msg, "qBittorrent at %s sent %s", at, f->reason);
        else
            snprintf(msg, sizeof msg, "qBittorrent at %s: %s", at, f->reason);
        break;
    }
    finish(q, result, -1, msg);
}

static const struct apicall_ops ops = {
    .write_request = write_request,
    .on_head = on_head,
    .on_answer = on_answer,
    .on_failure = on_failure,
};
