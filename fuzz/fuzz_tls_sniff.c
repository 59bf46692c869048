/*
 * fuzz_tls_sniff.c - tls_sniff, which tells a ClientHello from plain HTTP by
 * the first bytes on a TLS port, against its contract written out plainly:
 * TLS when the first byte is a handshake record (0x16) followed by version
 * 3.x; HTTP when 1 to 15 upper-case letters are followed by a space; MORE
 * only while too few bytes are in to tell (a prefix of either); OTHER else.
 * And the property the stream relies on, deciding on however few bytes have
 * arrived: once a prefix decides, every longer input decides the same.
 */
#include <stddef.h>
#include <stdint.h>

#include "fuzz.h"
#include "tls.h"

static int upper(unsigned char c)
{
    return c >= 'A' && c <= 'Z';
}

static enum tls_sniff reference(const unsigned char *d, size_t len)
{
    if (len == 0)
        return TLS_SNIFF_MORE;
    if (d[0] == 0x16)
        return len < 2 ? TLS_SNIFF_MORE : d[1] == 0x03 ? TLS_SNIFF_TLS : TLS_SNIFF_OTHER;
    size_t letters = 0;
    while (letters < len && upper(d[letters]))
        letters++;
    if (letters == len)
        return letters < 16 ? TLS_SNIFF_MORE : TLS_SNIFF_OTHER;
    return letters >= 1 && letters <= 15 && d[letters] == ' ' ? TLS_SNIFF_HTTP : TLS_SNIFF_OTHER;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    enum tls_sniff decided = TLS_SNIFF_MORE;
    for (size_t n = 0; n <= size; n++) {
        enum tls_sniff got = tls_sniff(data, n), want = reference(data, n);
        if (got != want)
            fuzz_dump("input", data, n);
        FUZZ_CHECK(got == want, "tls_sniff says %d for %zu bytes, the contract %d", got, n, want);
        FUZZ_CHECK(decided == TLS_SNIFF_MORE || got == decided,
                   "decided %d on a prefix, then %d at %zu bytes", decided, got, n);
        FUZZ_CHECK(got != TLS_SNIFF_MORE || n < 16, "still undecided after %zu bytes", n);
        decided = got;
    }
    return 0;
}
