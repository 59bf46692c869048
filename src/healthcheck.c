/* healthcheck.c - one blocking GET /healthz against the local daemon. */
#include "healthcheck.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* The address to ask: the configured one, or loopback when the daemon listens on all interfaces. */
static int target(const struct config *cfg, struct sockaddr_storage *ss, socklen_t *len)
{
    const char *addr = cfg->listen_addr;
    memset(ss, 0, sizeof *ss);
    if (addr && strchr(addr, ':') && strcmp(addr, "::") != 0) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(cfg->listen_port);
        *len = sizeof *s6;
        return inet_pton(AF_INET6, addr, &s6->sin6_addr) == 1 ? 0 : -1;
    }
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    s4->sin_family = AF_INET;
    s4->sin_port = htons(cfg->listen_port);
    *len = sizeof *s4;
    if (!addr || strcmp(addr, "0.0.0.0") == 0 || strcmp(addr, "::") == 0)
        addr = "127.0.0.1";
    return inet_pton(AF_INET, addr, &s4->sin_addr) == 1 ? 0 : -1;
}

static long remaining_ms(const struct timespec *deadline)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (deadline->tv_sec - now.tv_sec) * 1000 + (deadline->tv_nsec - now.tv_nsec) / 1000000;
}

/* Waits for fd to be ready for events; returns 0, or -1 on timeout or error. */
static int wait_fd(int fd, short events, const struct timespec *deadline)
{
    struct pollfd p = {.fd = fd, .events = events};
    long ms = remaining_ms(deadline);
    return ms > 0 && poll(&p, 1, (int)ms) == 1 ? 0 : -1;
}

int healthcheck_run(const struct config *cfg, unsigned timeout_ms)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
    if (deadline.tv_nsec >= 1000000000) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000;
    }
    if (target(cfg, &ss, &sslen) != 0) {
        fprintf(stderr, "healthcheck: cannot use LISTEN_ADDR %s\n", cfg->listen_addr);
        return 1;
    }
    int rc = 1;
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        fprintf(stderr, "healthcheck: socket: %s\n", strerror(errno));
        return 1;
    }
    if (connect(fd, (struct sockaddr *)&ss, sslen) != 0 &&
        (errno != EINPROGRESS || wait_fd(fd, POLLOUT, &deadline) != 0)) {
        fprintf(stderr, "healthcheck: cannot connect to port %u: %s\n", cfg->listen_port, strerror(errno));
        goto out;
    }
    int soerr = 0;
    socklen_t soerrlen = sizeof soerr;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &soerrlen);
    if (soerr != 0) {
        fprintf(stderr, "healthcheck: cannot connect to port %u: %s\n", cfg->listen_port, strerror(soerr));
        goto out;
    }
    static const char request[] = "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    if (send(fd, request, sizeof request - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof request - 1)) {
        fprintf(stderr, "healthcheck: cannot send the request: %s\n", strerror(errno));
        goto out;
    }
    char reply[64];
    size_t got = 0;
    while (got < 12) {
        if (wait_fd(fd, POLLIN, &deadline) != 0) {
            fprintf(stderr, "healthcheck: no answer within %u ms\n", timeout_ms);
            goto out;
        }
        ssize_t n = recv(fd, reply + got, sizeof reply - 1 - got, 0);
        if (n <= 0) {
            fprintf(stderr, "healthcheck: connection closed without an answer\n");
            goto out;
        }
        got += (size_t)n;
    }
    reply[got] = '\0';
    if (strncmp(reply, "HTTP/1.1 200", 12) == 0) {
        rc = 0;
    } else {
        char *eol = strpbrk(reply, "\r\n");
        if (eol)
            *eol = '\0';
        fprintf(stderr, "healthcheck: /healthz answered \"%s\"\n", reply);
    }
out:
    close(fd);
    return rc;
}
