/*
 * fuzz_url.c - url_parse (QBIT_ADDR) on the input as text.
 *
 * Invariants on success: origin is the scheme, "://" and authority; authority
 * is the host (bracketed when IPv6) plus ":port" exactly when a port was
 * given; the port is 1..65535 (80 or 443 by default); the prefix is empty or
 * starts with '/' and has no trailing '/' and no byte a request line cannot
 * carry; and origin + prefix parses back to the same url. On failure the
 * message is NUL-terminated and not empty.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "url.h"

static void check_url(const struct url *u)
{
    FUZZ_CHECK(memchr(u->host, '\0', sizeof u->host) && u->host[0] != '\0', "empty or unterminated host");
    FUZZ_CHECK(memchr(u->authority, '\0', sizeof u->authority), "unterminated authority");
    FUZZ_CHECK(memchr(u->origin, '\0', sizeof u->origin), "unterminated origin");
    FUZZ_CHECK(memchr(u->prefix, '\0', sizeof u->prefix), "unterminated prefix");
    FUZZ_CHECK(u->port >= 1, "port 0");
    if (!u->port_explicit)
        FUZZ_CHECK(u->port == (u->https ? 443 : 80), "default port %u for %s", u->port,
                   u->https ? "https" : "http");

    char want[sizeof u->origin + 16];
    const char *lb = u->host_is_ipv6 ? "[" : "", *rb = u->host_is_ipv6 ? "]" : "";
    if (u->port_explicit)
        snprintf(want, sizeof want, "%s%s%s:%u", lb, u->host, rb, u->port);
    else
        snprintf(want, sizeof want, "%s%s%s", lb, u->host, rb);
    FUZZ_CHECK(strcmp(want, u->authority) == 0, "authority \"%s\", want \"%s\"", u->authority, want);
    snprintf(want, sizeof want, "%s://%s", u->https ? "https" : "http", u->authority);
    FUZZ_CHECK(strcmp(want, u->origin) == 0, "origin \"%s\", want \"%s\"", u->origin, want);

    if (u->host_is_ipv6) {
        struct in6_addr a;
        FUZZ_CHECK(inet_pton(AF_INET6, u->host, &a) == 1, "IPv6 host \"%s\" does not parse", u->host);
    } else {
        for (const char *c = u->host; *c; c++)
            FUZZ_CHECK(strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._", *c),
                       "host \"%s\" has byte 0x%02x", u->host, (unsigned char)*c);
    }

    size_t plen = strlen(u->prefix);
    if (plen > 0) {
        FUZZ_CHECK(u->prefix[0] == '/', "prefix \"%s\" does not start with '/'", u->prefix);
        FUZZ_CHECK(u->prefix[plen - 1] != '/', "prefix \"%s\" ends with '/'", u->prefix);
    }
    for (const char *c = u->prefix; *c; c++)
        FUZZ_CHECK((unsigned char)*c > ' ' && (unsigned char)*c < 0x7f && *c != '?' && *c != '#',
                   "prefix \"%s\" has byte 0x%02x", u->prefix, (unsigned char)*c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';

    struct url *u = malloc(sizeof *u), *again = malloc(sizeof *again);
    char err[512];
    memset(err, 'Z', sizeof err);
    if (url_parse(text, u, err, sizeof err) != 0) {
        FUZZ_CHECK(memchr(err, '\0', sizeof err) && err[0] != '\0', "a failed parse without a message");
        goto out;
    }
    check_url(u);

    /* What the daemon prints for QBIT_ADDR (config_print) must read back as the same address. */
    char round[sizeof u->origin + sizeof u->prefix];
    snprintf(round, sizeof round, "%s%s", u->origin, u->prefix);
    char err2[512];
    FUZZ_CHECK(url_parse(round, again, err2, sizeof err2) == 0, "\"%s\" (from \"%s\") refused: %s", round,
               text, err2);
    FUZZ_CHECK(again->https == u->https && again->port == u->port &&
                   again->port_explicit == u->port_explicit && again->host_is_ipv6 == u->host_is_ipv6 &&
                   strcmp(again->host, u->host) == 0 && strcmp(again->prefix, u->prefix) == 0 &&
                   strcmp(again->authority, u->authority) == 0 && strcmp(again->origin, u->origin) == 0,
               "\"%s\" re-parsed differently from \"%s\"", round, text);

out:
    free(again);
    free(u);
    free(text);
    return 0;
}
