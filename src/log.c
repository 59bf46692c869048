/* log.c - timestamped, levelled lines on stderr, and a limiter for remote-triggered events. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static enum log_level min_level = LOG_INFO;

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

void log_msg(enum log_level level, const char *fmt, ...)
{
    if (!log_enabled(level))
        return;

    struct timespec now;
    struct tm tm;
    char stamp[32];
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);

    /* Build the line first and write it with one call, so lines never interleave. */
    char line[2048];
    int n =
        snprintf(line, sizeof line, "%s.%03ldZ %-5s ", stamp, now.tv_nsec / 1000000L, log_level_name(level));
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    line[len++] = '\n';
    fwrite(line, 1, len, stderr);
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
