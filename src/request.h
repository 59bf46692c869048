/*
 * request.h - checks on a request that Debian's llhttp 8.1 lets through, made
 * beside it: bare LF line ends and the true size of a head (on the raw
 * bytes), and heads whose framing or Host a proxy must not guess at. Pure, so
 * the server and the fuzzers run the same code.
 */
#ifndef QGS_REQUEST_H
#define QGS_REQUEST_H

#include <llhttp.h>
#include <stdbool.h>
#include <stddef.h>

#include "http.h"

/* The raw-byte scan of one request head; zeroed (or reset) before each head. */
struct head_scan {
    size_t bytes;    /* bytes of this head so far */
    size_t line_len; /* bytes of the current line, line ends excluded */
    bool done;       /* the head's empty line was seen */
    bool started;    /* a request line began (empty lines before it are allowed) */
    bool prev_cr;
};

/* Prepares the scan for the next head. */
void head_scan_reset(struct head_scan *s);

/*
 * Scans bytes of a head that may hold at most limit bytes. Returns 0 and in
 * *head_len how many of them belong to the head (all while it goes on; the
 * scan is done when it ended), 400 for a bare LF, or 431 past the limit.
 */
int head_scan_feed(struct head_scan *s, size_t limit, const char *data, size_t len, size_t *head_len);

/* Returns why a parsed head is ambiguous in a way llhttp accepts (a reason for a 400), or NULL. */
const char *request_ambiguity(const struct http_head *head, const llhttp_t *p);

#endif
