/* buf.h - a growable byte buffer with a hard size cap. */
#ifndef QGS_BUF_H
#define QGS_BUF_H

#include <stddef.h>

struct buf {
    char *data;
    size_t len, cap;
    size_t limit; /* the most it may ever hold */
};

/* Prepares an empty buffer that may grow to limit bytes. Allocates nothing yet. */
void buf_init(struct buf *b, size_t limit);

/* Makes room for extra more bytes without changing the contents; returns 0, -E2BIG or -ENOMEM. */
int buf_reserve(struct buf *b, size_t extra);

/* Appends bytes; returns 0, -E2BIG past the limit (nothing appended), or -ENOMEM. */
int buf_append(struct buf *b, const void *data, size_t len);

/* Appends a NUL-terminated string; same results as buf_append. */
int buf_puts(struct buf *b, const char *s);

/* Appends formatted text; same results as buf_append. */
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Empties the buffer, keeping its memory. */
void buf_reset(struct buf *b);

/* Frees the memory; the buffer is empty and usable again afterwards. */
void buf_free(struct buf *b);

#endif
