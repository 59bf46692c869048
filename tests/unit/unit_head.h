/* unit_head.h - for the unit tests: a message head built as llhttp would deliver it. */
#ifndef QGS_UNIT_HEAD_H
#define QGS_UNIT_HEAD_H

#include <string.h>

#include "http.h"

/*
 * Fills h (initialized by the caller) with url (or a response's reason) and the fields in fields,
 * NULL-terminated name/value pairs. Returns 0 or the first capture error.
 */
static inline int unit_head(struct http_head *h, const char *url, const char *const *fields)
{
    int rc = http_head_add_url(h, url, strlen(url));
    for (size_t i = 0; rc == 0 && fields[i]; i += 2) {
        rc = http_head_add_field(h, fields[i], strlen(fields[i]));
        if (rc == 0)
            rc = http_head_add_value(h, fields[i + 1], strlen(fields[i + 1]));
    }
    return rc;
}

#endif
