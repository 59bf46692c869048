/*
 * http.h - HTTP/1.1 pieces shared by the server and the upstream client:
 * capture of a message head from llhttp's callbacks into one bounded buffer,
 * header lookup, and formatting of the small responses the sidecar makes itself.
 * Pure: no I/O, no event loop.
 */
#ifndef QGS_HTTP_H
#define QGS_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define HTTP_MAX_HEADERS 100

/* How a message's body is delimited. */
enum framing {
    FRAMING_NONE,    /* no body (HEAD, 1xx, 204, 304; a request without one) */
    FRAMING_LENGTH,  /* Content-Length */
    FRAMING_CHUNKED, /* Transfer-Encoding: chunked */
    FRAMING_CLOSE,   /* the body ends when the connection closes (responses only) */
};

struct http_header {
    uint32_t name, name_len; /* offsets into http_head.buf */
    uint32_t value, value_len;
};

/*
 * A message head as llhttp delivers it: the URL (or status text) and the
 * header fields, each possibly in several fragments. Everything is appended
 * to one buffer that grows up to its limit; the head owns the buffer.
 */
struct http_head {
    struct buf text;
    uint32_t url, url_len;
    struct http_header headers[HTTP_MAX_HEADERS];
    unsigned count;
    int in_value; /* the last fragment was a header value */
};

/* Prepares an empty head that may hold up to limit bytes. Allocates nothing yet. */
void http_head_init(struct http_head *h, size_t limit);

/* Empties the head for the next message, keeping its buffer. */
void http_head_reset(struct http_head *h);

/* Frees the buffer. */
void http_head_free(struct http_head *h);

/*
 * Append a fragment of the URL, a header name or a header value. Each returns 0,
 * -E2BIG when the head would exceed its limit or HTTP_MAX_HEADERS, or -ENOMEM.
 */
int http_head_add_url(struct http_head *h, const char *at, size_t len);
int http_head_add_field(struct http_head *h, const char *at, size_t len);
int http_head_add_value(struct http_head *h, const char *at, size_t len);

/* Returns a pointer to the URL (not NUL-terminated) and its length in *len. */
const char *http_head_url(const struct http_head *h, size_t *len);

/* Header i's name and value (not NUL-terminated; lengths in headers[i]). */
static inline const char *http_header_name(const struct http_head *h, unsigned i)
{
    return h->text.data ? h->text.data + h->headers[i].name : "";
}

static inline const char *http_header_value(const struct http_head *h, unsigned i)
{
    return h->text.data ? h->text.data + h->headers[i].value : "";
}

/*
 * Steps through a comma-separated header value ("a, b,,c"): returns the next
 * token, its length in *len, and moves *pos past it; NULL at the end. Empty
 * elements and blanks around tokens are skipped, as RFC 9110's list rule asks.
 */
const char *http_list_next(const char **pos, const char *end, size_t *len);

/* Returns 1 when header i is called name (case-insensitive). */
int http_header_is(const struct http_head *h, unsigned i, const char *name);

/* Returns the first value of the named header (case-insensitive) and its length, or NULL. */
const char *http_head_find(const struct http_head *h, const char *name, size_t *len);

/*
 * A strict check of chunked framing run beside llhttp, which (in Debian's 8.1)
 * takes a bare LF for a line end: every line of the framing must end in CRLF,
 * sizes are at most 16 hex digits, trailers are lines like any other.
 */
struct chunk_check {
    uint8_t state;
    uint8_t digits;     /* significant hex digits of the size so far */
    uint8_t seen;       /* any digit of the size so far */
    uint64_t remaining; /* data bytes left in the current chunk */
};

/*
 * Feeds body bytes. Returns 0 while more is expected, 1 when the chunked body
 * ended (*used is how many of these bytes belong to it), -1 when malformed.
 */
int chunk_check_feed(struct chunk_check *cc, const char *data, size_t len, size_t *used);

/*
 * Checks on a response llhttp accepts but a proxy must not pass on. A reason
 * phrase (or a piece of it) may hold no control byte but HTAB:
 * http_reason_problem returns what is wrong with one, or NULL. A complete head
 * needs a status of 100..599 (llhttp takes "HTTP/1.1 003"), no empty header
 * name (": v") and no Transfer-Encoding but a single chunked (the proxy
 * re-frames bodies, so it would drop any other coding): http_response_problem
 * returns what is wrong, or NULL.
 */
const char *http_reason_problem(const char *at, size_t len);
const char *http_response_problem(const struct http_head *h, int status);

/* Returns the standard reason phrase for a status code ("Not Found"), or "Unknown". */
const char *http_status_reason(int status);

/*
 * Formats the head of a response the sidecar makes itself, for a body of
 * body_len bytes; content_type NULL means plain text. extra_headers is NULL
 * or lines each ending in "\r\n". Returns the length, or -1 when buf is too small.
 */
int http_format_head(char *buf, size_t cap, int status, const char *content_type, const char *extra_headers,
                     size_t body_len, int keep_alive);

#endif
