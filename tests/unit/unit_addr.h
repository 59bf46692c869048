/* unit_addr.h - for the unit tests: a socket address from its text form. */
#ifndef QGS_UNIT_ADDR_H
#define QGS_UNIT_ADDR_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

/*
 * Fills *ss with the IPv4 or IPv6 address in text (as inet_pton reads it) and port, and returns it as
 * a sockaddr; NULL when text is neither (a mistake in the test's table, which the caller reports).
 */
static inline const struct sockaddr *unit_sockaddr(const char *text, uint16_t port,
                                                   struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, text, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
    } else if (inet_pton(AF_INET6, text, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
    } else {
        return NULL;
    }
    return (const struct sockaddr *)ss;
}

#endif
