/*
 * fuzz_portfile.c - portfile_parse against a reference reading of its contract:
 * ports one per line, each ASCII digits in 1..65535 without leading zeros, with
 * surrounding whitespace, the first one counts, only whitespace means empty, anything else
 * is invalid with a message that fits the caller's buffer.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "portfile.h"

static int is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/* The contract, written out plainly: returns the expected result and the first port. */
static enum portfile_result reference(const unsigned char *d, size_t len, uint16_t *first)
{
    size_t i = 0;
    while (i < len && is_space(d[i]))
        i++;
    if (i == len)
        return PORTFILE_EMPTY;
    *first = 0;
    size_t start = 0;
    while (start <= len) {
        size_t end = start;
        while (end < len && d[end] != '\n')
            end++;
        size_t a = start, b = end;
        while (a < b && is_space(d[a]))
            a++;
        while (b > a && is_space(d[b - 1]))
            b--;
        if (a < b) {
            if (b - a > 5 || (b - a > 1 && d[a] == '0'))
                return PORTFILE_INVALID;
            unsigned v = 0;
            for (size_t k = a; k < b; k++) {
                if (d[k] < '0' || d[k] > '9')
                    return PORTFILE_INVALID;
                v = v * 10 + (unsigned)(d[k] - '0');
            }
            if (v < 1 || v > 65535)
                return PORTFILE_INVALID;
            if (*first == 0)
                *first = (uint16_t)v;
        }
        start = end + 1;
    }
    return PORTFILE_PORT;
}

/* Checks that err holds a NUL within errlen and nothing was written past errlen. */
static void check_err(const char *err, size_t errlen, size_t bufsize, int must_say_something)
{
    FUZZ_CHECK(memchr(err, '\0', errlen) != NULL, "err is not NUL-terminated within errlen %zu", errlen);
    for (size_t k = errlen; k < bufsize; k++)
        FUZZ_CHECK(err[k] == 'Z', "portfile_parse wrote past errlen %zu at %zu", errlen, k);
    if (must_say_something && errlen > 1)
        FUZZ_CHECK(err[0] != '\0', "invalid without a reason");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size copy, so that ASan sees any read past len. */
    char *copy = malloc(size ? size : 1);
    if (!copy)
        return 0;
    if (size)
        memcpy(copy, data, size);

    uint16_t port = 0, want_port = 0;
    char err[256];
    memset(err, 'Z', sizeof err);
    enum portfile_result r = portfile_parse(copy, size, &port, err, sizeof err);
    enum portfile_result want = reference(data, size, &want_port);

    FUZZ_CHECK(r == want, "portfile_parse returned %d, the contract says %d", (int)r, (int)want);
    if (r == PORTFILE_PORT) {
        FUZZ_CHECK(port >= 1, "port %u out of 1..65535", port);
        FUZZ_CHECK(port == want_port, "port %u, but the first non-blank line is %u", port, want_port);
    } else if (r == PORTFILE_INVALID) {
        check_err(err, sizeof err, sizeof err, 1);
    }

    /* The same with a tiny message buffer: the message is cut, never overflowed. */
    size_t errlen = 1 + (size_t)(fuzz_hash(data, size) % 24);
    char small[32];
    memset(small, 'Z', sizeof small);
    uint16_t port2 = 0;
    enum portfile_result r2 = portfile_parse(copy, size, &port2, small, errlen);
    FUZZ_CHECK(r2 == r, "result depends on errlen: %d vs %d", (int)r2, (int)r);
    if (r2 == PORTFILE_PORT)
        FUZZ_CHECK(port2 == port, "port depends on errlen");
    if (r2 == PORTFILE_INVALID)
        check_err(small, errlen, sizeof small, 1);

    free(copy);
    return 0;
}
