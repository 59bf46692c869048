/* log.c - timestamped, levelled lines on stderr, and a limiter for remote-triggered events. */
#include "log.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static enum log_level min_level = LOG_INFO;
static int json_lines;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_set_level(enum log_level level)
{
    min_level = level;
}

int log_enabled(enum log_level level)
{
    return level >= min_level;
}

int log_level_parse(const char *name, enum log_level *out)
{
    for (size_t i = 0; i < sizeof level_names / sizeof level_names[0]; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    return -1;
}

const char *log_level_name(enum log_level level)
{
    return level_names[level];
}

void log_set_json(int json)
{
    json_lines = json;
}

static void timestamp(char *out, size_t len)
{
    struct timespec now;
    struct tm tm;
    char stamp[24];
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, len, "%s.%03dZ", stamp, (int)(now.tv_nsec / 1000000L) % 1000);
}

/* A JSON string for s; bytes that are not valid UTF-8 become "\\xNN" so nothing is dropped. */
static json_t *json_text(const char *s)
{
    json_t *v = json_string(s);
    if (v)
        return v;
    char safe[4096];
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p && o + 5 < sizeof safe; p++) {
        if (*p < 0x80)
            safe[o++] = (char)*p;
        else
            o += (size_t)snprintf(safe + o, sizeof safe - o, "\\x%02x", *p);
    }
    safe[o] = '\0';
    return json_string(safe);
}

/* Appends value to a text line: bare when plain, else quoted with \\, \" and control bytes escaped. */
static size_t put_text_value(char *line, size_t len, size_t cap, const char *v)
{
    bool plain = *v != '\0';
    for (const unsigned char *p = (const unsigned char *)v; *p && plain; p++)
        plain = *p > ' ' && *p != '"' && *p != '=' && *p != '\\' && *p != 0x7f;
    if (plain)
        return len + (size_t)snprintf(line + len, len < cap ? cap - len : 0, "%s", v);
    if (len < cap)
        line[len++] = '"';
    for (const unsigned char *p = (const unsigned char *)v; *p && len + 5 < cap; p++) {
        if (*p == '"' || *p == '\\') {
            line[len++] = '\\';
            line[len++] = (char)*p;
        } else if (*p < ' ' || *p == 0x7f) {
            len += (size_t)snprintf(line + len, cap - len, "\\x%02x", *p);
        } else {
            line[len++] = (char)*p;
        }
    }
    if (len < cap)
        line[len++] = '"';
    return len;
}

static bool all_digits(const char *s)
{
    if (!*s || strlen(s) > 15)
        return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
    }
    return true;
}

/* Writes a whole line with one call, so lines never interleave. */
static void emit(const char *line, size_t len)
{
    fwrite(line, 1, len, stderr);
}

void log_fields(enum log_level level, const char *msg, const char *const *kv, unsigned n)
{
    if (!log_enabled(level))
        return;
    char stamp[48];
    timestamp(stamp, sizeof stamp);
    if (json_lines) {
        json_t *o = json_object();
        json_object_set_new(o, "time", json_string(stamp));
        json_object_set_new(o, "level", json_string(log_level_name(level)));
        json_object_set_new(o, "msg", json_text(msg));
        for (unsigned i = 0; i + 1 < n; i += 2) {
            const char *v = kv[i + 1] ? kv[i + 1] : "";
            json_object_set_new(o, kv[i], all_digits(v) ? json_integer(strtoll(v, NULL, 10)) : json_text(v));
        }
        char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
        json_decref(o);
        if (text) {
            size_t len = strlen(text);
            text[len] = '\n'; /* json_dumps leaves room for its NUL; the newline takes its place */
            emit(text, len + 1);
            free(text);
        }
        return;
    }
    char line[4096];
    size_t len = (size_t)snprintf(line, sizeof line, "%s %-5s %s", stamp, log_level_name(level), msg);
    for (unsigned i = 0; i + 1 < n && len < sizeof line; i += 2) {
        len += (size_t)snprintf(line + len, sizeof line - len, " %s=", kv[i]);
        len = put_text_value(line, len, sizeof line, kv[i + 1] ? kv[i + 1] : "");
    }
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    line[len++] = '\n';
    emit(line, len);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    if (!log_enabled(level))
        return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* Messages are single lines; a newline from a remote peer's text would forge a second event. */
    for (char *c = msg; *c; c++) {
        if (*c == '\n' || *c == '\r')
            *c = ' ';
    }
    log_fields(level, msg, NULL, 0);
}

int log_limiter_allow(struct log_limiter *lim, uint64_t now_ms)
{
    if (lim->window_start == 0 || now_ms - lim->window_start >= lim->window_ms) {
        log_limiter_flush(lim);
        lim->window_start = now_ms ? now_ms : 1;
        lim->in_window = 0;
    }
    if (lim->in_window < lim->burst) {
        lim->in_window++;
        return 1;
    }
    lim->suppressed++;
    return 0;
}

void log_limiter_flush(struct log_limiter *lim)
{
    if (lim->suppressed == 0)
        return;
    log_warn("%lu more %s not logged in the last %llu s", lim->suppressed, lim->what,
             (unsigned long long)(lim->window_ms / 1000));
    lim->suppressed = 0;
}

void log_access(const char *client, const char *method, const char *path, size_t path_len, int status,
                size_t bytes, int proxied, double upstream_ms)
{
    char path_text[201], status_text[8], bytes_text[24], ms_text[24];
    snprintf(path_text, sizeof path_text, "%.*s", (int)(path_len > 200 ? 200 : path_len), path);
    snprintf(status_text, sizeof status_text, "%d", status);
    snprintf(bytes_text, sizeof bytes_text, "%zu", bytes);
    if (upstream_ms < 0)
        snprintf(ms_text, sizeof ms_text, "-");
    else
        snprintf(ms_text, sizeof ms_text, "%.1f", upstream_ms);
    const char *kv[] = {"client", client,     "method",      method,
                        "path",   path_text,  "status",      status ? status_text : "-",
                        "bytes",  bytes_text, "upstream_ms", ms_text};
    /* The upstream time is a proxied request's own field. */
    log_fields(LOG_INFO, "request", kv, proxied ? 12 : 10);
}
