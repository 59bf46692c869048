/* healthcheck.c - one blocking GET /healthz against the local daemon, over TLS when it speaks TLS. */
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

#include "tls.h"

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

/* Sends all of data, waiting for the socket as needed; returns 0 or -1 (errno says why). */
static int send_all(int fd, const char *data, size_t len, const struct timespec *deadline)
{
    while (len > 0) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && wait_fd(fd, POLLOUT, deadline) == 0)
            continue;
        if (n <= 0)
            return -1;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/*
 * The exchange over TLS when the front door speaks it: nothing is verified
 * (this is our own port on this host, under whatever name its certificate
 * has), it only has to be TLS for the daemon to answer.
 */
struct channel {
    int fd;
    struct tls_conn *tls;
    char in[16384]; /* received bytes TLS reads from */
    const struct timespec *deadline;
};

static int channel_flush(struct channel *ch)
{
    size_t n;
    const char *out = tls_conn_output(ch->tls, &n);
    int rc = n ? send_all(ch->fd, out, n, ch->deadline) : 0;
    tls_conn_output_taken(ch->tls);
    return rc;
}

/* Waits for bytes from the peer and hands them to TLS; returns 0, or -1 at a close, error or timeout. */
static int channel_fill(struct channel *ch)
{
    if (wait_fd(ch->fd, POLLIN, ch->deadline) != 0)
        return -1;
    ssize_t n = recv(ch->fd, ch->in, sizeof ch->in, 0);
    if (n <= 0)
        return -1;
    tls_conn_input(ch->tls, ch->in, (size_t)n);
    return 0;
}

static int channel_send(struct channel *ch, const char *data, size_t len, char *err, size_t errlen)
{
    if (!ch->tls)
        return send_all(ch->fd, data, len, ch->deadline) == 0
                   ? 0
                   : (snprintf(err, errlen, "%s", strerror(errno)), -1);
    for (;;) {
        int rc = tls_conn_handshake(ch->tls);
        if (channel_flush(ch) != 0 || rc < 0) {
            snprintf(err, errlen, "TLS handshake: %s", rc < 0 ? tls_conn_error(ch->tls) : strerror(errno));
            return -1;
        }
        if (rc == 1)
            break;
        if (channel_fill(ch) != 0) {
            snprintf(err, errlen, "TLS handshake: no answer");
            return -1;
        }
    }
    if (tls_conn_write(ch->tls, data, len) != 0 || channel_flush(ch) != 0) {
        snprintf(err, errlen, "%s", tls_conn_error(ch->tls)[0] ? tls_conn_error(ch->tls) : strerror(errno));
        return -1;
    }
    return 0;
}

/* Receives some bytes into buf; returns how many, or -1 at a close, error or timeout. */
static ssize_t channel_recv(struct channel *ch, char *buf, size_t len)
{
    if (!ch->tls) {
        if (wait_fd(ch->fd, POLLIN, ch->deadline) != 0)
            return -1;
        ssize_t n = recv(ch->fd, buf, len, 0);
        return n > 0 ? n : -1;
    }
    for (;;) {
        ssize_t n = tls_conn_read(ch->tls, buf, len);
        if (n != 0)
            return n;
        if (channel_flush(ch) != 0 || channel_fill(ch) != 0)
            return -1;
    }
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
    static struct channel ch;
    ch.deadline = &deadline;
    struct tls_ctx *ctx = NULL;
    char err[512];
    if (cfg->tls_cert_file) {
        if (tls_load(err, sizeof err) != 0 ||
            tls_client_ctx_new(NULL, true, "", "", &ctx, err, sizeof err) != 0) {
            fprintf(stderr, "healthcheck: %s\n", err);
            return 1;
        }
        ch.tls = tls_conn_new(ctx, false, NULL);
        if (!ch.tls) {
            fprintf(stderr, "healthcheck: out of memory\n");
            tls_ctx_free(ctx);
            return 1;
        }
    }
    int rc = 1;
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    ch.fd = fd;
    if (fd < 0) {
        fprintf(stderr, "healthcheck: socket: %s\n", strerror(errno));
        goto out;
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
    if (channel_send(&ch, request, sizeof request - 1, err, sizeof err) != 0) {
        fprintf(stderr, "healthcheck: cannot send the request: %s\n", err);
        goto out;
    }
    char reply[64];
    size_t got = 0;
    while (got < 12) {
        ssize_t n = channel_recv(&ch, reply + got, sizeof reply - 1 - got);
        if (n < 0) {
            fprintf(stderr, "healthcheck: no answer within %u ms\n", timeout_ms);
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
    if (fd >= 0)
        close(fd);
    tls_conn_free(ch.tls);
    tls_ctx_free(ctx);
    return rc;
}
