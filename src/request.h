/*
 * request.h - reading a client's requests: llhttp (HTTP_REQUEST) with the
 * checks llhttp does not make, or makes differently in 8.1 and 9, done beside
 * it (bare LF line ends, obsolete line folding and the true size of a head,
 * on the raw bytes; heads whose framing or Host a proxy must not guess at;
 * strict chunked framing), the capture of each head, and its description
 * (struct request). Pure (no I/O, no event loop), so the server and the
 * fuzzers run the same code.
 */
#ifndef QGS_REQUEST_H
#define QGS_REQUEST_H

#include <llhttp.h>
#include <stdbool.h>
#include <stddef.h>

#include "exchange.h"
#include "http.h"

/* The raw-byte scan of one request head; zeroed (or reset) before each head. */
struct head_scan {
    size_t bytes;    /* bytes of this head so far */
    size_t line_len; /* bytes of the current line, line ends excluded */
    bool done;       /* the head's empty line was seen */
    bool started;    /* a request line began (empty lines before it are allowed) */
    bool prev_cr;
    bool line1_done;     /* the request line ended */
    char tail[9];        /* the request line's last 9 bytes so far: " HTTP/1.1" */
    const char *refusal; /* why the scan refused the head */
};

/* Prepares the scan for the next head. */
void head_scan_reset(struct head_scan *s);

/*
 * Scans bytes of a head that may hold at most limit bytes. Returns 0 and in
 * *head_len how many of them belong to the head (all while it goes on; the
 * scan is done when it ended), 400 for a bare LF or a folded line, or 431
 * past the limit (with s->refusal saying which), and 400 for a request line
 * that does not end in HTTP/1.x (llhttp also parses RTSP/1.0 and ICE/1.0).
 */
int head_scan_feed(struct head_scan *s, size_t limit, const char *data, size_t len, size_t *head_len);

/* Returns why a parsed head is ambiguous in a way llhttp accepts (a reason for a 400), or NULL. */
const char *request_ambiguity(const struct http_head *head, const llhttp_t *p);

struct request_reader;

/*
 * What a reader reports to its owner. Each returns 0 to go on or HPE_USER when
 * the owner has given up on the connection; on_head may also return
 * HPE_PAUSED, to hold the body (request_reader_execute returns there). The
 * reader always stops after on_complete (HPE_PAUSED), so that the next
 * request's head is scanned before llhttp sees it.
 */
struct request_events {
    int (*on_begin)(struct request_reader *r); /* the first byte of a request */
    int (*on_head)(struct request_reader *r);  /* a head that passed every check */
    int (*on_chunk)(struct request_reader *r); /* a chunk starts: its size is parser.content_length */
    int (*on_body)(struct request_reader *r, const char *at, size_t len);
    int (*on_complete)(struct request_reader *r);
};

/*
 * One connection's request reader. The owner reads parser (method, version,
 * flags, content_length, keep-alive) and head; the rest is the reader's.
 */
struct request_reader {
    llhttp_t parser;
    struct http_head head; /* the current request's head (with any trailers after it) */
    bool head_complete;    /* head (and the parser's method) is the current request's, all of it */
    int status;            /* why the request was refused: 400, 413, 431 or 500; else 0 */
    const char *reason;    /* with status: what was wrong, for the answer and the log */
    void *owner;
    const struct request_events *events;
    size_t head_limit;
    struct head_scan scan;
    struct chunk_check chunks;
    bool checking_chunks;
    bool owner_stopped; /* an event returned HPE_USER */
};

/* Prepares a reader for heads of at most head_limit bytes. Allocates nothing yet. */
void request_reader_init(struct request_reader *r, size_t head_limit, const struct request_events *events,
                         void *owner);

/* Frees what the reader holds. */
void request_reader_free(struct request_reader *r);

/*
 * Parses the start of data, up to where the reader must look again (the end
 * of a head) or it paused. Returns HPE_OK with *used bytes consumed (call
 * again with the rest; with len 0 it lets a request paused at its head
 * complete when it has no body), HPE_PAUSED with *used the bytes before the
 * point where parsing stopped (go on after request_reader_resume),
 * HPE_PAUSED_UPGRADE after an upgrade request (the reader is done: the rest
 * is not HTTP), or an error: the request is refused, with status and reason
 * set, unless an event's HPE_USER stopped it (then the owner knows why).
 * Once it returned anything but HPE_OK it returns the same again, with *used
 * 0, until resumed (after an error or an upgrade: for good).
 */
enum llhttp_errno request_reader_execute(struct request_reader *r, const char *data, size_t len,
                                         size_t *used);

/* Lets a paused reader go on. */
void request_reader_resume(struct request_reader *r);

/* What the feed loop asks of the reader's owner (server.c, and the request-head fuzzer). */
struct request_feed {
    /* True once the owner reads no more requests here (it answered with a close, or is closing). */
    bool (*done)(void *owner);
    /* True while the request in progress holds the connection: later bytes wait (hold). */
    bool (*busy)(void *owner);
    /* Keeps bytes the reader cannot take yet (the rest of a body, pipelined requests, tunnel bytes). */
    void (*hold)(void *owner, const char *data, size_t len);
    /* An upgrade request was answered as a plain one: the connection cannot carry on as HTTP. */
    void (*upgraded)(void *owner);
    /* A request was refused: status and reason for the answer (the connection closes after it). */
    void (*refused)(void *owner, int status, const char *reason);
};

/*
 * The one feed loop of a connection: parses data request by request,
 * resuming after each, until it is used up, the owner is busy (the rest is
 * held) or done, an upgrade ends HTTP, or a request is refused. With len 0
 * it parses once anyway (a request paused at its head completes then).
 */
void request_reader_feed(struct request_reader *r, const char *data, size_t len, const struct request_feed *f,
                         void *owner);

/*
 * Describes the complete head the reader holds (the connection's fields of
 * out are left alone); out points into the reader, valid until it reads on.
 */
void request_describe(const struct request_reader *r, struct request *out);

#endif
