/*
 * tls.h - TLS for the byte stream (stream.c): contexts for the front door (a
 * certificate chain and key) and for connections to qBittorrent (verifying
 * against the system's CA certificates or QBIT_CA_FILE, or not at all), and
 * one connection's TLS over memory the stream hands it, so the stream does
 * all the I/O.
 *
 * OpenSSL (Debian's libssl3) is loaded with dlopen the first time TLS is
 * configured: linked at start it would cost every daemon about 1.7 MiB of
 * private memory (its relocations and symbol tables), TLS or not.
 */
#ifndef QGS_TLS_H
#define QGS_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct tls_ctx;
struct tls_conn;

/* Loads OpenSSL once; returns 0, or -1 with why in err. Every other call needs it to have succeeded. */
int tls_load(char *err, size_t errlen);

/* Returns 1 once OpenSSL is loaded. */
int tls_loaded(void);

/*
 * A context for the front door: the PEM chain in cert_file (the server's
 * certificate first), the key in key_file; TLS 1.2 and 1.3, ALPN http/1.1,
 * OpenSSL's default security level. Returns 0, or -1 with a message naming
 * the file and what is wrong with it (a key that does not match names both).
 */
int tls_server_ctx_new(const char *cert_file, const char *key_file, struct tls_ctx **out, char *err,
                       size_t errlen);

/*
 * A context for connections to a server (qBittorrent, Gluetun): certificates
 * checked against ca_file (a PEM file), or the system's CA certificates when
 * ca_file is NULL; nothing checked at all when insecure. Its failures name
 * ca_var (the variable that holds ca_file) and addr_var (the one that holds
 * the server's address), which must be static strings. Returns 0, or -1 with
 * why in err.
 */
int tls_client_ctx_new(const char *ca_file, bool insecure, const char *ca_var, const char *addr_var,
                       struct tls_ctx **out, char *err, size_t errlen);

/*
 * Describes the context's own certificate for the log ("serial 1A2B, valid
 * until 2027-03-01 12:00 UTC") into buf. Returns 1 when it has expired, else 0.
 */
int tls_ctx_describe(const struct tls_ctx *ctx, char *buf, size_t len);

/* OpenSSL's version ("OpenSSL 3.0.17 1 Jul 2025") once loaded, else "". */
const char *tls_version(void);

/* Drops the caller's reference; connections still using the context keep it alive. NULL is a no-op. */
void tls_ctx_free(struct tls_ctx *ctx);

/*
 * A connection over ctx: the server side of an accepted one, or the client
 * side, which sends host as SNI when it is a name and checks the certificate
 * against host (a name or an IP address). Returns NULL when out of memory.
 */
struct tls_conn *tls_conn_new(struct tls_ctx *ctx, bool server, const char *host);

/* Frees the connection; NULL is a no-op. */
void tls_conn_free(struct tls_conn *t);

/*
 * Hands over bytes that arrived from the peer, without a copy: the calls that
 * follow read them, and one that returns "waiting" (0) has read them all, so
 * they need to stay valid only until then.
 */
void tls_conn_input(struct tls_conn *t, const char *data, size_t len);

/* Goes on with the handshake: 1 done, 0 waiting for the peer, -1 failed (tls_conn_error says why). */
int tls_conn_handshake(struct tls_conn *t);

/*
 * Decrypts what was handed over into buf: returns the bytes (> 0), 0 when
 * more must arrive first, -1 at the peer's close_notify or on an error
 * (tls_conn_error is "" for a clean close).
 */
ssize_t tls_conn_read(struct tls_conn *t, char *buf, size_t len);

/* Encrypts len bytes (all of them, or -1 on an error); the records then wait in the output. */
int tls_conn_write(struct tls_conn *t, const char *data, size_t len);

/* Queues a close_notify for the peer (in the output). */
void tls_conn_close_notify(struct tls_conn *t);

/*
 * The encrypted bytes waiting to be sent (handshake messages, records,
 * alerts), *len of them: valid until the next call on t. Once sent (or
 * copied), tls_conn_output_taken empties the output.
 */
const char *tls_conn_output(const struct tls_conn *t, size_t *len);
void tls_conn_output_taken(struct tls_conn *t);

/* Why the connection failed, in words a user can act on ("" when it did not). */
const char *tls_conn_error(const struct tls_conn *t);

/* Classifies the first bytes on a TLS port. */
enum tls_sniff {
    TLS_SNIFF_MORE,  /* too few bytes to tell */
    TLS_SNIFF_TLS,   /* a TLS handshake record */
    TLS_SNIFF_HTTP,  /* plain HTTP: a request line's method */
    TLS_SNIFF_OTHER, /* neither */
};

/* Tells a TLS ClientHello from plain HTTP by the first bytes (len of them). Pure. */
enum tls_sniff tls_sniff(const unsigned char *data, size_t len);

#endif
