/* no_ipv6_shim.c - LD_PRELOAD shim for tests: socket(AF_INET6, ...) fails with EAFNOSUPPORT,
 * as on a kernel booted with ipv6.disable=1 (common in containers' hosts). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <sys/socket.h>

int socket(int domain, int type, int protocol)
{
    static int (*real_socket)(int, int, int);
    if (!real_socket)
        real_socket = (int (*)(int, int, int))dlsym(RTLD_NEXT, "socket");
    if (domain == AF_INET6) {
        errno = EAFNOSUPPORT;
        return -1;
    }
    return real_socket(domain, type, protocol);
}
