/*
 * fuzz_chunked.c - chunked request bodies, as the daemon collects them for
 * qBittorrent (which reads only Content-Length bodies): llhttp decodes, on_body
 * appends to a capped struct buf.
 *
 * The input's first byte chooses how the stream is cut into reads (piece sizes
 * from a PRNG it seeds, up to a maximum it picks); the rest is the body that
 * follows "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".
 * As server.c does, src/http.c's strict chunk_check_feed sees each piece of
 * the body before llhttp, and a piece it refuses never reaches llhttp.
 *
 * The decoded body, and where the message ends, must equal what a plain
 * reference de-chunker written from RFC 9112 section 7.1 computes whenever the
 * pair accepts the bytes, and must be a matching prefix while the body is
 * incomplete; llhttp and chunk_check must end the body at the same byte. On
 * its own, chunk_check must agree with the reference on where a body ends,
 * whatever the pieces. With FUZZ_CHUNKED_STRICT=1 in the environment, refusing
 * a body the RFC allows is reported too (a compatibility question, not a
 * safety one, so it is off by default).
 */
#include <llhttp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "fuzz.h"
#include "http.h"

#define BODY_LIMIT (1024 * 1024)

static const char prefix[] = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";

/* ---- the reference ---- */

enum ref_result { REF_COMPLETE, REF_INCOMPLETE, REF_INVALID };

static bool is_ows(uint8_t c)
{
    return c == ' ' || c == '\t';
}

static int hexval(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Reading past the end means the body is incomplete, not invalid. */
#define NEED(k)                                                                                              \
    do {                                                                                                     \
        if ((k) >= n)                                                                                        \
            return REF_INCOMPLETE;                                                                           \
    } while (0)

/*
 * chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] ).
 * llhttp reads extensions more loosely than the grammar (a '"' inside a token
 * value, DEL, ...), and the daemon drops them, so the reference takes any
 * bytes up to the CR but a bare LF: what matters is that nothing inside an
 * extension (quoted or not) moves where the chunk line ends.
 */
static enum ref_result ref_ext(const uint8_t *d, size_t n, size_t *pos)
{
    size_t i = *pos;
    size_t before = i;
    while (i < n && is_ows(d[i]))
        i++;
    NEED(i);
    if (d[i] != ';') {
        *pos = before; /* BWS only ever precedes a ';' */
        return REF_COMPLETE;
    }
    for (; i < n && d[i] != '\r'; i++) {
        if (d[i] == '\n')
            return REF_INVALID;
    }
    NEED(i);
    *pos = i;
    return REF_COMPLETE;
}

static enum ref_result ref_crlf(const uint8_t *d, size_t n, size_t *pos)
{
    NEED(*pos);
    if (d[*pos] != '\r')
        return REF_INVALID;
    NEED(*pos + 1);
    if (d[*pos + 1] != '\n')
        return REF_INVALID;
    *pos += 2;
    return REF_COMPLETE;
}

static enum ref_result ref_dechunk(const uint8_t *d, size_t n, struct buf *body, size_t *consumed)
{
    size_t i = 0;
    enum ref_result r;
    for (;;) {
        size_t start = i;
        uint64_t size = 0;
        while (i < n && hexval(d[i]) >= 0) {
            if (size > (UINT64_MAX >> 4))
                return REF_INVALID;
            size = size * 16 + (uint64_t)hexval(d[i]);
            i++;
        }
        NEED(i);
        if (i == start)
            return REF_INVALID;
        if ((r = ref_ext(d, n, &i)) != REF_COMPLETE)
            return r;
        if ((r = ref_crlf(d, n, &i)) != REF_COMPLETE)
            return r;
        if (size == 0)
            break;
        if (n - i < size) {
            buf_append(body, d + i, n - i);
            return REF_INCOMPLETE;
        }
        buf_append(body, d + i, (size_t)size);
        i += (size_t)size;
        if ((r = ref_crlf(d, n, &i)) != REF_COMPLETE)
            return r;
    }
    /*
     * trailer-section CRLF. The daemon drops trailers, and llhttp reads them as
     * leniently as header lines (an empty name, say); so here, as with
     * extensions, a trailer line is any bytes but a bare LF up to its CRLF.
     */
    for (;;) {
        NEED(i);
        if (d[i] == '\r') {
            if ((r = ref_crlf(d, n, &i)) != REF_COMPLETE)
                return r;
            *consumed = i;
            return REF_COMPLETE;
        }
        while (i < n && d[i] != '\r') {
            if (d[i] == '\n')
                return REF_INVALID;
            i++;
        }
        if ((r = ref_crlf(d, n, &i)) != REF_COMPLETE)
            return r;
    }
}

/* ---- llhttp, as the daemon uses it ---- */

struct collect {
    struct buf body;
    bool complete, too_large;
    size_t end; /* offset in the stream where the message ended */
};

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    struct collect *c = p->data;
    if (buf_append(&c->body, at, len) != 0) {
        c->too_large = true;
        return HPE_USER;
    }
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    struct collect *c = p->data;
    c->complete = true;
    return HPE_PAUSED;
}

static llhttp_settings_t settings;
static bool strict;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    llhttp_settings_init(&settings);
    settings.on_body = on_body;
    settings.on_message_complete = on_message_complete;
    const char *s = getenv("FUZZ_CHUNKED_STRICT");
    strict = s && strcmp(s, "1") == 0;
    return 0;
}

static void report(const char *what, const uint8_t *body, size_t n, const struct collect *c,
                   const struct buf *ref)
{
    fuzz_dump("chunked body", body, n);
    fuzz_dump("llhttp decoded", c->body.data, c->body.len);
    fuzz_dump("reference decoded", ref->data, ref->len);
    FUZZ_CHECK(0, "%s", what);
}

/* Runs chunk_check_feed over body in pieces from the seed; returns its result and the end in *end. */
static int check_in_pieces(const uint8_t *body, size_t n, uint64_t seed, size_t max_piece, size_t *end)
{
    struct chunk_check cc;
    memset(&cc, 0, sizeof cc);
    size_t off = 0;
    while (off < n) {
        size_t piece = 1 + (size_t)(fuzz_rand(&seed) % max_piece);
        if (piece > n - off)
            piece = n - off;
        size_t used = 0;
        int rc = chunk_check_feed(&cc, (const char *)body + off, piece, &used);
        if (rc != 0) {
            FUZZ_CHECK(rc == -1 || (rc == 1 && used >= 1 && used <= piece),
                       "chunk_check_feed: %d, used %zu of %zu", rc, used, piece);
            *end = off + used;
            return rc;
        }
        off += piece;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const size_t max_pieces[] = {1, 2, 3, 4, 7, 16, 64, 1u << 20};
    uint64_t seed = ((uint64_t)data[0] << 32 | size) * 0x9E3779B97F4A7C15ULL | 1;
    size_t max_piece = max_pieces[data[0] & 7];
    const uint8_t *body = data + 1;
    size_t n = size - 1;

    size_t plen = sizeof prefix - 1, total = plen + n;
    char *stream = malloc(total);
    FUZZ_CHECK(stream != NULL, "out of memory");
    memcpy(stream, prefix, plen);
    memcpy(stream + plen, body, n);

    /* The reference, and src/http.c's chunk_check on its own (in one piece and in pieces). */
    struct buf ref;
    buf_init(&ref, SIZE_MAX);
    size_t consumed = 0;
    enum ref_result r = ref_dechunk(body, n, &ref, &consumed);
    size_t check_end = 0, check_end2 = 0;
    int check = check_in_pieces(body, n, 1, n ? n : 1, &check_end);
    int check2 = check_in_pieces(body, n, seed, max_piece, &check_end2);
    struct collect c = {0};
    if (check != check2 || (check == 1 && check_end != check_end2)) {
        fprintf(stderr, "==FUZZ== chunk_check: %d at %zu in one piece, %d at %zu in pieces\n", check,
                check_end, check2, check_end2);
        report("chunk_check_feed depends on how the body was split", body, n, &c, &ref);
    }
    if (check == 1 && r == REF_INCOMPLETE)
        report("chunk_check_feed ended a body that is not complete", body, n, &c, &ref);
    if (check == 1 && r == REF_COMPLETE && check_end != consumed)
        report("chunk_check_feed and the reference end the body at different bytes", body, n, &c, &ref);
    if (check == 0 && r == REF_COMPLETE)
        report("chunk_check_feed is still waiting after a complete body", body, n, &c, &ref);
    if (strict && check == -1 && r != REF_INVALID)
        report("chunk_check_feed refused a body the RFC allows", body, n, &c, &ref);

    /* llhttp with chunk_check beside it, fed as server.c's conn_feed feeds them. */
    buf_init(&c.body, BODY_LIMIT);
    llhttp_t p;
    llhttp_init(&p, HTTP_REQUEST, &settings);
    p.data = &c;
    enum llhttp_errno err = HPE_OK;
    struct chunk_check cc;
    memset(&cc, 0, sizeof cc);
    bool checking = true, refused = false;
    size_t off = 0, checked_end = 0;
    while (off < total && err == HPE_OK && !refused) {
        size_t piece = 1 + (size_t)(fuzz_rand(&seed) % max_piece);
        if (piece > total - off)
            piece = total - off;
        if (off < plen && off + piece > plen)
            piece = plen - off; /* the head goes to llhttp alone */
        if (off >= plen && checking) {
            size_t used = 0;
            int rc = chunk_check_feed(&cc, stream + off, piece, &used);
            if (rc < 0)
                refused = true;
            if (rc == 1) {
                checking = false;
                checked_end = off + used;
            }
        }
        if (refused)
            break;
        err = llhttp_execute(&p, stream + off, piece);
        if (err == HPE_PAUSED && c.complete)
            c.end = (size_t)(llhttp_get_error_pos(&p) - stream);
        off += piece;
    }

    if (!c.too_large && !refused) {
        if (c.complete) {
            if (checking)
                report("llhttp ended the body where chunk_check has not", body, n, &c, &ref);
            if (checked_end != c.end)
                report("llhttp and chunk_check end the body at different bytes", body, n, &c, &ref);
            if (r != REF_COMPLETE)
                report(r == REF_INVALID ? "a body the RFC does not allow got through"
                                        : "llhttp ended a body that is not complete",
                       body, n, &c, &ref);
            if (c.end != plen + consumed)
                report("llhttp and the reference end the message at different bytes", body, n, &c, &ref);
            if (!fuzz_same(c.body.data, c.body.len, ref.data, ref.len))
                report("llhttp decoded a different body", body, n, &c, &ref);
        } else if (err == HPE_OK) {
            /* Still waiting for more: so far the same bytes, and the reference agrees it is unfinished. */
            if (!checking)
                report("chunk_check ended the body where llhttp has not", body, n, &c, &ref);
            if (r == REF_COMPLETE)
                report("llhttp is still waiting after a complete body", body, n, &c, &ref);
            if (r == REF_INVALID)
                report("bytes the RFC does not allow got through", body, n, &c, &ref);
            if (!fuzz_same(c.body.data, c.body.len, ref.data, ref.len))
                report("llhttp delivered different bytes so far", body, n, &c, &ref);
        } else if (strict && r != REF_INVALID) {
            fprintf(stderr, "==FUZZ== llhttp: %s (%s)\n", llhttp_errno_name(err),
                    llhttp_get_error_reason(&p));
            report("llhttp refused a body the RFC allows", body, n, &c, &ref);
        }
    }

    buf_free(&ref);
    buf_free(&c.body);
    free(stream);
    return 0;
}
