/*
 * allowlist.h - the networks allowed through the front door (ALLOWED_IPS).
 * Parsed once into address/prefix pairs; matching is a pure function and no
 * match means deny. An IPv4-mapped IPv6 peer (::ffff:a.b.c.d) is matched as
 * IPv4, so 0.0.0.0/0 covers IPv4 only and ::/0 IPv6 only.
 */
#ifndef QGS_ALLOWLIST_H
#define QGS_ALLOWLIST_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct allowlist;

/*
 * Parses a comma-separated list of IPs and CIDRs ("10.0.0.0/8, ::1, [fd00::]/8").
 * Returns 0 and a new list in *out (owned by the caller, free with allowlist_free),
 * or -1 with a message naming the bad entry in err. An empty or blank text gives
 * an empty list, which denies everyone.
 */
int allowlist_parse(const char *text, struct allowlist **out, char *err, size_t errlen);

/* Frees the list; NULL is a no-op. */
void allowlist_free(struct allowlist *list);

/* Returns 1 when the peer address is inside one of the networks, else 0. */
int allowlist_match(const struct allowlist *list, const struct sockaddr *peer);

/* Returns 1 when every network lies within loopback (127.0.0.0/8, ::1), including for an empty list. */
int allowlist_only_loopback(const struct allowlist *list);

/* Returns the number of entries. */
size_t allowlist_count(const struct allowlist *list);

/* Writes entry i in canonical form ("10.0.0.0/8") into buf; returns buf. */
char *allowlist_entry_format(const struct allowlist *list, size_t i, char *buf, size_t buflen);

#endif
