/* request.c - the request checks llhttp 8.1 does not make. */
#include "request.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

void head_scan_reset(struct head_scan *s)
{
    memset(s, 0, sizeof *s);
}

int head_scan_feed(struct head_scan *s, size_t limit, const char *data, size_t len, size_t *head_len)
{
    for (size_t i = 0; i < len; i++) {
        char ch = data[i];
        if (++s->bytes > limit)
            return 431;
        if (ch == '\n') {
            if (!s->prev_cr)
                return 400;
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
    unsigned hosts = 0, codings = 0;
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
