/*
 * fuzz_response.c - what qBittorrent answers, through the daemon's handling:
 * the API helpers (qbt_parse_prefs and qbt_parse_listen_port on preferences JSON,
 * qbt_login_result, qbt_session_cookie on Set-Cookie values) and the proxy's
 * rewrite_response_head on a head captured from the input by an llhttp
 * HTTP_RESPONSE parser with upstream.c's callbacks.
 *
 * The helpers run on the whole input, and on the status, body and Set-Cookie
 * values of the parsed response, as qbt.c would. Invariants: a listen_port is
 * 0..65535 and what jansson reads; a login result is one of the enum values and
 * follows the documented table; a session cookie is one NUL-terminated
 * name=value pair with no byte that could not be sent back in a Cookie header,
 * cut from the value before its first ';', never written past outlen.
 *
 * The capture is upstream.c's, callback for callback, with its checks from
 * src/http.c (control bytes in the reason, statuses outside 100..599, empty
 * names); keep the callbacks in step with upstream.c's.
 *
 * Each rewritten response head (for the framings proxy.c chooses, per variant
 * of the request) must be, by an RFC 9112 reading independent of llhttp, a
 * status line with a three-digit code 100..599 and "token: value" lines
 * without control bytes, and must parse back as exactly one response head with
 * the same status, one Connection header, no hop-by-hop header (Upgrade only
 * for a 101 tunnel), and the framing headers proxy.c meant.
 */
#include <jansson.h>
#include <llhttp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "fuzz.h"
#include "http.h"
#include "qbt.h"
#include "rewrite.h"

#define HEAD_LIMIT (64 * 1024)

/* ---- the API helpers ---- */

static void check_cookie(const char *v, size_t len)
{
    char out[600];
    size_t outlens[] = {sizeof out - 88, 1 + len % 40, 1 + len};
    for (size_t k = 0; k < sizeof outlens / sizeof outlens[0]; k++) {
        size_t outlen = outlens[k] < sizeof out - 88 ? outlens[k] : sizeof out - 88;
        memset(out, 'Z', sizeof out);
        if (qbt_session_cookie(v, len, out, outlen) != 0) {
            for (size_t j = outlen; j < sizeof out; j++)
                FUZZ_CHECK(out[j] == 'Z', "qbt_session_cookie wrote past outlen on failure");
            continue;
        }
        for (size_t j = outlen; j < sizeof out; j++)
            FUZZ_CHECK(out[j] == 'Z', "qbt_session_cookie wrote past outlen %zu", outlen);
        const char *nul = memchr(out, '\0', outlen);
        FUZZ_CHECK(nul != NULL, "cookie not NUL-terminated within %zu", outlen);
        size_t clen = (size_t)(nul - out);
        const char *eq = memchr(out, '=', clen);
        FUZZ_CHECK(eq && eq > out, "cookie \"%s\" is not name=value", out);
        for (size_t j = 0; j < clen; j++) {
            unsigned char ch = (unsigned char)out[j];
            FUZZ_CHECK(ch > 0x20 && ch != 0x7f && ch != ';' && ch != ',' && ch != '"' && ch != '\\',
                       "cookie \"%s\" has byte 0x%02x", out, ch);
        }
        /* It is the value's first element, trimmed. */
        size_t s = 0;
        while (s < len && (v[s] == ' ' || v[s] == '\t'))
            s++;
        FUZZ_CHECK(clen <= len - s && memcmp(out, v + s, clen) == 0,
                   "cookie \"%s\" is not cut from the value", out);
        size_t e = s + clen;
        while (e < len && (v[e] == ' ' || v[e] == '\t'))
            e++;
        FUZZ_CHECK(e == len || v[e] == ';', "cookie \"%s\" does not end at ';'", out);
    }
}

static void check_login(int status, const char *body, size_t len)
{
    enum qbt_result r = qbt_login_result(status, body, len);
    FUZZ_CHECK(r >= QBT_OK && r <= QBT_BAD_RESPONSE, "login result %d", (int)r);
    FUZZ_CHECK(strlen(qbt_result_name(r)) > 0, "no name for result %d", (int)r);
    enum qbt_result want = QBT_BAD_RESPONSE;
    if (status == 204 || (status == 200 && len >= 3 && memcmp(body, "Ok.", 3) == 0))
        want = QBT_OK;
    else if (status == 401 || (status == 200 && len >= 6 && memcmp(body, "Fails.", 6) == 0))
        want = QBT_AUTH_FAILED;
    else if (status == 403)
        want = QBT_BANNED;
    FUZZ_CHECK(r == want, "login %d \"%.*s\" gave %s, want %s", status, (int)(len > 20 ? 20 : len), body,
               qbt_result_name(r), qbt_result_name(want));
}

static void check_prefs(const char *json, size_t len)
{
    struct qbt_prefs prefs;
    memset(&prefs, 'Z', sizeof prefs);
    int prc = qbt_parse_prefs(json, len, &prefs);
    int port = -1;
    int rc = qbt_parse_listen_port(json, len, &port);
    FUZZ_CHECK((rc == 0) == (prc == 0), "qbt_parse_listen_port and qbt_parse_prefs disagree");
    json_error_t e;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &e);
    if (prc == 0 || (root && json_is_object(root))) {
        /* Whatever was read is well-formed, also when listen_port was missing. */
        FUZZ_CHECK(memchr(prefs.proxies_list, '\0', sizeof prefs.proxies_list) != NULL,
                   "proxies_list not NUL-terminated");
        FUZZ_CHECK(prefs.has_proxy_settings == 0 || prefs.has_proxy_settings == 1, "has_proxy_settings");
        FUZZ_CHECK(prefs.reverse_proxy_enabled == 0 || prefs.reverse_proxy_enabled == 1,
                   "reverse_proxy_enabled");
        FUZZ_CHECK(prefs.bypass_local_auth == 0 || prefs.bypass_local_auth == 1, "bypass_local_auth");
    }
    if (rc != 0) {
        json_decref(root);
        return;
    }
    FUZZ_CHECK(port >= 0 && port <= 65535, "listen_port %d", port);
    FUZZ_CHECK(prefs.listen_port == port, "listen_port differs between the two helpers");
    FUZZ_CHECK(root && json_is_object(root), "accepted JSON that jansson refuses");
    json_t *v = json_object_get(root, "listen_port");
    FUZZ_CHECK(v && json_is_integer(v) && json_integer_value(v) == port, "listen_port differs");
    json_t *list = json_object_get(root, "web_ui_reverse_proxies_list");
    if (prefs.has_proxy_settings) {
        FUZZ_CHECK(json_is_string(list) &&
                       strncmp(prefs.proxies_list, json_string_value(list), sizeof prefs.proxies_list) == 0,
                   "proxies_list is not the preference's value");
        FUZZ_CHECK(prefs.reverse_proxy_enabled ==
                       json_is_true(json_object_get(root, "web_ui_reverse_proxy_enabled")),
                   "reverse_proxy_enabled differs");
    }
    FUZZ_CHECK(prefs.bypass_local_auth == json_is_true(json_object_get(root, "bypass_local_auth")),
               "bypass_local_auth differs");
    json_decref(root);
}

/* ---- the response head, captured as upstream.c does ---- */

struct upstream_side {
    struct http_head head;
    struct fuzz_msg raw;
    struct buf body;
    int status;
    bool head_done, interim, complete;
    unsigned heads;
};

static int on_message_begin(llhttp_t *p)
{
    struct upstream_side *u = p->data;
    http_head_reset(&u->head);
    fuzz_msg_reset(&u->raw);
    return 0;
}

static int on_status(llhttp_t *p, const char *at, size_t len)
{
    struct upstream_side *u = p->data;
    if (http_reason_problem(at, len))
        return HPE_USER;
    fuzz_msg_url(&u->raw, at, len);
    return http_head_add_url(&u->head, at, len) == 0 ? 0 : HPE_USER;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    struct upstream_side *u = p->data;
    fuzz_msg_field(&u->raw, at, len);
    return http_head_add_field(&u->head, at, len) == 0 ? 0 : HPE_USER;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    struct upstream_side *u = p->data;
    fuzz_msg_value(&u->raw, at, len);
    return http_head_add_value(&u->head, at, len) == 0 ? 0 : HPE_USER;
}

static int on_header_value_complete(llhttp_t *p)
{
    struct upstream_side *u = p->data;
    fuzz_msg_value_complete(&u->raw);
    return 0;
}

static void check_rewrite(const struct upstream_side *u, const llhttp_t *parser, unsigned variant);

static int on_headers_complete(llhttp_t *p)
{
    struct upstream_side *u = p->data;
    int status = p->status_code;
    if (http_response_problem(&u->head, status))
        return HPE_USER;
    if (status >= 100 && status < 200 && status != 101) {
        u->interim = true;
        return 0;
    }
    u->interim = false;
    u->head_done = true;
    u->status = status;

    FUZZ_CHECK(u->head.count == u->raw.count, "http_head has %u headers, llhttp reported %u", u->head.count,
               u->raw.count);
    for (unsigned i = 0; i < u->head.count; i++) {
        FUZZ_CHECK(u->head.headers[i].name_len == u->raw.fields[i].name_len &&
                       u->head.headers[i].value_len == u->raw.fields[i].value_len,
                   "header %u differs from llhttp's", i);
        if (http_header_is(&u->head, i, "set-cookie"))
            check_cookie(http_header_value(&u->head, i), u->head.headers[i].value_len);
    }
    for (unsigned variant = 0; variant < 8; variant++)
        check_rewrite(u, p, variant);
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    struct upstream_side *u = p->data;
    if (!u->interim)
        buf_append(&u->body, at, len);
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    struct upstream_side *u = p->data;
    if (u->interim)
        return 0;
    u->complete = true;
    return HPE_PAUSED;
}

/* ---- the rewritten head ---- */

static struct fuzz_msg reparsed;

/* proxy.c's on_head for one combination of request properties (HEAD, HTTP/1.1 client, Upgrade). */
static void check_rewrite(const struct upstream_side *u, const llhttp_t *parser, unsigned variant)
{
    bool head_request = variant & 1, client_http11 = variant & 2, upgrade = variant & 4;
    int status = u->status;
    struct rewrite_response r = {.status = status};
    if (status == 101 && upgrade) {
        r.upgrade = 1;
        r.framing = FRAMING_NONE;
    } else if (head_request || status == 204 || status == 304 || status < 200) {
        r.framing = FRAMING_NONE;
    } else if ((parser->flags & F_CONTENT_LENGTH) && !(parser->flags & F_CHUNKED)) {
        r.framing = FRAMING_LENGTH;
        r.content_length = parser->content_length;
    } else {
        r.framing = client_http11 ? FRAMING_CHUNKED : FRAMING_CLOSE;
    }
    r.keep_alive = r.framing != FRAMING_CLOSE && !upgrade;

    struct buf ob;
    buf_init(&ob, HEAD_LIMIT * 2);
    int rc = rewrite_response_head(&ob, &u->head, &r);
    FUZZ_CHECK(rc == 0, "rewrite_response_head failed: %d", rc);
    const char *out = ob.data;
    size_t len = ob.len;

    llhttp_t p;
    struct fuzz_msg *m = &reparsed;
    enum llhttp_errno err = fuzz_reparse(&p, m, 1, out, len);
    FUZZ_HEAD_CHECK(err == HPE_PAUSED && m->heads == 1,
                    "the rewritten head does not parse as a response head");
    FUZZ_HEAD_CHECK(llhttp_get_error_pos(&p) == out + len, "bytes after the rewritten head");
    FUZZ_HEAD_CHECK(p.http_major == 1 && p.http_minor == 1, "not HTTP/1.1");
    FUZZ_HEAD_CHECK(p.status_code == status, "status changed");
    FUZZ_HEAD_CHECK(len >= 13 && out[12] == ' ' && out[9] >= '1' && out[9] <= '5' && out[10] >= '0' &&
                        out[10] <= '9' && out[11] >= '0' && out[11] <= '9',
                    "the status line's code is not three digits 100..599");

    unsigned i = 0;
    const char *conn = r.upgrade                                      ? "Upgrade"
                       : (r.keep_alive && r.framing != FRAMING_CLOSE) ? "keep-alive"
                                                                      : "close";
    FUZZ_HEAD_CHECK(fuzz_msg_count(m, "connection", &i) == 1 && fuzz_value_is(m, i, conn), "Connection");
    FUZZ_HEAD_CHECK(fuzz_msg_count(m, "keep-alive", NULL) == 0 &&
                        fuzz_msg_count(m, "proxy-connection", NULL) == 0 &&
                        fuzz_msg_count(m, "proxy-authenticate", NULL) == 0 &&
                        fuzz_msg_count(m, "proxy-authorization", NULL) == 0 &&
                        fuzz_msg_count(m, "te", NULL) == 0 && fuzz_msg_count(m, "trailer", NULL) == 0,
                    "hop-by-hop header");
    if (!r.upgrade)
        FUZZ_HEAD_CHECK(fuzz_msg_count(m, "upgrade", NULL) == 0, "Upgrade outside a tunnel");
    if (r.framing == FRAMING_CHUNKED) {
        FUZZ_HEAD_CHECK(fuzz_msg_count(m, "transfer-encoding", &i) == 1 && fuzz_value_is(m, i, "chunked"),
                        "Transfer-Encoding");
        FUZZ_HEAD_CHECK(fuzz_msg_count(m, "content-length", NULL) == 0, "Content-Length with chunked");
    } else {
        FUZZ_HEAD_CHECK(fuzz_msg_count(m, "transfer-encoding", NULL) == 0, "Transfer-Encoding");
    }
    if (r.framing == FRAMING_LENGTH) {
        char want[32];
        snprintf(want, sizeof want, "%llu", (unsigned long long)r.content_length);
        FUZZ_HEAD_CHECK(fuzz_msg_count(m, "content-length", &i) == 1 && fuzz_value_is(m, i, want),
                        "Content-Length");
    }
    if (r.framing == FRAMING_CLOSE)
        FUZZ_HEAD_CHECK(fuzz_msg_count(m, "content-length", NULL) == 0,
                        "Content-Length on a read-to-close body");
    /* No header named by the upstream's Connection header survives. */
    const struct fuzz_msg *in = &u->raw;
    for (unsigned j = 0; j < in->count; j++) {
        if (!fuzz_name_is(fuzz_field_name(in, j), in->fields[j].name_len, "connection"))
            continue;
        const char *v = fuzz_field_value(in, j), *end = v + in->fields[j].value_len;
        while (v < end) {
            while (v < end && (*v == ',' || *v == ' ' || *v == '\t'))
                v++;
            const char *tok = v;
            while (v < end && *v != ',' && *v != ' ' && *v != '\t')
                v++;
            for (unsigned k = 0; k < m->count && v > tok; k++) {
                const char *n = fuzz_field_name(m, k);
                size_t nl = m->fields[k].name_len;
                bool ours = fuzz_name_is(n, nl, "connection") || fuzz_name_is(n, nl, "content-length") ||
                            fuzz_name_is(n, nl, "transfer-encoding") || fuzz_name_is(n, nl, "upgrade");
                FUZZ_HEAD_CHECK(ours || !(nl == (size_t)(v - tok) && strncasecmp(n, tok, nl) == 0),
                                "a header named by Connection passed");
            }
        }
    }
    buf_free(&ob);
}

/* ---- the driver ---- */

static llhttp_settings_t settings;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    llhttp_settings_init(&settings);
    settings.on_message_begin = on_message_begin;
    settings.on_status = on_status;
    settings.on_header_field = on_header_field;
    settings.on_header_value = on_header_value;
    settings.on_header_value_complete = on_header_value_complete;
    settings.on_headers_complete = on_headers_complete;
    settings.on_body = on_body;
    settings.on_message_complete = on_message_complete;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    /* The whole input as each thing qbt.c reads. */
    check_prefs(text, size);
    check_cookie(text, size);
    int status = size >= 2 ? (data[0] << 8 | data[1]) % 600 : 200;
    check_login(status, text, size);
    check_login(200, text, size);

    /* The input as a response from qBittorrent. */
    static struct upstream_side u;
    memset(&u, 0, sizeof u);
    http_head_init(&u.head, HEAD_LIMIT);
    buf_init(&u.body, 4 * 1024 * 1024);
    u.raw.text = malloc(size + 1);
    u.raw.cap = size + 1;
    llhttp_t p;
    llhttp_init(&p, HTTP_RESPONSE, &settings);
    p.data = &u;
    enum llhttp_errno err = llhttp_execute(&p, text, size);
    if (err == HPE_OK && !u.complete && u.head_done)
        err = llhttp_finish(&p); /* a read-to-close body ends with the connection */
    if (u.head_done && (u.complete || err == HPE_OK)) {
        const char *body = u.body.data ? u.body.data : "";
        check_login(u.status, body, u.body.len);
        check_prefs(body, u.body.len);
    }

    http_head_free(&u.head);
    buf_free(&u.body);
    free(u.raw.text);
    free(reparsed.text);
    reparsed.text = NULL;
    return 0;
}
