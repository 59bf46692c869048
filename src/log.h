/*
 * log.h - one line per event on stderr: time, level, message and the event's
 * fields, as text ("time level message key=value") or as one JSON object per
 * line (LOG_FORMAT=json, keys time, level, msg and the fields). Never secrets.
 */
#ifndef QGS_LOG_H
#define QGS_LOG_H

#include <stddef.h>
#include <stdint.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Sets the lowest level that is written; the default is LOG_INFO. */
void log_set_level(enum log_level level);

/* Returns nonzero when a message at this level would be written. */
int log_enabled(enum log_level level);

/* Parses "debug", "info", "warn" or "error"; returns 0, or -1 for anything else. */
int log_level_parse(const char *name, enum log_level *out);

/* Returns the lower-case name of a level. */
const char *log_level_name(enum log_level level);

/* Selects JSON lines (1) or text lines (0, the default). */
void log_set_json(int json);

/* Writes one line: "2026-11-26T02:00:00.123Z info  message". */
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Writes one event with fields: kv holds n keys and values, alternating. A
 * value made of digits only is written as a JSON number, anything else as a
 * string; in text lines values with spaces or quotes are quoted.
 */
void log_fields(enum log_level level, const char *msg, const char *const *kv, unsigned n);

/*
 * The access log's one event per request (ACCESS_LOG): client, method, path
 * (path_len bytes, cut at 200), status (0 for none: "-"), bytes sent and, when
 * proxied, how long qBittorrent took to answer (upstream_ms < 0: no answer, "-").
 */
void log_access(const char *client, const char *method, const char *path, size_t path_len, int status,
                size_t bytes, int proxied, double upstream_ms);

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

/*
 * A limiter for messages a remote peer can cause (denials, bad requests), so a
 * scanner cannot fill a disk. Within each window the first `burst` events are
 * logged; the rest are counted and reported in one summary line when the next
 * window's first event arrives (or at log_limiter_flush).
 */
struct log_limiter {
    const char *what;   /* e.g. "denied requests", used in the summary */
    uint64_t window_ms; /* window length */
    unsigned burst;     /* events logged in full per window */
    uint64_t window_start;
    unsigned in_window;
    unsigned long suppressed;
};

/* Returns 1 when the caller should log this event in full, 0 when it was counted instead. */
int log_limiter_allow(struct log_limiter *lim, uint64_t now_ms);

/* Logs the summary of suppressed events, if any, and resets the count. */
void log_limiter_flush(struct log_limiter *lim);

#endif
