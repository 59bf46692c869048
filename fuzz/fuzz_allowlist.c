/*
 * fuzz_allowlist.c - allowlist_parse and allowlist_match. The input up to its
 * first NUL is the ALLOWED_IPS text; the bytes after it (or, without a NUL,
 * the text's own bytes) make the peer addresses that are matched.
 *
 * Invariants: a parsed list has one entry per comma-separated item; each
 * entry's canonical form parses back to itself; each network contains its own
 * address; matching agrees with a reference matcher over the canonical forms,
 * an IPv4-mapped IPv6 peer matches exactly as its IPv4 address does, other
 * families never match, and an empty list matches nobody.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "allowlist.h"
#include "fuzz.h"

struct net {
    int family;
    uint8_t addr[16];
    unsigned prefix;
};

/* Reads a canonical "addr/prefix" back, independently of allowlist.c. */
static void canonical_parse(const char *s, struct net *n)
{
    char tmp[INET6_ADDRSTRLEN + 8];
    snprintf(tmp, sizeof tmp, "%s", s);
    char *slash = strchr(tmp, '/');
    FUZZ_CHECK(slash != NULL, "canonical form \"%s\" has no prefix", s);
    *slash = '\0';
    char *end;
    unsigned long p = strtoul(slash + 1, &end, 10);
    FUZZ_CHECK(*end == '\0' && slash[1] != '\0', "canonical form \"%s\" has a bad prefix", s);
    memset(n->addr, 0, sizeof n->addr);
    if (inet_pton(AF_INET, tmp, n->addr) == 1) {
        n->family = AF_INET;
        FUZZ_CHECK(p <= 32, "IPv4 prefix %lu in \"%s\"", p, s);
    } else {
        FUZZ_CHECK(inet_pton(AF_INET6, tmp, n->addr) == 1, "canonical form \"%s\" is not an address", s);
        n->family = AF_INET6;
        FUZZ_CHECK(p <= 128, "IPv6 prefix %lu in \"%s\"", p, s);
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        FUZZ_CHECK(!(p >= 96 && memcmp(n->addr, mapped, 12) == 0),
                   "\"%s\" is an IPv4-mapped network left as IPv6 (mapped peers match as IPv4)", s);
    }
    n->prefix = (unsigned)p;
    /* Host bits must be cleared in the canonical form. */
    size_t bytes = n->family == AF_INET ? 4 : 16;
    for (size_t bit = n->prefix; bit < bytes * 8; bit++)
        FUZZ_CHECK(!(n->addr[bit / 8] & (0x80 >> (bit % 8))), "\"%s\" has host bits set", s);
}

static int ref_contains(const struct net *n, int family, const uint8_t *addr)
{
    if (n->family != family)
        return 0;
    for (unsigned bit = 0; bit < n->prefix; bit++) {
        uint8_t m = (uint8_t)(0x80 >> (bit % 8));
        if ((addr[bit / 8] & m) != (n->addr[bit / 8] & m))
            return 0;
    }
    return 1;
}

static void sa4(struct sockaddr_storage *ss, const uint8_t *a)
{
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *s = (struct sockaddr_in *)ss;
    s->sin_family = AF_INET;
    s->sin_port = htons(1234);
    memcpy(&s->sin_addr, a, 4);
}

static void sa6(struct sockaddr_storage *ss, const uint8_t *a)
{
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in6 *s = (struct sockaddr_in6 *)ss;
    s->sin6_family = AF_INET6;
    s->sin6_port = htons(1234);
    memcpy(&s->sin6_addr, a, 16);
}

/* Matches one peer against the list and the reference; returns the result. */
static int match_both(const struct allowlist *list, const struct net *nets, size_t count,
                      const struct sockaddr_storage *ss, int ref_family, const uint8_t *ref_addr)
{
    int got = allowlist_match(list, (const struct sockaddr *)ss);
    int want = 0;
    for (size_t i = 0; i < count && !want; i++)
        want = ref_contains(&nets[i], ref_family, ref_addr);
    FUZZ_CHECK(got == want, "allowlist_match says %d, the reference %d (family %d)", got, want, ref_family);
    return got;
}

/* An IPv6 peer; one whose first 12 bytes are the mapped prefix is matched as IPv4 by design. */
static void check_v6(const struct allowlist *list, const struct net *nets, size_t count, const uint8_t *a)
{
    static const uint8_t mp[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    struct sockaddr_storage ss;
    sa6(&ss, a);
    if (memcmp(a, mp, 12) == 0)
        match_both(list, nets, count, &ss, AF_INET, a + 12);
    else
        match_both(list, nets, count, &ss, AF_INET6, a);
}

static void check_peers(const struct allowlist *list, const struct net *nets, size_t count,
                        const uint8_t *peer)
{
    struct sockaddr_storage ss;
    uint8_t mapped[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    memcpy(mapped + 12, peer, 4);

    sa4(&ss, peer);
    int v4 = match_both(list, nets, count, &ss, AF_INET, peer);
    sa6(&ss, mapped);
    int v4m = match_both(list, nets, count, &ss, AF_INET, peer);
    FUZZ_CHECK(v4 == v4m, "::ffff:a.b.c.d matched %d but a.b.c.d %d", v4m, v4);

    check_v6(list, nets, count, peer);

    struct sockaddr_un un;
    memset(&un, 0, sizeof un);
    un.sun_family = AF_UNIX;
    FUZZ_CHECK(allowlist_match(list, (const struct sockaddr *)&un) == 0, "an AF_UNIX peer matched");
    if (count == 0) {
        sa4(&ss, peer);
        FUZZ_CHECK(allowlist_match(list, (const struct sockaddr *)&ss) == 0, "an empty list matched");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, '\0', size);
    size_t text_len = nul ? (size_t)(nul - data) : size;
    char *text = malloc(text_len + 1);
    if (!text)
        return 0;
    memcpy(text, data, text_len);
    text[text_len] = '\0';

    uint8_t peer[16] = {0};
    if (nul)
        memcpy(peer, nul + 1, size - text_len - 1 < 16 ? size - text_len - 1 : 16);
    else
        memcpy(peer, data, size < 16 ? size : 16);

    struct allowlist *list = NULL;
    char err[256];
    memset(err, 0, sizeof err);
    if (allowlist_parse(text, &list, err, sizeof err) != 0) {
        FUZZ_CHECK(list == NULL, "a failed parse set *out");
        FUZZ_CHECK(memchr(err, '\0', sizeof err) && err[0] != '\0', "a failed parse without a message");
        free(text);
        return 0;
    }
    FUZZ_CHECK(list != NULL, "parse succeeded without a list");

    /* Blank (spaces and tabs) means empty; otherwise one entry per comma-separated item. */
    size_t count = allowlist_count(list);
    size_t blank = strspn(text, " \t") == text_len;
    size_t commas = 0;
    for (size_t i = 0; i < text_len; i++)
        commas += text[i] == ',';
    FUZZ_CHECK(count == (blank ? 0 : commas + 1), "%zu entries from %zu commas", count, commas);

    struct net *nets = calloc(count ? count : 1, sizeof *nets);
    FUZZ_CHECK(nets != NULL, "out of memory");
    for (size_t i = 0; i < count; i++) {
        char canon[INET6_ADDRSTRLEN + 8], again[INET6_ADDRSTRLEN + 8];
        allowlist_entry_format(list, i, canon, sizeof canon);
        canonical_parse(canon, &nets[i]);

        struct allowlist *one = NULL;
        char err2[256];
        FUZZ_CHECK(allowlist_parse(canon, &one, err2, sizeof err2) == 0, "canonical \"%s\" refused: %s",
                   canon, err2);
        FUZZ_CHECK(allowlist_count(one) == 1, "canonical \"%s\" gave %zu entries", canon,
                   allowlist_count(one));
        allowlist_entry_format(one, 0, again, sizeof again);
        FUZZ_CHECK(strcmp(canon, again) == 0, "\"%s\" re-parsed to \"%s\"", canon, again);

        /* A network contains its own address, in the full list and alone. */
        struct sockaddr_storage ss;
        if (nets[i].family == AF_INET)
            sa4(&ss, nets[i].addr);
        else
            sa6(&ss, nets[i].addr);
        static const uint8_t mp[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        int is_mapped = nets[i].family == AF_INET6 && memcmp(nets[i].addr, mp, 12) == 0;
        if (!is_mapped) {
            FUZZ_CHECK(allowlist_match(one, (const struct sockaddr *)&ss) == 1,
                       "\"%s\" misses its own address", canon);
            FUZZ_CHECK(allowlist_match(list, (const struct sockaddr *)&ss) == 1,
                       "the list misses \"%s\"'s address", canon);
        }
        allowlist_free(one);
    }

    check_peers(list, nets, count, peer);
    /* And the peer bytes read as an address close to each network, to reach the prefix edges. */
    for (size_t i = 0; i < count && i < 8; i++) {
        uint8_t near[16];
        memcpy(near, nets[i].addr, 16);
        unsigned bit = nets[i].prefix ? nets[i].prefix - 1 : 0;
        near[bit / 8] ^= (uint8_t)(peer[15] & 1 ? 0x80 >> (bit % 8) : 0);
        if (nets[i].family == AF_INET) {
            uint8_t v4[16] = {0};
            memcpy(v4, near, 4);
            check_peers(list, nets, count, v4);
        } else {
            check_v6(list, nets, count, near);
        }
    }

    free(nets);
    allowlist_free(list);
    free(text);
    return 0;
}
