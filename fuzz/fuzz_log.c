/*
 * fuzz_log.c - log lines carrying text a client controls (the access log's
 * path, the request line in denial messages), in both formats.
 *
 * The input is NUL-separated: a message, then up to 6 values. The values go
 * through log_fields under the access log's keys (keys and messages of
 * log_fields are literals in the daemon), and the message, with the first
 * value, through log_msg as a client's text in a format string; each once as
 * text and once as JSON, with stderr captured.
 *
 * Invariants: every event is exactly one line; a JSON line is one JSON object
 * holding time, level, msg and every field (a client cannot make a field, or
 * the message, disappear by sending bytes that are not UTF-8), with a field's
 * value unchanged when it is valid UTF-8; a text line read back as logfmt
 * (key=value, or key="..." with \" and \\ escapes) gives the same keys in the
 * same order, so a value cannot forge another field.
 */
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "log.h"

#define MAX_PAIRS 6

static const char *const keys[MAX_PAIRS] = {"client", "method", "path", "status", "bytes", "upstream_ms"};

/* Runs fn with stderr going to a memory buffer; returns the bytes written (owned by the caller). */
static char *capture(void (*fn)(void *), void *arg, size_t *len)
{
    char *out = NULL;
    FILE *mem = open_memstream(&out, len);
    FUZZ_CHECK(mem != NULL, "open_memstream failed");
    FILE *saved = stderr;
    stderr = mem;
    fn(arg);
    stderr = saved;
    fclose(mem);
    return out;
}

struct event {
    const char *msg;
    const char *kv[2 * MAX_PAIRS];
    unsigned n;
};

/* The daemon's log_fields messages are literals; the fields carry the client's text. */
static void run_fields(void *arg)
{
    struct event *e = arg;
    log_fields(LOG_WARN, "request", e->kv, e->n);
}

static void run_msg(void *arg)
{
    struct event *e = arg;
    log_msg(LOG_WARN, "denied %s: GET %s", e->n ? e->kv[1] : "", e->msg);
}

static bool valid_utf8(const char *s)
{
    json_t *j = json_string(s);
    json_decref(j);
    return j != NULL;
}

static void check_one_line(const char *out, size_t len, const char *what)
{
    FUZZ_CHECK(len > 0 && out[len - 1] == '\n', "%s: the line does not end in a newline", what);
    if (memchr(out, '\n', len - 1) || memchr(out, '\r', len)) {
        fuzz_dump("log output", out, len);
        FUZZ_CHECK(0, "%s: one event wrote more than one line", what);
    }
}

static void check_json(const char *out, size_t len, const struct event *e, bool fields)
{
    check_one_line(out, len, "json");
    json_error_t err;
    json_t *o = json_loadb(out, len, 0, &err);
    if (!o || !json_is_object(o)) {
        fuzz_dump("log output", out, len);
        FUZZ_CHECK(0, "the JSON line does not parse: %s", err.text);
    }
    FUZZ_CHECK(json_is_string(json_object_get(o, "time")) && json_is_string(json_object_get(o, "level")),
               "time or level missing");
    json_t *msg = json_object_get(o, "msg");
    if (!json_is_string(msg)) {
        fuzz_dump("log output", out, len);
        FUZZ_CHECK(0, "the message is missing from the JSON line");
    }
    if (fields)
        FUZZ_CHECK(strcmp(json_string_value(msg), "request") == 0, "the message changed");
    for (unsigned i = 0; fields && i + 1 < e->n; i += 2) {
        json_t *v = json_object_get(o, e->kv[i]);
        if (!v) {
            fuzz_dump("log output", out, len);
            FUZZ_CHECK(0, "field %s is missing from the JSON line", e->kv[i]);
        }
        if (json_is_string(v) && valid_utf8(e->kv[i + 1]))
            FUZZ_CHECK(strcmp(json_string_value(v), e->kv[i + 1]) == 0, "field %s changed", e->kv[i]);
    }
    json_decref(o);
}

/* Reads the fields of a logfmt line from start (a ' '); returns true when they are exactly the event's. */
static bool fields_read_back(const char *q, const char *end, const struct event *e)
{
    for (unsigned i = 0; i + 1 < e->n; i += 2) {
        size_t klen = strlen(e->kv[i]);
        if ((size_t)(end - q) < klen + 2 || *q != ' ' || memcmp(q + 1, e->kv[i], klen) != 0 ||
            q[klen + 1] != '=')
            return false;
        q += klen + 2;
        if (q < end && *q == '"') {
            for (q++; q < end && *q != '"'; q++) {
                if (*q == '\\')
                    q++;
            }
            if (q >= end)
                return false;
            q++;
        } else {
            while (q < end && *q != ' ' && *q != '"')
                q++;
        }
    }
    return q == end;
}

/* Reads "time level msg k=v k="v" ..." back: the message is free text, so try each " key=" as the start. */
static void check_text(const char *out, size_t len, const struct event *e)
{
    check_one_line(out, len, "text");
    if (e->n == 0)
        return;
    char first[32];
    snprintf(first, sizeof first, " %s=", e->kv[0]);
    const char *end = out + len - 1;
    for (const char *start = strstr(out, first); start && start < end; start = strstr(start + 1, first)) {
        if (fields_read_back(start, end, e))
            return;
    }
    fuzz_dump("log output", out, len);
    FUZZ_CHECK(0, "the text line does not read back as the event's fields (a value forged or broke one)");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* NUL-separated pieces, each NUL-terminated in a copy. */
    char *copy = malloc(size + 1);
    FUZZ_CHECK(copy != NULL, "out of memory");
    memcpy(copy, data, size);
    copy[size] = '\0';
    struct event e = {.msg = copy};
    const char *p = copy, *end = copy + size;
    p += strlen(p) + 1;
    while (p <= end && e.n < 2 * MAX_PAIRS) {
        e.kv[e.n] = keys[e.n / 2];
        e.kv[e.n + 1] = p;
        e.n += 2;
        p += strlen(p) + 1;
    }
    /* The text line is capped at 4 KiB; longer events are cut, which this driver does not judge. */
    size_t total = 64;
    for (unsigned i = 0; i < e.n; i++)
        total += 4 * strlen(e.kv[i]) + 4; /* escaping writes a control byte as \xNN */

    for (int json = 0; json <= 1; json++) {
        log_set_json(json);
        size_t len;
        char *out = capture(run_fields, &e, &len);
        if (json)
            check_json(out, len, &e, true);
        else if (total < 4000)
            check_text(out, len, &e);
        else
            check_one_line(out, len, "text");
        free(out);
        out = capture(run_msg, &e, &len);
        if (json)
            check_json(out, len, &e, false);
        else
            check_one_line(out, len, "text");
        free(out);
    }
    free(copy);
    return 0;
}
