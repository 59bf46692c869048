/* allowlist.c - CIDR parsing into address/prefix pairs and a pure matcher. */
#include "allowlist.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parse.h"

struct network {
    int family;       /* AF_INET or AF_INET6 */
    uint8_t addr[16]; /* network address, host bits cleared */
    unsigned prefix;  /* 0..32 or 0..128 */
};

struct allowlist {
    size_t count;
    struct network nets[];
};

static const uint8_t v4mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static void mask_host_bits(uint8_t *addr, size_t bytes, unsigned prefix)
{
    for (size_t i = 0; i < bytes; i++) {
        unsigned bit = (unsigned)i * 8;
        if (bit >= prefix)
            addr[i] = 0;
        else if (prefix - bit < 8)
            addr[i] &= (uint8_t)(0xff << (8 - (prefix - bit)));
    }
}

static int prefix_match(const uint8_t *a, const uint8_t *net, unsigned prefix)
{
    unsigned full = prefix / 8, rest = prefix % 8;
    if (memcmp(a, net, full) != 0)
        return 0;
    if (rest == 0)
        return 1;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (a[full] & mask) == net[full];
}

/* Parses one trimmed, non-empty entry. */
static int parse_entry(const char *entry, struct network *net, char *err, size_t errlen)
{
    char buf[INET6_ADDRSTRLEN + 8];
    size_t entry_len = strlen(entry);
    if (entry_len >= sizeof buf) {
        snprintf(err, errlen, "\"%s\" is too long to be an IP address or CIDR", entry);
        return -1;
    }
    memcpy(buf, entry, entry_len + 1);

    char *slash = strchr(buf, '/');
    const char *prefix_text = NULL;
    if (slash) {
        *slash = '\0';
        prefix_text = slash + 1;
    }
    char *addr_text = buf;
    int bracketed = 0;
    if (addr_text[0] == '[') {
        size_t len = strlen(addr_text);
        if (len < 2 || addr_text[len - 1] != ']') {
            snprintf(err, errlen, "\"%s\" has an unmatched '['", entry);
            return -1;
        }
        addr_text[len - 1] = '\0';
        addr_text++;
        bracketed = 1;
    }
    if (strchr(addr_text, '%')) {
        snprintf(err, errlen, "\"%s\": IPv6 zone ids are not supported", entry);
        return -1;
    }

    unsigned max_prefix;
    if (!bracketed && inet_pton(AF_INET, addr_text, net->addr) == 1) {
        net->family = AF_INET;
        max_prefix = 32;
    } else if (inet_pton(AF_INET6, addr_text, net->addr) == 1) {
        net->family = AF_INET6;
        max_prefix = 128;
    } else {
        snprintf(err, errlen, "\"%s\" is not an IP address or CIDR (host names are not allowed)", entry);
        return -1;
    }

    net->prefix = max_prefix;
    if (prefix_text) {
        unsigned long p;
        if (parse_ulong(prefix_text, 0, max_prefix, &p) != 0) {
            snprintf(err, errlen, "\"%s\" has an invalid prefix length (expected 0..%u)", entry, max_prefix);
            return -1;
        }
        net->prefix = (unsigned)p;
    }

    /* A mapped entry (::ffff:10.0.0.0/104) means the IPv4 network, since mapped peers match as IPv4. */
    if (net->family == AF_INET6 && net->prefix >= 96 && memcmp(net->addr, v4mapped_prefix, 12) == 0) {
        memmove(net->addr, net->addr + 12, 4);
        net->family = AF_INET;
        net->prefix -= 96;
    }
    mask_host_bits(net->addr, net->family == AF_INET ? 4 : 16, net->prefix);
    return 0;
}

int allowlist_parse(const char *text, struct allowlist **out, char *err, size_t errlen)
{
    size_t entries = 1;
    for (const char *c = text; *c; c++)
        entries += (*c == ',');

    struct allowlist *list = calloc(1, sizeof *list + entries * sizeof list->nets[0]);
    char *copy = strdup(text);
    int rc = -1;
    if (!list || !copy) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }

    /* Blank text means an empty list; otherwise every comma-separated entry must be valid. */
    const char *t = text;
    while (*t == ' ' || *t == '\t')
        t++;
    if (*t == '\0') {
        rc = 0;
        goto out;
    }

    char *cursor = copy;
    for (;;) {
        char *comma = strchr(cursor, ',');
        if (comma)
            *comma = '\0';
        char *entry = cursor;
        while (*entry == ' ' || *entry == '\t')
            entry++;
        char *end = entry + strlen(entry);
        while (end > entry && (end[-1] == ' ' || end[-1] == '\t'))
            *--end = '\0';
        if (*entry == '\0') {
            snprintf(err, errlen, "empty entry in \"%s\" (a stray comma?)", text);
            goto out;
        }
        if (parse_entry(entry, &list->nets[list->count], err, errlen) != 0)
            goto out;
        list->count++;
        if (!comma)
            break;
        cursor = comma + 1;
    }
    rc = 0;

out:
    free(copy);
    if (rc == 0)
        *out = list;
    else
        free(list);
    return rc;
}

void allowlist_free(struct allowlist *list)
{
    free(list);
}

int allowlist_match(const struct allowlist *list, const struct sockaddr *peer)
{
    int family;
    const uint8_t *addr;
    if (peer->sa_family == AF_INET) {
        family = AF_INET;
        addr = (const uint8_t *)&((const struct sockaddr_in *)peer)->sin_addr;
    } else if (peer->sa_family == AF_INET6) {
        addr = ((const struct sockaddr_in6 *)peer)->sin6_addr.s6_addr;
        family = AF_INET6;
        if (memcmp(addr, v4mapped_prefix, 12) == 0) {
            family = AF_INET;
            addr += 12;
        }
    } else {
        return 0;
    }
    for (size_t i = 0; i < list->count; i++) {
        const struct network *net = &list->nets[i];
        if (net->family == family && prefix_match(addr, net->addr, net->prefix))
            return 1;
    }
    return 0;
}

int allowlist_only_loopback(const struct allowlist *list)
{
    static const uint8_t v6_loopback[16] = {[15] = 1};
    for (size_t i = 0; i < list->count; i++) {
        const struct network *net = &list->nets[i];
        bool v4 = net->family == AF_INET && net->prefix >= 8 && net->addr[0] == 127;
        bool v6 = net->family == AF_INET6 && net->prefix == 128 && memcmp(net->addr, v6_loopback, 16) == 0;
        if (!v4 && !v6)
            return 0;
    }
    return 1;
}

size_t allowlist_count(const struct allowlist *list)
{
    return list->count;
}

char *allowlist_entry_format(const struct allowlist *list, size_t i, char *buf, size_t buflen)
{
    const struct network *net = &list->nets[i];
    char addr[INET6_ADDRSTRLEN];
    inet_ntop(net->family, net->addr, addr, sizeof addr);
    snprintf(buf, buflen, "%s/%u", addr, net->prefix);
    return buf;
}
