/* parse.c - strict decimal parsing: what strtoul accepts loosely we refuse. */
#include "parse.h"

#include <errno.h>
#include <stdlib.h>

int parse_ulong(const char *s, unsigned long min, unsigned long max, unsigned long *out)
{
    /* strtoul would take a sign, leading spaces and "0x"; a port or size never has them. */
    if (*s == '\0')
        return -1;
    for (const char *c = s; *c; c++) {
        if (*c < '0' || *c > '9')
            return -1;
    }
    errno = 0;
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}
