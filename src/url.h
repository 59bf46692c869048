/* url.h - parsing of the upstream address, http://host[:port][/prefix]. Pure, no I/O. */
#ifndef QGS_URL_H
#define QGS_URL_H

#include <stddef.h>
#include <stdint.h>

#define URL_HOST_MAX 256
#define URL_PREFIX_MAX 1024

struct url {
    int https;               /* 1 for https:// (parsed, but refused by config for now) */
    char host[URL_HOST_MAX]; /* name or address, IPv6 without brackets */
    int host_is_ipv6;        /* host was an [IPv6] literal */
    uint16_t port;           /* explicit port, or 80/443 from the scheme */
    int port_explicit;
    char prefix[URL_PREFIX_MAX];      /* path prefix without trailing '/', "" for none */
    char authority[URL_HOST_MAX + 8]; /* what goes in Host: "host[:port]", brackets for IPv6 */
    char origin[URL_HOST_MAX + 16];   /* "http://authority", for Origin/Referer rewriting */
};

/* Parses text into *out; returns 0, or -1 with a message for a user in err. */
int url_parse(const char *text, struct url *out, char *err, size_t errlen);

#endif
