/* portfile.h - parsing Gluetun's forwarded-port file. Pure, no I/O. */
#ifndef QGS_PORTFILE_H
#define QGS_PORTFILE_H

#include <stddef.h>
#include <stdint.h>

/* The most of the file that is read; Gluetun writes at most five ports. */
#define PORTFILE_MAX 4096

enum portfile_result {
    PORTFILE_PORT,    /* a valid port */
    PORTFILE_EMPTY,   /* only whitespace: forwarding is down, or the file is being rewritten */
    PORTFILE_INVALID, /* anything else: ignored, with a reason */
};

/*
 * Parses the file's contents: ports separated by newlines (Gluetun sorts them
 * and writes no trailing newline); the first one counts. Each line must be
 * ASCII digits in 1..65535, surrounding whitespace allowed. Returns the result
 * and, for PORTFILE_PORT, the port in *port; for PORTFILE_INVALID a reason in err.
 */
enum portfile_result portfile_parse(const char *data, size_t len, uint16_t *port, char *err, size_t errlen);

#endif
