/*
 * fuzz.h - what the fuzz drivers share: an invariant check that aborts with a
 * message (so libFuzzer keeps the input), a printer for bytes, a small PRNG
 * for piece sizes, and a capture of llhttp's callbacks that is independent of
 * src/http.c, used to re-parse what our rewriters produce.
 */
#ifndef QGS_FUZZ_H
#define QGS_FUZZ_H

#include <llhttp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Aborts with the failed condition and a message; libFuzzer then saves the input as a crash. */
#define FUZZ_CHECK(cond, ...)                                                                                \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            fprintf(stderr, "\n==FUZZ== invariant failed at %s:%d: %s\n==FUZZ== ", __FILE__, __LINE__,       \
                    #cond);                                                                                  \
            fprintf(stderr, __VA_ARGS__);                                                                    \
            fputc('\n', stderr);                                                                             \
            abort();                                                                                         \
        }                                                                                                    \
    } while (0)

/* Writes bytes to stderr with control and non-ASCII bytes escaped, for invariant messages. */
static inline void fuzz_dump(const char *label, const void *data, size_t len)
{
    const unsigned char *p = data;
    fprintf(stderr, "==FUZZ== %s (%zu bytes): \"", label, len);
    for (size_t i = 0; i < len; i++) {
        if (p[i] == '\r')
            fputs("\\r", stderr);
        else if (p[i] == '\n')
            fputs("\\n", stderr);
        else if (p[i] < 0x20 || p[i] >= 0x7f || p[i] == '"' || p[i] == '\\')
            fprintf(stderr, "\\x%02x", p[i]);
        else
            fputc(p[i], stderr);
    }
    fputs("\"\n", stderr);
}

/* Returns 1 when two byte strings are equal; either may be NULL when its length is 0. */
static inline int fuzz_same(const void *a, size_t alen, const void *b, size_t blen)
{
    return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

/* RFC 9110 token characters (field names, methods). */
static inline int fuzz_is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/*
 * Checks a head's header lines against RFC 9110/9112 syntax, independently of
 * llhttp (which is more lenient): from the first CRLF to the blank line, each
 * line is "token: value" with a non-empty token and a value of HTAB, SP,
 * VCHAR and obs-text only. Returns NULL or what is wrong.
 */
static inline const char *fuzz_head_syntax(const char *head, size_t len)
{
    const char *p = memchr(head, '\n', len), *end = head + len;
    if (!p || p == head || p[-1] != '\r')
        return "the first line does not end in CRLF";
    for (const char *c = head; c < p - 1; c++) {
        if (((unsigned char)*c < 0x20 && *c != '\t') || *c == 0x7f)
            return "a control byte in the first line";
    }
    p++;
    for (;;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl || nl == p || nl[-1] != '\r')
            return "a header line does not end in CRLF";
        if (nl == p + 1)
            return nl + 1 == end ? NULL : "bytes after the blank line";
        const char *c = p;
        while (c < nl - 1 && fuzz_is_tchar((unsigned char)*c))
            c++;
        if (c == p)
            return "an empty or invalid header name";
        if (*c != ':')
            return "a header name with a byte that is not a token character";
        for (c++; c < nl - 1; c++) {
            unsigned char b = (unsigned char)*c;
            if ((b < 0x20 && b != '\t') || b == 0x7f)
                return "a control byte in a header value";
        }
        p = nl + 1;
    }
}

/* FNV-1a, to derive deterministic choices (piece sizes, variants) from an input. */
static inline uint64_t fuzz_hash(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* xorshift64*; the state must not be 0. */
static inline uint64_t fuzz_rand(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* Returns 1 when the len bytes at s are name, ignoring ASCII case. */
static inline int fuzz_name_is(const char *s, size_t len, const char *name)
{
    return strlen(name) == len && strncasecmp(s, name, len) == 0;
}

/*
 * A message head as llhttp reports it, delimited by the *_complete callbacks
 * rather than by the order of fragments (which is what src/http.c relies on),
 * so that the two captures can be compared. The text buffer is sized by the
 * caller to the bytes being parsed, which bounds everything captured.
 */
#define FUZZ_MAX_HEADERS 4096

struct fuzz_field {
    size_t name, name_len, value, value_len;
};

struct fuzz_msg {
    char *text;
    size_t len, cap;
    size_t url, url_len; /* the request target, or a response's reason phrase */
    int url_started;
    struct fuzz_field fields[FUZZ_MAX_HEADERS];
    unsigned count;
    int in_field, in_value; /* a name or value started and not completed yet */
    unsigned heads;         /* on_headers_complete calls */
    int overflow;           /* more headers than FUZZ_MAX_HEADERS */
};

static inline void fuzz_msg_reset(struct fuzz_msg *m)
{
    m->len = 0;
    m->url = m->url_len = 0;
    m->url_started = 0;
    m->count = 0;
    m->in_field = m->in_value = 0;
    m->overflow = 0;
}

static inline int fuzz_msg_append(struct fuzz_msg *m, const char *at, size_t len)
{
    if (len > m->cap - m->len) {
        fprintf(stderr, "==FUZZ== capture overflow: llhttp reported more bytes than it was given\n");
        abort();
    }
    memcpy(m->text + m->len, at, len);
    m->len += len;
    return 0;
}

static inline int fuzz_msg_url(struct fuzz_msg *m, const char *at, size_t len)
{
    if (!m->url_started) {
        m->url = m->len;
        m->url_started = 1;
    }
    m->url_len += len;
    return fuzz_msg_append(m, at, len);
}

static inline int fuzz_msg_field(struct fuzz_msg *m, const char *at, size_t len)
{
    if (!m->in_field) {
        if (m->count == FUZZ_MAX_HEADERS) {
            m->overflow = 1;
            return 0;
        }
        struct fuzz_field *f = &m->fields[m->count++];
        f->name = f->value = m->len;
        f->name_len = f->value_len = 0;
        m->in_field = 1;
    }
    if (m->overflow)
        return 0;
    m->fields[m->count - 1].name_len += len;
    return fuzz_msg_append(m, at, len);
}

static inline int fuzz_msg_value(struct fuzz_msg *m, const char *at, size_t len)
{
    if (m->overflow || m->count == 0)
        return 0;
    struct fuzz_field *f = &m->fields[m->count - 1];
    if (!m->in_value) {
        f->value = m->len;
        m->in_value = 1;
    }
    f->value_len += len;
    return fuzz_msg_append(m, at, len);
}

/* The header's value ends: the next name fragment starts a new header. */
static inline void fuzz_msg_value_complete(struct fuzz_msg *m)
{
    m->in_field = 0;
    m->in_value = 0;
}

static inline const char *fuzz_field_name(const struct fuzz_msg *m, unsigned i)
{
    return m->text + m->fields[i].name;
}

static inline const char *fuzz_field_value(const struct fuzz_msg *m, unsigned i)
{
    return m->text + m->fields[i].value;
}

/* Returns how many headers are called name (case-insensitive); the first one's index in *first. */
static inline unsigned fuzz_msg_count(const struct fuzz_msg *m, const char *name, unsigned *first)
{
    unsigned n = 0;
    for (unsigned i = 0; i < m->count; i++) {
        if (fuzz_name_is(fuzz_field_name(m, i), m->fields[i].name_len, name)) {
            if (n == 0 && first)
                *first = i;
            n++;
        }
    }
    return n;
}

/*
 * The llhttp callbacks of a re-parse: they capture into the fuzz_msg in
 * p->data and stop at the end of the first head (HPE_PAUSED), so the caller
 * can check that the head ended exactly where the bytes did.
 */
static inline int fuzz_cb_url(llhttp_t *p, const char *at, size_t len)
{
    return fuzz_msg_url(p->data, at, len);
}

static inline int fuzz_cb_field(llhttp_t *p, const char *at, size_t len)
{
    return fuzz_msg_field(p->data, at, len);
}

static inline int fuzz_cb_value(llhttp_t *p, const char *at, size_t len)
{
    return fuzz_msg_value(p->data, at, len);
}

static inline int fuzz_cb_value_complete(llhttp_t *p)
{
    fuzz_msg_value_complete(p->data);
    return 0;
}

static inline int fuzz_cb_headers_complete(llhttp_t *p)
{
    struct fuzz_msg *m = p->data;
    m->heads++;
    return HPE_PAUSED;
}

static inline void fuzz_reparse_settings(llhttp_settings_t *s, int response)
{
    llhttp_settings_init(s);
    if (response)
        s->on_status = fuzz_cb_url;
    else
        s->on_url = fuzz_cb_url;
    s->on_header_field = fuzz_cb_field;
    s->on_header_value = fuzz_cb_value;
    s->on_header_value_complete = fuzz_cb_value_complete;
    s->on_headers_complete = fuzz_cb_headers_complete;
}

/*
 * Makes m an empty capture that can hold cap bytes (freeing what it held).
 * Its fields are not cleared: only the first count are ever read.
 */
static inline void fuzz_msg_prepare(struct fuzz_msg *m, size_t cap)
{
    free(m->text);
    fuzz_msg_reset(m);
    m->heads = 0;
    m->text = malloc(cap);
    m->cap = cap;
    FUZZ_CHECK(m->text != NULL, "out of memory");
}

/* Returns 1 when field i's value is want, byte for byte. */
static inline int fuzz_value_is(const struct fuzz_msg *m, unsigned i, const char *want)
{
    return m->fields[i].value_len == strlen(want) && memcmp(fuzz_field_value(m, i), want, strlen(want)) == 0;
}

/* Prints a rewritten head and aborts with what is wrong with it. */
static inline void fuzz_fail_head(const char *what, const char *out, size_t len)
{
    fuzz_dump("rewritten head", out, len);
    FUZZ_CHECK(0, "%s", what);
}

/* A check on the rewritten head in out and len (in scope where it is used). */
#define FUZZ_HEAD_CHECK(cond, what)                                                                          \
    do {                                                                                                     \
        if (!(cond))                                                                                         \
            fuzz_fail_head(what ": " #cond, out, len);                                                       \
    } while (0)

/*
 * Re-parses a rewritten head: checks its lines against the RFC syntax
 * (fuzz_head_syntax), then runs a fresh llhttp (a request or a response
 * parser) over it, capturing into m. Returns llhttp's result, HPE_PAUSED at
 * the end of the first head; any other result is printed.
 */
static inline enum llhttp_errno fuzz_reparse(llhttp_t *p, struct fuzz_msg *m, int response, const char *out,
                                             size_t len)
{
    static llhttp_settings_t settings[2];
    static int ready;
    if (!ready) {
        fuzz_reparse_settings(&settings[0], 0);
        fuzz_reparse_settings(&settings[1], 1);
        ready = 1;
    }
    const char *bad = fuzz_head_syntax(out, len);
    if (bad)
        fuzz_fail_head(bad, out, len);
    fuzz_msg_prepare(m, len + 1);
    llhttp_init(p, response ? HTTP_RESPONSE : HTTP_REQUEST, &settings[response ? 1 : 0]);
    p->data = m;
    enum llhttp_errno err = llhttp_execute(p, out, len);
    if (err != HPE_PAUSED)
        fprintf(stderr, "==FUZZ== re-parse: %s (%s)\n", llhttp_errno_name(err), llhttp_get_error_reason(p));
    return err;
}

#endif
