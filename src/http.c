/* http.c - bounded capture of message heads and formatting of the sidecar's own responses. */
#include "http.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void http_head_init(struct http_head *h, size_t limit)
{
    memset(h, 0, sizeof *h);
    buf_init(&h->text, limit);
}

void http_head_reset(struct http_head *h)
{
    buf_reset(&h->text);
    h->url = h->url_len = 0;
    h->count = 0;
    h->in_value = 0;
}

void http_head_free(struct http_head *h)
{
    buf_free(&h->text);
}

static int append(struct http_head *h, const char *at, size_t len)
{
    return buf_append(&h->text, at, len);
}

int http_head_add_url(struct http_head *h, const char *at, size_t len)
{
    if (h->url_len == 0)
        h->url = (uint32_t)h->text.len;
    int rc = append(h, at, len);
    if (rc == 0)
        h->url_len += (uint32_t)len;
    return rc;
}

int http_head_add_field(struct http_head *h, const char *at, size_t len)
{
    /* A name fragment after a value (or first of all) starts a new header. */
    if (h->in_value || h->count == 0) {
        if (h->count == HTTP_MAX_HEADERS)
            return -E2BIG;
        struct http_header *hd = &h->headers[h->count++];
        hd->name = (uint32_t)h->text.len;
        hd->name_len = 0;
        hd->value = (uint32_t)h->text.len;
        hd->value_len = 0;
        h->in_value = 0;
    }
    int rc = append(h, at, len);
    if (rc == 0)
        h->headers[h->count - 1].name_len += (uint32_t)len;
    return rc;
}

int http_head_add_value(struct http_head *h, const char *at, size_t len)
{
    if (h->count == 0)
        return -EINVAL;
    struct http_header *hd = &h->headers[h->count - 1];
    if (!h->in_value) {
        hd->value = (uint32_t)h->text.len;
        h->in_value = 1;
    }
    int rc = append(h, at, len);
    if (rc == 0)
        hd->value_len += (uint32_t)len;
    return rc;
}

const char *http_head_url(const struct http_head *h, size_t *len)
{
    *len = h->url_len;
    return h->text.data ? h->text.data + h->url : "";
}

const char *http_list_next(const char **pos, const char *end, size_t *len)
{
    const char *v = *pos;
    while (v < end && (*v == ' ' || *v == '\t' || *v == ','))
        v++;
    const char *tok = v;
    while (v < end && *v != ',' && *v != ' ' && *v != '\t')
        v++;
    *pos = v;
    *len = (size_t)(v - tok);
    return v > tok ? tok : NULL;
}

int http_header_is(const struct http_head *h, unsigned i, const char *name)
{
    size_t len = strlen(name);
    return h->headers[i].name_len == len && strncasecmp(http_header_name(h, i), name, len) == 0;
}

const char *http_head_find(const struct http_head *h, const char *name, size_t *len)
{
    size_t name_len = strlen(name);
    for (unsigned i = 0; i < h->count; i++) {
        const struct http_header *hd = &h->headers[i];
        if (hd->name_len == name_len && strncasecmp(h->text.data + hd->name, name, name_len) == 0) {
            *len = hd->value_len;
            return h->text.data + hd->value;
        }
    }
    return NULL;
}

enum {
    CC_SIZE,       /* hex digits of a chunk size */
    CC_EXT,        /* a chunk extension, up to CR */
    CC_SIZE_LF,    /* LF after the size line's CR */
    CC_DATA,       /* chunk data */
    CC_DATA_CR,    /* CR after the data */
    CC_DATA_LF,    /* LF after the data */
    CC_LINE_START, /* start of a trailer line, or the final empty line */
    CC_TRAILER,    /* inside a trailer line, up to CR */
    CC_TRAILER_LF, /* LF after a trailer line's CR */
    CC_END_LF,     /* LF of the final empty line */
};

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int chunk_check_feed(struct chunk_check *cc, const char *data, size_t len, size_t *used)
{
    for (size_t i = 0; i < len; i++) {
        char ch = data[i];
        switch (cc->state) {
        case CC_SIZE: {
            int v = hex_value(ch);
            if (v >= 0 && cc->digits < 16) {
                cc->remaining = cc->remaining * 16 + (uint64_t)v;
                /* Leading zeros do not count towards the 16 digits a 64-bit size can have. */
                if (cc->remaining > 0)
                    cc->digits++;
                cc->seen = 1;
            } else if (cc->seen && (ch == ';' || ch == ' ' || ch == '\t')) {
                cc->state = CC_EXT;
            } else if (cc->seen && ch == '\r') {
                cc->state = CC_SIZE_LF;
            } else {
                return -1;
            }
            break;
        }
        case CC_EXT:
            if (ch == '\r')
                cc->state = CC_SIZE_LF;
            else if (ch == '\n')
                return -1;
            break;
        case CC_SIZE_LF:
            if (ch != '\n')
                return -1;
            cc->digits = 0;
            cc->seen = 0;
            cc->state = cc->remaining ? CC_DATA : CC_LINE_START;
            break;
        case CC_DATA: {
            size_t take = len - i < cc->remaining ? len - i : (size_t)cc->remaining;
            cc->remaining -= take;
            i += take - 1;
            if (cc->remaining == 0)
                cc->state = CC_DATA_CR;
            break;
        }
        case CC_DATA_CR:
            if (ch != '\r')
                return -1;
            cc->state = CC_DATA_LF;
            break;
        case CC_DATA_LF:
            if (ch != '\n')
                return -1;
            cc->state = CC_SIZE;
            break;
        case CC_LINE_START:
            /* A trailer line starting with a blank is a fold (or has no name): refused, as in the head. */
            if (ch == '\r')
                cc->state = CC_END_LF;
            else if (ch == '\n' || ch == ' ' || ch == '\t')
                return -1;
            else
                cc->state = CC_TRAILER;
            break;
        case CC_TRAILER:
            if (ch == '\r')
                cc->state = CC_TRAILER_LF;
            else if (ch == '\n')
                return -1;
            break;
        case CC_TRAILER_LF:
            if (ch != '\n')
                return -1;
            cc->state = CC_LINE_START;
            break;
        case CC_END_LF:
            if (ch != '\n')
                return -1;
            *used = i + 1;
            return 1;
        }
    }
    return 0;
}

const char *http_reason_problem(const char *at, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (((unsigned char)at[i] < 0x20 && at[i] != '\t') || at[i] == 0x7f)
            return "a control byte in the reason phrase";
    }
    return NULL;
}

const char *http_response_problem(const struct http_head *h, int status)
{
    if (status < 100 || status > 599)
        return "a status code outside 100..599";
    unsigned codings = 0;
    for (unsigned i = 0; i < h->count; i++) {
        if (h->headers[i].name_len == 0)
            return "an empty header name";
        if (http_header_is(h, i, "transfer-encoding")) {
            /* The proxy de-chunks and re-frames: any other coding (gzip) would reach the client undone. */
            const char *v = http_header_value(h, i), *end = v + h->headers[i].value_len, *tok;
            size_t len;
            while ((tok = http_list_next(&v, end, &len)) != NULL) {
                if (len != 7 || strncasecmp(tok, "chunked", 7) != 0 || ++codings > 1)
                    return "a Transfer-Encoding other than chunked alone";
            }
        }
    }
    return NULL;
}

const char *http_status_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 413:
        return "Content Too Large";
    case 421:
        return "Misdirected Request";
    case 422:
        return "Unprocessable Content";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "Unknown";
    }
}

int http_format_head(char *buf, size_t cap, int status, const char *content_type, const char *extra_headers,
                     size_t body_len, int keep_alive)
{
    int n = snprintf(buf, cap,
                     "HTTP/1.1 %d %s\r\n"
                     "Content-Type: %s\r\n"
                     "Content-Length: %zu\r\n"
                     "Cache-Control: no-store\r\n"
                     "X-Content-Type-Options: nosniff\r\n"
                     "%s"
                     "Connection: %s\r\n"
                     "\r\n",
                     status, http_status_reason(status),
                     content_type ? content_type : "text/plain; charset=utf-8", body_len,
                     extra_headers ? extra_headers : "", keep_alive ? "keep-alive" : "close");
    if (n < 0 || (size_t)n >= cap)
        return -1;
    return n;
}
