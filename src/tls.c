/* tls.c - OpenSSL, loaded on first use, over memory buffers: contexts, handshakes, records. */
#include "tls.h"

#include <dlfcn.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/*
 * Every OpenSSL function used, called through a pointer that tls_load fills
 * with dlsym: nothing here links against libssl. Macros of OpenSSL's that
 * expand to calls (SSL_CTX_set_min_proto_version, BIO_pending, ...) are
 * spelled out as the calls they stand for.
 */
#define CRYPTO_FUNCS(X)                                                                                      \
    X(unsigned long, ERR_get_error, (void))                                                                  \
    X(void, ERR_error_string_n, (unsigned long, char *, size_t))                                             \
    X(void, ERR_clear_error, (void))                                                                         \
    X(int, BIO_get_new_index, (void))                                                                        \
    X(BIO_METHOD *, BIO_meth_new, (int, const char *))                                                       \
    X(int, BIO_meth_set_write, (BIO_METHOD *, int (*)(BIO *, const char *, int)))                            \
    X(int, BIO_meth_set_read, (BIO_METHOD *, int (*)(BIO *, char *, int)))                                   \
    X(int, BIO_meth_set_ctrl, (BIO_METHOD *, long (*)(BIO *, int, long, void *)))                            \
    X(BIO *, BIO_new, (const BIO_METHOD *))                                                                  \
    X(int, BIO_free, (BIO *))                                                                                \
    X(void, BIO_set_data, (BIO *, void *))                                                                   \
    X(void *, BIO_get_data, (BIO *))                                                                         \
    X(void, BIO_set_init, (BIO *, int))                                                                      \
    X(void, BIO_set_flags, (BIO *, int))                                                                     \
    X(void, BIO_clear_flags, (BIO *, int))                                                                   \
    X(const char *, X509_verify_cert_error_string, (long))                                                   \
    X(int, X509_VERIFY_PARAM_set1_ip_asc, (X509_VERIFY_PARAM *, const char *))                               \
    X(ASN1_INTEGER *, X509_get_serialNumber, (X509 *))                                                       \
    X(const ASN1_TIME *, X509_get0_notAfter, (const X509 *))                                                 \
    X(int, ASN1_TIME_to_tm, (const ASN1_TIME *, struct tm *))                                                \
    X(BIGNUM *, ASN1_INTEGER_to_BN, (const ASN1_INTEGER *, BIGNUM *))                                        \
    X(char *, BN_bn2hex, (const BIGNUM *))                                                                   \
    X(void, BN_free, (BIGNUM *))                                                                             \
    X(void, CRYPTO_free, (void *, const char *, int))                                                        \
    X(const char *, OpenSSL_version, (int))

#define SSL_FUNCS(X)                                                                                         \
    X(int, OPENSSL_init_ssl, (uint64_t, const OPENSSL_INIT_SETTINGS *))                                      \
    X(const SSL_METHOD *, TLS_server_method, (void))                                                         \
    X(const SSL_METHOD *, TLS_client_method, (void))                                                         \
    X(SSL_CTX *, SSL_CTX_new, (const SSL_METHOD *))                                                          \
    X(void, SSL_CTX_free, (SSL_CTX *))                                                                       \
    X(long, SSL_CTX_ctrl, (SSL_CTX *, int, long, void *))                                                    \
    X(uint64_t, SSL_CTX_set_options, (SSL_CTX *, uint64_t))                                                  \
    X(int, SSL_CTX_use_certificate_chain_file, (SSL_CTX *, const char *))                                    \
    X(int, SSL_CTX_use_PrivateKey_file, (SSL_CTX *, const char *, int))                                      \
    X(int, SSL_CTX_check_private_key, (const SSL_CTX *))                                                     \
    X(void, SSL_CTX_set_alpn_select_cb, (SSL_CTX *, SSL_CTX_alpn_select_cb_func, void *))                    \
    X(int, SSL_select_next_proto,                                                                            \
      (unsigned char **, unsigned char *, const unsigned char *, unsigned, const unsigned char *, unsigned)) \
    X(int, SSL_CTX_load_verify_locations, (SSL_CTX *, const char *, const char *))                           \
    X(int, SSL_CTX_set_default_verify_paths, (SSL_CTX *))                                                    \
    X(void, SSL_CTX_set_verify, (SSL_CTX *, int, SSL_verify_cb))                                             \
    X(X509 *, SSL_CTX_get0_certificate, (const SSL_CTX *))                                                   \
    X(SSL *, SSL_new, (SSL_CTX *))                                                                           \
    X(void, SSL_free, (SSL *))                                                                               \
    X(void, SSL_set_bio, (SSL *, BIO *, BIO *))                                                              \
    X(void, SSL_set_accept_state, (SSL *))                                                                   \
    X(void, SSL_set_connect_state, (SSL *))                                                                  \
    X(int, SSL_do_handshake, (SSL *))                                                                        \
    X(int, SSL_read, (SSL *, void *, int))                                                                   \
    X(int, SSL_write, (SSL *, const void *, int))                                                            \
    X(int, SSL_get_error, (const SSL *, int))                                                                \
    X(int, SSL_shutdown, (SSL *))                                                                            \
    X(long, SSL_ctrl, (SSL *, int, long, void *))                                                            \
    X(int, SSL_set1_host, (SSL *, const char *))                                                             \
    X(void, SSL_set_hostflags, (SSL *, unsigned int))                                                        \
    X(X509_VERIFY_PARAM *, SSL_get0_param, (SSL *))                                                          \
    X(long, SSL_get_verify_result, (const SSL *))

#define DECLARE(ret, name, args) static ret(*p_##name) args;
CRYPTO_FUNCS(DECLARE)
SSL_FUNCS(DECLARE)

static bool loaded;

static int make_bio_method(void);

int tls_loaded(void)
{
    return loaded;
}

int tls_load(char *err, size_t errlen)
{
    if (loaded)
        return 0;
    /* Debian 12 and 13 both ship OpenSSL 3 (libssl3, libssl3t64): one soname. */
    void *crypto = dlopen("libcrypto.so.3", RTLD_NOW | RTLD_LOCAL);
    void *ssl = crypto ? dlopen("libssl.so.3", RTLD_NOW | RTLD_LOCAL) : NULL;
    if (!ssl) {
        snprintf(err, errlen, "cannot load OpenSSL (libssl.so.3): %s; install libssl3", dlerror());
        return -1;
    }
#define RESOLVE(lib, ret, name)                                                                              \
    p_##name = (ret)dlsym(lib, #name);                                                                       \
    if (!p_##name) {                                                                                         \
        snprintf(err, errlen, "OpenSSL has no %s: an OpenSSL 3 is needed", #name);                           \
        return -1;                                                                                           \
    }
#define FROM_CRYPTO(ret, name, args) RESOLVE(crypto, ret(*) args, name)
#define FROM_SSL(ret, name, args) RESOLVE(ssl, ret(*) args, name)
    CRYPTO_FUNCS(FROM_CRYPTO)
    SSL_FUNCS(FROM_SSL)
    if (!p_OPENSSL_init_ssl(OPENSSL_INIT_LOAD_SSL_STRINGS | OPENSSL_INIT_LOAD_CRYPTO_STRINGS, NULL) ||
        make_bio_method() != 0) {
        snprintf(err, errlen, "OpenSSL does not initialize");
        return -1;
    }
    loaded = true;
    return 0;
}

/* OpenSSL's reason for the last failure ("" when it gave none), its error queue emptied. */
static void openssl_error(char *buf, size_t len)
{
    unsigned long e = p_ERR_get_error(), next;
    buf[0] = '\0';
    /* The last one is the most specific. */
    while ((next = p_ERR_get_error()) != 0)
        e = next;
    if (e) {
        char text[256];
        p_ERR_error_string_n(e, text, sizeof text);
        /* "error:0A00010B:SSL routines::wrong version number" -> "wrong version number" */
        const char *reason = strrchr(text, ':');
        snprintf(buf, len, "%s", reason && reason[1] ? reason + 1 : text);
    }
}

/* ---- contexts ---- */

struct tls_ctx {
    SSL_CTX *ctx;
    bool server;
    const char *ca_var, *addr_var; /* for a client: the variables its failures tell the user to look at */
};

static const unsigned char alpn_http11[] = "\x08http/1.1";

/* The client may ask for h2 too; we speak http/1.1 only, and a client that has no overlap goes on without
 * ALPN. */
static int on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                   unsigned inlen, void *arg)
{
    (void)ssl, (void)arg;
    unsigned char *selected;
    if (p_SSL_select_next_proto(&selected, outlen, alpn_http11, sizeof alpn_http11 - 1, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = selected;
    return SSL_TLSEXT_ERR_OK;
}

static struct tls_ctx *ctx_new(bool server, char *err, size_t errlen)
{
    struct tls_ctx *t = calloc(1, sizeof *t);
    SSL_CTX *ctx = t ? p_SSL_CTX_new(server ? p_TLS_server_method() : p_TLS_client_method()) : NULL;
    if (!ctx) {
        free(t);
        snprintf(err, errlen, "out of memory for a TLS context");
        return NULL;
    }
    t->ctx = ctx;
    t->server = server;
    p_SSL_CTX_ctrl(ctx, SSL_CTRL_SET_MIN_PROTO_VERSION, TLS1_2_VERSION, NULL);
    /* Keep idle connections small: the record buffers are freed while nothing is in flight. */
    p_SSL_CTX_ctrl(ctx, SSL_CTRL_MODE, SSL_MODE_RELEASE_BUFFERS, NULL);
    p_SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    /* Resumption by session tickets only: a server-side cache would keep up to 20,480 sessions. */
    if (server)
        p_SSL_CTX_ctrl(ctx, SSL_CTRL_SET_SESS_CACHE_MODE, SSL_SESS_CACHE_OFF, NULL);
    return t;
}

int tls_server_ctx_new(const char *cert_file, const char *key_file, struct tls_ctx **out, char *err,
                       size_t errlen)
{
    char why[256];
    struct tls_ctx *t = ctx_new(true, err, errlen);
    if (!t)
        return -1;
    p_ERR_clear_error();
    if (p_SSL_CTX_use_certificate_chain_file(t->ctx, cert_file) != 1) {
        openssl_error(why, sizeof why);
        snprintf(err, errlen, "TLS_CERT_FILE=\"%s\": not a PEM certificate chain it can read (%s)", cert_file,
                 why);
        goto fail;
    }
    /* OpenSSL compares the key with the certificate as it loads it ("key values mismatch"). */
    bool key_loaded = p_SSL_CTX_use_PrivateKey_file(t->ctx, key_file, SSL_FILETYPE_PEM) == 1;
    bool mismatch = key_loaded && p_SSL_CTX_check_private_key(t->ctx) != 1;
    if (!key_loaded || mismatch)
        openssl_error(why, sizeof why);
    if (!key_loaded && strstr(why, "values mismatch"))
        mismatch = true;
    if (mismatch) {
        snprintf(err, errlen,
                 "TLS_KEY_FILE=\"%s\" is not the key of the certificate in TLS_CERT_FILE=\"%s\" (%s)",
                 key_file, cert_file, why);
        goto fail;
    }
    if (!key_loaded) {
        snprintf(err, errlen, "TLS_KEY_FILE=\"%s\": not a PEM private key it can read (%s)", key_file, why);
        goto fail;
    }
    p_SSL_CTX_set_alpn_select_cb(t->ctx, on_alpn, NULL);
    *out = t;
    return 0;
fail:
    tls_ctx_free(t);
    return -1;
}

int tls_client_ctx_new(const char *ca_file, bool insecure, const char *ca_var, const char *addr_var,
                       struct tls_ctx **out, char *err, size_t errlen)
{
    char why[256];
    struct tls_ctx *t = ctx_new(false, err, errlen);
    if (!t)
        return -1;
    t->ca_var = ca_var;
    t->addr_var = addr_var;
    p_ERR_clear_error();
    if (insecure) {
        p_SSL_CTX_set_verify(t->ctx, SSL_VERIFY_NONE, NULL);
    } else {
        int ok = ca_file ? p_SSL_CTX_load_verify_locations(t->ctx, ca_file, NULL)
                         : p_SSL_CTX_set_default_verify_paths(t->ctx);
        if (ok != 1) {
            openssl_error(why, sizeof why);
            if (ca_file)
                snprintf(err, errlen, "%s=\"%s\": no PEM certificate it can read (%s)", ca_var, ca_file, why);
            else
                snprintf(err, errlen, "cannot read the system's CA certificates (%s)", why);
            tls_ctx_free(t);
            return -1;
        }
        p_SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
    }
    *out = t;
    return 0;
}

int tls_ctx_describe(const struct tls_ctx *t, char *buf, size_t len)
{
    X509 *cert = p_SSL_CTX_get0_certificate(t->ctx);
    buf[0] = '\0';
    if (!cert)
        return 0;
    char serial[80] = "?";
    BIGNUM *bn = p_ASN1_INTEGER_to_BN(p_X509_get_serialNumber(cert), NULL);
    char *hex = bn ? p_BN_bn2hex(bn) : NULL;
    if (hex)
        snprintf(serial, sizeof serial, "%s", hex);
    p_CRYPTO_free(hex, __FILE__, __LINE__);
    p_BN_free(bn);
    struct tm until;
    if (p_ASN1_TIME_to_tm(p_X509_get0_notAfter(cert), &until) != 1) {
        snprintf(buf, len, "serial %s", serial);
        return 0;
    }
    char when[32];
    strftime(when, sizeof when, "%Y-%m-%d %H:%M UTC", &until);
    bool expired = timegm(&until) < time(NULL);
    snprintf(buf, len, "serial %s, %s %s", serial, expired ? "expired" : "valid until", when);
    return expired;
}

const char *tls_version(void)
{
    return loaded ? p_OpenSSL_version(OPENSSL_VERSION) : "";
}

void tls_ctx_free(struct tls_ctx *t)
{
    if (!t)
        return;
    p_SSL_CTX_free(t->ctx);
    free(t);
}

/* ---- connections ---- */

/*
 * A connection's TLS reads from and writes to memory the stream hands it:
 * a BIO of our own whose input is the bytes of the read being handled (no
 * copy; TLS keeps a partial record itself) and whose output grows only
 * while records wait to be taken. An idle connection holds no buffer here,
 * and with SSL_MODE_RELEASE_BUFFERS none inside OpenSSL either.
 */
struct tls_conn {
    SSL *ssl;
    const char *in; /* what tls_conn_input handed over and TLS has not read yet */
    size_t in_len;
    char *out; /* encrypted bytes waiting to be taken */
    size_t out_len, out_cap;
    bool server, done, failed, out_broken;
    char host[256];
    const char *ca_var, *addr_var; /* the context's, for describe_failure */
    char error[320];
};

static BIO_METHOD *conn_bio_method;

static int on_bio_read(BIO *b, char *buf, int len)
{
    struct tls_conn *t = p_BIO_get_data(b);
    p_BIO_clear_flags(b, BIO_FLAGS_RWS | BIO_FLAGS_SHOULD_RETRY);
    if (t->in_len == 0) {
        p_BIO_set_flags(b, BIO_FLAGS_READ | BIO_FLAGS_SHOULD_RETRY);
        return -1;
    }
    size_t n = t->in_len < (size_t)len ? t->in_len : (size_t)len;
    memcpy(buf, t->in, n);
    t->in += n;
    t->in_len -= n;
    return (int)n;
}

static int on_bio_write(BIO *b, const char *data, int len)
{
    struct tls_conn *t = p_BIO_get_data(b);
    p_BIO_clear_flags(b, BIO_FLAGS_RWS | BIO_FLAGS_SHOULD_RETRY);
    size_t need = t->out_len + (size_t)len;
    if (need > t->out_cap) {
        size_t cap = t->out_cap ? t->out_cap : 4096;
        while (cap < need)
            cap *= 2;
        char *out = realloc(t->out, cap);
        if (!out) {
            t->out_broken = true;
            return -1;
        }
        t->out = out;
        t->out_cap = cap;
    }
    memcpy(t->out + t->out_len, data, (size_t)len);
    t->out_len += (size_t)len;
    return len;
}

static long on_bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b, (void)num, (void)ptr;
    /* Everything written is as good as sent: the stream takes it after each call. */
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int make_bio_method(void)
{
    conn_bio_method = p_BIO_meth_new(p_BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "qgs stream");
    return conn_bio_method && p_BIO_meth_set_read(conn_bio_method, on_bio_read) == 1 &&
                   p_BIO_meth_set_write(conn_bio_method, on_bio_write) == 1 &&
                   p_BIO_meth_set_ctrl(conn_bio_method, on_bio_ctrl) == 1
               ? 0
               : -1;
}

/* True when host is an IPv4 or IPv6 literal (no SNI for those; the certificate must name the address). */
static bool is_ip_literal(const char *host)
{
    return strchr(host, ':') != NULL || strspn(host, "0123456789.") == strlen(host);
}

struct tls_conn *tls_conn_new(struct tls_ctx *ctx, bool server, const char *host)
{
    struct tls_conn *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->server = server;
    t->ssl = p_SSL_new(ctx->ctx);
    BIO *bio = t->ssl ? p_BIO_new(conn_bio_method) : NULL;
    if (!bio) {
        if (t->ssl)
            p_SSL_free(t->ssl);
        free(t);
        return NULL;
    }
    p_BIO_set_data(bio, t);
    p_BIO_set_init(bio, 1);
    p_SSL_set_bio(t->ssl, bio, bio); /* one reference, owned by ssl */
    if (server) {
        p_SSL_set_accept_state(t->ssl);
        return t;
    }
    snprintf(t->host, sizeof t->host, "%s", host ? host : "");
    t->ca_var = ctx->ca_var;
    t->addr_var = ctx->addr_var;
    p_SSL_set_connect_state(t->ssl);
    if (t->host[0] && is_ip_literal(t->host)) {
        p_X509_VERIFY_PARAM_set1_ip_asc(p_SSL_get0_param(t->ssl), t->host);
    } else if (t->host[0]) {
        p_SSL_ctrl(t->ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name, t->host);
        /* As curl: "*" must be a whole label; "f*.example.com" names nothing. */
        p_SSL_set_hostflags(t->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        p_SSL_set1_host(t->ssl, t->host);
    }
    return t;
}

void tls_conn_free(struct tls_conn *t)
{
    if (!t)
        return;
    p_SSL_free(t->ssl); /* frees the BIO too */
    free(t->out);
    free(t);
}

void tls_conn_input(struct tls_conn *t, const char *data, size_t len)
{
    t->in = data;
    t->in_len = len;
}

/* What a failed handshake means, for the person who has to fix it. */
static void describe_failure(struct tls_conn *t)
{
    char why[256];
    openssl_error(why, sizeof why);
    long v = t->server ? X509_V_OK : p_SSL_get_verify_result(t->ssl);
    if (v != X509_V_OK) {
        switch (v) {
        case X509_V_ERR_CERT_HAS_EXPIRED:
            snprintf(t->error, sizeof t->error, "its certificate has expired");
            break;
        case X509_V_ERR_CERT_NOT_YET_VALID:
            snprintf(t->error, sizeof t->error, "its certificate is not valid yet (is the clock right?)");
            break;
        case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
        case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
            snprintf(t->error, sizeof t->error,
                     "its certificate is self-signed: set %s to that certificate to trust it", t->ca_var);
            break;
        case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
        case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
        case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
            snprintf(t->error, sizeof t->error,
                     "its certificate's issuer is unknown: set %s to the CA certificate that issued it",
                     t->ca_var);
            break;
        case X509_V_ERR_HOSTNAME_MISMATCH:
        case X509_V_ERR_IP_ADDRESS_MISMATCH:
            snprintf(t->error, sizeof t->error, "its certificate is not for \"%s\" (the host in %s)", t->host,
                     t->addr_var);
            break;
        default:
            snprintf(t->error, sizeof t->error, "its certificate does not verify: %s",
                     p_X509_verify_cert_error_string(v));
        }
        return;
    }
    if (strstr(why, "wrong version number") || strstr(why, "packet length too long") ||
        strstr(why, "http request") || strstr(why, "record layer failure"))
        snprintf(t->error, sizeof t->error, "the peer does not speak TLS (%s; it may speak plain HTTP)", why);
    else
        snprintf(t->error, sizeof t->error, "TLS handshake failed: %s",
                 why[0] ? why : "the peer broke it off");
}

/* The last call failed: says why, once. */
static void conn_failed(struct tls_conn *t, const char *what)
{
    t->failed = true;
    if (t->out_broken) {
        snprintf(t->error, sizeof t->error, "out of memory for TLS records");
        return;
    }
    char why[256];
    openssl_error(why, sizeof why);
    snprintf(t->error, sizeof t->error, "TLS error: %s", why[0] ? why : what);
}

int tls_conn_handshake(struct tls_conn *t)
{
    if (t->done)
        return 1;
    if (t->failed)
        return -1;
    p_ERR_clear_error();
    int rc = p_SSL_do_handshake(t->ssl);
    if (rc == 1) {
        t->done = true;
        return 1;
    }
    int e = p_SSL_get_error(t->ssl, rc);
    if ((e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) && !t->out_broken)
        return 0;
    t->failed = true;
    if (t->out_broken)
        conn_failed(t, "");
    else
        describe_failure(t);
    return -1;
}

ssize_t tls_conn_read(struct tls_conn *t, char *buf, size_t len)
{
    if (t->failed)
        return -1;
    p_ERR_clear_error();
    int n = p_SSL_read(t->ssl, buf, len > (1u << 30) ? 1 << 30 : (int)len);
    if (n > 0)
        return n;
    int e = p_SSL_get_error(t->ssl, n);
    if ((e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) && !t->out_broken)
        return 0;
    if (e == SSL_ERROR_ZERO_RETURN)
        return -1; /* close_notify: a clean end, error stays "" */
    conn_failed(t, "a broken record");
    return -1;
}

int tls_conn_write(struct tls_conn *t, const char *data, size_t len)
{
    if (t->failed)
        return -1;
    p_ERR_clear_error();
    while (len > 0) {
        int n = p_SSL_write(t->ssl, data, len > (1u << 30) ? 1 << 30 : (int)len);
        if (n <= 0) {
            conn_failed(t, "cannot encrypt");
            return -1;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

void tls_conn_close_notify(struct tls_conn *t)
{
    if (t->done && !t->failed) {
        p_ERR_clear_error();
        p_SSL_shutdown(t->ssl);
    }
}

const char *tls_conn_output(const struct tls_conn *t, size_t *len)
{
    *len = t->out_len;
    return t->out;
}

void tls_conn_output_taken(struct tls_conn *t)
{
    /* Freed rather than kept: most connections sit idle, and an idle one should cost nothing here. */
    free(t->out);
    t->out = NULL;
    t->out_len = t->out_cap = 0;
}

const char *tls_conn_error(const struct tls_conn *t)
{
    return t->error;
}

/* ---- telling TLS from plain HTTP ---- */

enum tls_sniff tls_sniff(const unsigned char *data, size_t len)
{
    if (len == 0)
        return TLS_SNIFF_MORE;
    /* A TLS record: content type 22 (handshake), then version 3.x. */
    if (data[0] == 0x16) {
        if (len < 2)
            return TLS_SNIFF_MORE;
        return data[1] == 0x03 ? TLS_SNIFF_TLS : TLS_SNIFF_OTHER;
    }
    /* A request line starts with a method: upper-case letters, then a space. */
    size_t i = 0;
    while (i < len && i < 16 && data[i] >= 'A' && data[i] <= 'Z')
        i++;
    if (i == len && i < 16)
        return TLS_SNIFF_MORE;
    return i > 0 && i < 16 && i < len && data[i] == ' ' ? TLS_SNIFF_HTTP : TLS_SNIFF_OTHER;
}
