/*
 * hostcheck.h - which Host names the front door passes on to qBittorrent: its
 * defence against DNS rebinding, which the proxy would otherwise switch off.
 *
 * qBittorrent refuses a request whose Host names neither the address the
 * request came in on nor a name in its server-domain list
 * (web_ui_domain_list, when web_ui_host_header_validation_enabled). The
 * proxy sends qBittorrent its own Host, so qBittorrent can no longer see the
 * browser's; the sidecar makes the same check on the browser's Host instead,
 * with qBittorrent's settings as it last read them, and with its own list
 * (ALLOWED_HOSTS) on top. Until qBittorrent's settings are known, only the
 * front door's own address and ALLOWED_HOSTS pass. Pure: no I/O.
 */
#ifndef QGS_HOSTCHECK_H
#define QGS_HOSTCHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct hostcheck;

/*
 * Parses ALLOWED_HOSTS: host names or patterns separated by commas or
 * semicolons, with qBittorrent's wildcards (* any run of characters, ? one,
 * [abc] one of a set), compared without case; IPv6 addresses may be in
 * brackets; no ports. Empty text means no list of our own. Returns 0 and a
 * new check in *out (free with hostcheck_free), or -1 with a message naming
 * the bad entry in err.
 */
int hostcheck_parse(const char *text, struct hostcheck **out, char *err, size_t errlen);

/* Frees the check; NULL is a no-op. */
void hostcheck_free(struct hostcheck *hc);

/*
 * Takes qBittorrent's own settings as it answered them: whether it validates
 * Host, and its semicolon-separated domain list. Returns 1 when they differ
 * from what was known before (for a log line), else 0.
 */
int hostcheck_set_qbt(struct hostcheck *hc, bool validation, const char *domains);

/* Returns 1 once qBittorrent's settings are known, else 0. */
int hostcheck_qbt_known(const struct hostcheck *hc);

/* Returns 1 when ALLOWED_HOSTS named any host. */
int hostcheck_has_own_list(const struct hostcheck *hc);

enum hostcheck_result {
    HOSTCHECK_OK,      /* pass it on */
    HOSTCHECK_REFUSED, /* a name qBittorrent (or ALLOWED_HOSTS) does not answer to */
    HOSTCHECK_UNKNOWN, /* a name that cannot be checked yet: qBittorrent's settings are not known */
};

/*
 * Decides on a request whose Host header is host (len bytes; NULL for none),
 * arriving on the front door's address local. For anything but HOSTCHECK_OK,
 * why says which rule stopped it.
 */
enum hostcheck_result hostcheck_allows(const struct hostcheck *hc, const char *host, size_t len,
                                       const struct sockaddr *local, char *why, size_t whylen);

#endif
