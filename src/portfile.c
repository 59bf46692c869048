/* portfile.c - strict parsing of Gluetun's forwarded-port file. */
#include "portfile.h"

#include <stdio.h>
#include <string.h>

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/* Parses one line (already without its newline) into a port; returns 0 or -1. */
static int parse_line(const char *s, size_t len, uint16_t *port)
{
    while (len > 0 && is_space(*s)) {
        s++;
        len--;
    }
    while (len > 0 && is_space(s[len - 1]))
        len--;
    /* Gluetun writes plain decimal; a leading zero (00080, 040000) is not a port it wrote. */
    if (len == 0 || len > 5 || (len > 1 && s[0] == '0'))
        return -1;
    unsigned long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    if (v < 1 || v > 65535)
        return -1;
    *port = (uint16_t)v;
    return 0;
}

/* Copies data into out for a message, with control bytes escaped. */
static void quote(const char *data, size_t len, char *out, size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < len && o + 5 < outlen; i++) {
        unsigned char c = (unsigned char)data[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, outlen - o, c == '\n' ? "\\n" : "\\x%02x", c);
    }
    if (o >= outlen)
        o = outlen - 1;
    out[o] = '\0';
}

enum portfile_result portfile_parse(const char *data, size_t len, uint16_t *port, char *err, size_t errlen)
{
    size_t i = 0;
    while (i < len && is_space(data[i]))
        i++;
    if (i == len)
        return PORTFILE_EMPTY;

    /* Every line must be a port: a file with junk in it is not trusted for its first line either. */
    uint16_t first = 0;
    const char *p = data, *end = data + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *line_end = nl ? nl : end;
        uint16_t v;
        const char *q = p;
        while (q < line_end && is_space(*q))
            q++;
        if (q < line_end && parse_line(p, (size_t)(line_end - p), &v) != 0) {
            char shown[96];
            quote(data, len > 40 ? 40 : len, shown, sizeof shown);
            snprintf(err, errlen,
                     "expected port numbers 1..65535 without leading zeros, one per line; got \"%s\"%s",
                     shown, len > 40 ? "..." : "");
            return PORTFILE_INVALID;
        }
        if (q < line_end && first == 0)
            first = v;
        p = nl ? nl + 1 : end;
    }
    *port = first;
    return PORTFILE_PORT;
}
