/* request.c - llhttp with the request checks it does not make (or makes differently by version), and routing.
 */
#include "request.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

/* llhttp 8 is strict only when its sources and header are compiled so; llhttp 9 always is, unless
 * lenient flags are set (we set none). A lenient parser at the front door would let smuggling through. */
#if LLHTTP_VERSION_MAJOR < 9 && !LLHTTP_STRICT_MODE
#error "llhttp 8 must be compiled with -DLLHTTP_STRICT_MODE=1 (mk/deps.mk does)"
#endif

void head_scan_reset(struct head_scan *s)
{
    memset(s, 0, sizeof *s);
}

static int scan_refuse(struct head_scan *s, int status, const char *reason)
{
    s->refusal = reason;
    return status;
}

int head_scan_feed(struct head_scan *s, size_t limit, const char *data, size_t len, size_t *head_len)
{
    for (size_t i = 0; i < len; i++) {
        char ch = data[i];
        if (++s->bytes > limit)
            return scan_refuse(s, 431, "request head too large");
        /*
         * A header line that starts with a blank continues the one before (obsolete line folding):
         * a proxy must refuse it (RFC 9112, 5.2). llhttp 8.1 passes it on as part of the value,
         * llhttp 9 refuses it in its own words; checked here, the answer is the same on both.
         */
        if (s->started && s->line_len == 0 && (ch == ' ' || ch == '\t'))
            return scan_refuse(s, 400, "obsolete line folding in a header");
        if (ch == '\n') {
            if (!s->prev_cr)
                return scan_refuse(s, 400, "bare LF as a line end in the head");
            if (s->started && !s->line1_done) {
                /* llhttp gives the version's digits only, and takes RTSP/1.0 (or ICE/1.0) for 1.0. */
                s->line1_done = true;
                if (memcmp(s->tail, " HTTP/1.", 8) != 0 || !isdigit((unsigned char)s->tail[8]))
                    return scan_refuse(s, 400, "not an HTTP/1.x request line");
            }
            /* An empty line ends the head, once a request line was seen (empty lines before it are allowed).
             */
            if (s->line_len == 0 && s->started) {
                s->done = true;
                *head_len = i + 1;
                return 0;
            }
            s->line_len = 0;
        } else if (ch != '\r') {
            s->line_len++;
            s->started = true;
            if (!s->line1_done) {
                memmove(s->tail, s->tail + 1, sizeof s->tail - 1);
                s->tail[sizeof s->tail - 1] = ch;
            }
        }
        s->prev_cr = ch == '\r';
    }
    *head_len = len;
    return 0;
}

/* Returns true when a Host value is a plausible uri-host[:port] (no spaces, controls or paths). */
static bool host_value_ok(const char *v, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)v[i];
        if (!isalnum(ch) && !strchr("-._~%!$&'()*+,;=:[]", ch))
            return false;
    }
    return true;
}

const char *request_ambiguity(const struct http_head *head, const llhttp_t *p)
{
    if (p->http_major != 1)
        return "unsupported HTTP version";
    unsigned hosts = 0, codings = 0, te_fields = 0;
    for (unsigned i = 0; i < head->count; i++) {
        const struct http_header *hd = &head->headers[i];
        if (hd->name_len == 0)
            return "empty header name";
        if (http_header_is(head, i, "host")) {
            if (!host_value_ok(http_header_value(head, i), hd->value_len))
                return "invalid Host header";
            hosts++;
        }
        if (http_header_is(head, i, "transfer-encoding")) {
            te_fields++;
            /* Only "chunked": we would pass any other coding on undecoded (RFC 9112, 6.3). */
            const char *v = http_header_value(head, i), *end = v + hd->value_len, *tok;
            size_t tok_len;
            for (tok = http_list_next(&v, end, &tok_len); tok; tok = http_list_next(&v, end, &tok_len)) {
                if (tok_len != 7 || strncasecmp(tok, "chunked", 7) != 0)
                    return "unsupported Transfer-Encoding";
                codings++;
            }
        }
    }
    /* An empty or blank Transfer-Encoding names no coding: what frames the body is anyone's guess. */
    if (te_fields > codings)
        return "empty Transfer-Encoding";
    if (codings > 1 || ((p->flags & F_TRANSFER_ENCODING) && !(p->flags & F_CHUNKED)))
        return "unsupported Transfer-Encoding";
    if (codings && p->http_minor == 0)
        return "Transfer-Encoding in an HTTP/1.0 request";
    if (hosts > 1)
        return "more than one Host header";
    if (hosts == 0 && p->http_minor >= 1)
        return "missing Host header";
    return NULL;
}

/* ---- the reader ---- */

static int refuse(struct request_reader *r, int status, const char *reason)
{
    r->status = status;
    r->reason = reason;
    return HPE_USER;
}

/* An event's answer; anything but going on or pausing means the owner gave up. */
static int event_result(struct request_reader *r, int rc)
{
    if (rc != 0 && rc != HPE_PAUSED)
        r->owner_stopped = true;
    return rc;
}

static int capture_result(struct request_reader *r, int rc)
{
    if (rc == 0)
        return 0;
    return rc == -E2BIG ? refuse(r, 431, "request head too large") : refuse(r, 500, "out of memory");
}

static int on_message_begin(llhttp_t *p)
{
    struct request_reader *r = p->data;
    llhttp_set_lenient_chunked_length(p, 0); /* a head is always read strictly (see on_headers_complete) */
    return r->events->on_begin ? event_result(r, r->events->on_begin(r)) : 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    struct request_reader *r = p->data;
    return capture_result(r, http_head_add_url(&r->head, at, len));
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    struct request_reader *r = p->data;
    return capture_result(r, http_head_add_field(&r->head, at, len));
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    struct request_reader *r = p->data;
    /* Folds never reach llhttp (the head scan refuses them); a line break in a value is a parser's slip. */
    if (memchr(at, '\n', len) || memchr(at, '\r', len))
        return refuse(r, 400, "line break inside a header value");
    return capture_result(r, http_head_add_value(&r->head, at, len));
}

static int on_headers_complete(llhttp_t *p)
{
    struct request_reader *r = p->data;
    r->head_complete = true;
    const char *ambiguity = request_ambiguity(&r->head, p);
    if (ambiguity)
        return refuse(r, 400, ambiguity);
    /* Far beyond any upload; a length near 2^64 only makes arithmetic elsewhere fragile. */
    if ((p->flags & F_CONTENT_LENGTH) && p->content_length > (UINT64_C(1) << 50))
        return refuse(r, 413, "Content-Length too large");
    if (p->flags & F_CHUNKED) {
        memset(&r->chunks, 0, sizeof r->chunks);
        r->checking_chunks = true;
        /*
         * A Content-Length among the trailers frames nothing (the chunks did) and is dropped with
         * them. llhttp 8.1 lets it pass; llhttp 9 refuses it as if it were in the head, unless this
         * flag is set. It is set for the trailers alone: both Content-Length and chunked in the head
         * stay refused.
         */
        llhttp_set_lenient_chunked_length(p, 1);
    }
    return r->events->on_head ? event_result(r, r->events->on_head(r)) : 0;
}

static int on_chunk_header(llhttp_t *p)
{
    struct request_reader *r = p->data;
    return r->events->on_chunk ? event_result(r, r->events->on_chunk(r)) : 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    struct request_reader *r = p->data;
    return r->events->on_body ? event_result(r, r->events->on_body(r, at, len)) : 0;
}

static int on_message_complete(llhttp_t *p)
{
    struct request_reader *r = p->data;
    head_scan_reset(&r->scan);
    r->checking_chunks = false;
    int rc = r->events->on_complete ? event_result(r, r->events->on_complete(r)) : 0;
    /* Stop even if the owner would go on: the next head goes through the scan first. */
    return rc == 0 ? HPE_PAUSED : rc;
}

static const llhttp_settings_t reader_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_chunk_header = on_chunk_header,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

void request_reader_init(struct request_reader *r, size_t head_limit, const struct request_events *events,
                         void *owner)
{
    memset(r, 0, sizeof *r);
    http_head_init(&r->head, head_limit);
    r->head_limit = head_limit;
    r->events = events;
    r->owner = owner;
    llhttp_init(&r->parser, HTTP_REQUEST, &reader_settings);
    r->parser.data = r;
}

void request_reader_free(struct request_reader *r)
{
    http_head_free(&r->head);
}

enum llhttp_errno request_reader_execute(struct request_reader *r, const char *data, size_t len, size_t *used)
{
    *used = 0;
    if (r->status)
        return HPE_USER; /* refused: for good */
    enum llhttp_errno stopped = llhttp_get_errno(&r->parser);
    if (stopped != HPE_OK)
        return stopped; /* paused and not resumed, done after an upgrade, or stopped by the owner */
    /* A head goes to llhttp alone, so its end is where on_headers_complete can look at the body. */
    size_t n = len;
    if (!r->scan.done) {
        if (r->scan.bytes == 0 && len > 0) {
            /* A new request's first byte (llhttp has not begun it): the last head no longer counts. */
            r->head_complete = false;
            http_head_reset(&r->head);
        }
        int status = head_scan_feed(&r->scan, r->head_limit, data, len, &n);
        if (status)
            return refuse(r, status, r->scan.refusal);
    } else if (r->checking_chunks) {
        size_t body_len = 0;
        int rc = chunk_check_feed(&r->chunks, data, len, &body_len);
        if (rc < 0)
            return refuse(r, 400, "malformed chunked framing");
        if (rc == 1)
            r->checking_chunks = false;
    }
    enum llhttp_errno err = llhttp_execute(&r->parser, data, n);
    if (err == HPE_OK) {
        *used = n;
    } else if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
        *used = (size_t)(llhttp_get_error_pos(&r->parser) - data);
    } else if (!r->status && !r->owner_stopped) {
        refuse(r, 400, llhttp_get_error_reason(&r->parser));
    }
    return err;
}

void request_reader_resume(struct request_reader *r)
{
    llhttp_resume(&r->parser);
}

void request_reader_feed(struct request_reader *r, const char *data, size_t len, const struct request_feed *f,
                         void *owner)
{
    bool first = true;
    while ((len > 0 || first) && !f->done(owner)) {
        first = false;
        size_t used;
        enum llhttp_errno err = request_reader_execute(r, data, len, &used);
        data += used;
        len -= used;
        if (err == HPE_OK)
            continue;
        if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
            if (f->busy(owner)) {
                f->hold(owner, data, len); /* the body, pipelined requests or tunnel bytes: later */
                return;
            }
            if (err == HPE_PAUSED_UPGRADE) {
                f->upgraded(owner);
                return;
            }
            request_reader_resume(r);
            continue;
        }
        if (!f->done(owner)) /* else an event already answered */
            f->refused(owner, r->status ? r->status : 400, r->reason ? r->reason : "bad request");
        return;
    }
}

/* ---- what was read ---- */

void request_describe(const struct request_reader *r, struct request *out)
{
    const llhttp_t *p = &r->parser;
    out->method = p->method;
    out->method_name = llhttp_method_name((llhttp_method_t)p->method);
    out->target = http_head_url(&r->head, &out->target_len);
    out->http_major = p->http_major;
    out->http_minor = p->http_minor;
    out->keep_alive = llhttp_should_keep_alive(p);
    out->upgrade = p->upgrade;
    out->content_length = 0;
    if (p->flags & F_CHUNKED) {
        out->framing = FRAMING_CHUNKED;
    } else if ((p->flags & F_CONTENT_LENGTH) && p->content_length > 0) {
        out->framing = FRAMING_LENGTH;
        out->content_length = p->content_length;
    } else {
        out->framing = FRAMING_NONE;
    }
    out->head = &r->head;
}
