/* hostcheck.c - the Host names the front door passes on: qBittorrent's own rule, and ALLOWED_HOSTS. */
#include "hostcheck.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <fnmatch.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NAME_MAX_LEN 255 /* a DNS name, and more than any IP literal */
#define OWN_MAX 64       /* ALLOWED_HOSTS entries */
#define QBT_DOMAINS_MAX 8192

struct hostcheck {
    char *own[OWN_MAX]; /* ALLOWED_HOSTS patterns, each malloc'ed */
    size_t nown;
    bool qbt_known;
    bool qbt_validation;
    char *qbt_domains; /* web_ui_domain_list as qBittorrent answered it; NULL until known */
};

void hostcheck_free(struct hostcheck *hc)
{
    if (!hc)
        return;
    for (size_t i = 0; i < hc->nown; i++)
        free(hc->own[i]);
    free(hc->qbt_domains);
    free(hc);
}

/* Copies text[0..len) without surrounding blanks into out (size outlen); returns the copied length or -1. */
static int trimmed(const char *text, size_t len, char *out, size_t outlen)
{
    while (len > 0 && (*text == ' ' || *text == '\t')) {
        text++;
        len--;
    }
    while (len > 0 && (text[len - 1] == ' ' || text[len - 1] == '\t'))
        len--;
    if (len >= outlen)
        return -1;
    memcpy(out, text, len);
    out[len] = '\0';
    return (int)len;
}

static bool is_ipv6(const char *s)
{
    struct in6_addr a;
    return inet_pton(AF_INET6, s, &a) == 1;
}

/* Checks one ALLOWED_HOSTS entry and stores it as a pattern (brackets of an IPv6 address dropped). */
static int add_own(struct hostcheck *hc, char *entry, char *err, size_t errlen)
{
    size_t n = strlen(entry);
    if (entry[0] == '[' && n > 2 && entry[n - 1] == ']') {
        entry[n - 1] = '\0';
        entry++;
        if (!is_ipv6(entry)) {
            snprintf(err, errlen, "\"[%s]\" is not an IPv6 address", entry);
            return -1;
        }
    } else if (strchr(entry, ':')) {
        if (!is_ipv6(entry)) {
            snprintf(err, errlen, "\"%s\" has a port or a ':'; give host names without ports", entry);
            return -1;
        }
    } else {
        for (const char *p = entry; *p; p++) {
            if (!isalnum((unsigned char)*p) && !strchr("-._*?[]!", *p)) {
                snprintf(err, errlen, "\"%s\" has '%c', which no host name has", entry, *p);
                return -1;
            }
        }
    }
    if (hc->nown == OWN_MAX) {
        snprintf(err, errlen, "more than %d entries", OWN_MAX);
        return -1;
    }
    hc->own[hc->nown] = strdup(entry);
    if (!hc->own[hc->nown]) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    hc->nown++;
    return 0;
}

int hostcheck_parse(const char *text, struct hostcheck **out, char *err, size_t errlen)
{
    struct hostcheck *hc = calloc(1, sizeof *hc);
    if (!hc) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    const char *p = text ? text : "";
    if (p[strspn(p, " \t")] == '\0') {
        *out = hc; /* empty or blank: no list of our own */
        return 0;
    }
    for (;;) {
        size_t len = strcspn(p, ",;");
        char entry[NAME_MAX_LEN + 3]; /* brackets and the NUL */
        int n = trimmed(p, len, entry, sizeof entry);
        if (n < 0) {
            snprintf(err, errlen, "an entry is longer than %d characters", NAME_MAX_LEN);
            hostcheck_free(hc);
            return -1;
        }
        if (n == 0)
            snprintf(err, errlen, "an empty entry (a stray comma or semicolon?)");
        if (n == 0 || add_own(hc, entry, err, errlen) != 0) {
            hostcheck_free(hc);
            return -1;
        }
        p += len;
        if (!*p)
            break;
        p++;
    }
    *out = hc;
    return 0;
}

int hostcheck_set_qbt(struct hostcheck *hc, bool validation, const char *domains)
{
    if (!domains)
        domains = "";
    size_t len = strnlen(domains, QBT_DOMAINS_MAX + 1);
    bool same = hc->qbt_known && hc->qbt_validation == validation && hc->qbt_domains &&
                strcmp(hc->qbt_domains, domains) == 0;
    if (same)
        return 0;
    char *copy = NULL;
    /* A list too long to keep is kept as none: only the front door's own address passes then. */
    if (len <= QBT_DOMAINS_MAX)
        copy = strdup(domains);
    free(hc->qbt_domains);
    hc->qbt_domains = copy;
    hc->qbt_validation = validation;
    hc->qbt_known = copy != NULL;
    return 1;
}

int hostcheck_qbt_known(const struct hostcheck *hc)
{
    return hc->qbt_known;
}

int hostcheck_has_own_list(const struct hostcheck *hc)
{
    return hc->nown > 0;
}

/*
 * The host part of a Host value: the address inside brackets, or what comes before a ':port'.
 * Returns 0, or -1 when it is not a host at all (too long, unbalanced brackets, a bad port).
 */
static int host_name(const char *value, size_t len, char *out, size_t outlen)
{
    const char *value_start = value, *end = value + len, *host = value, *host_end;
    if (len > 0 && value[0] == '[') {
        host = value + 1;
        host_end = memchr(host, ']', len - 1);
        if (!host_end)
            return -1;
        value = host_end + 1;
    } else {
        host_end = memchr(value, ':', len);
        if (!host_end)
            host_end = end;
        value = host_end;
    }
    /* After the host: nothing, or ':' and digits. */
    if (value < end) {
        if (*value != ':')
            return -1;
        for (const char *d = value + 1; d < end; d++)
            if (!isdigit((unsigned char)*d))
                return -1;
    }
    size_t n = (size_t)(host_end - host);
    if (n >= outlen)
        return -1;
    memcpy(out, host, n);
    out[n] = '\0';
    /* Brackets hold an IPv6 address, nothing else (RFC 3986's IP-literal). */
    if (host != value_start && !is_ipv6(out))
        return -1;
    return 0;
}

/* True when name is an IP literal for the address the request came in on (IPv4-mapped as IPv4). */
static bool is_local_address(const char *name, const struct sockaddr *local)
{
    if (!local)
        return false;
    struct in_addr v4;
    struct in6_addr v6;
    const struct in_addr *local4 = NULL;
    const struct in6_addr *local6 = NULL;
    if (local->sa_family == AF_INET) {
        local4 = &((const struct sockaddr_in *)local)->sin_addr;
    } else if (local->sa_family == AF_INET6) {
        local6 = &((const struct sockaddr_in6 *)local)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(local6)) {
            memcpy(&v4, local6->s6_addr + 12, 4);
            local4 = &v4;
            local6 = NULL;
        }
    }
    struct in_addr want4;
    if (local4 && inet_pton(AF_INET, name, &want4) == 1)
        return want4.s_addr == local4->s_addr;
    if (local6 && inet_pton(AF_INET6, name, &v6) == 1)
        return memcmp(&v6, local6, sizeof v6) == 0;
    return false;
}

/* Matches name against one pattern as qBittorrent does: wildcards, whole name, any case. */
static bool pattern_matches(const char *pattern, const char *name)
{
    return fnmatch(pattern, name, FNM_CASEFOLD | FNM_NOESCAPE) == 0;
}

/* Matches name against a semicolon-separated list (qBittorrent's web_ui_domain_list). */
static bool list_matches(const char *list, const char *name)
{
    for (const char *p = list; *p;) {
        size_t len = strcspn(p, ";");
        char pattern[NAME_MAX_LEN + 1];
        if (trimmed(p, len, pattern, sizeof pattern) > 0 && pattern_matches(pattern, name))
            return true;
        p += len;
        if (*p)
            p++;
    }
    return false;
}

enum hostcheck_result hostcheck_allows(const struct hostcheck *hc, const char *host, size_t len,
                                       const struct sockaddr *local, char *why, size_t whylen)
{
    char name[NAME_MAX_LEN + 1];
    if (host_name(host ? host : "", host ? len : 0, name, sizeof name) != 0) {
        snprintf(why, whylen, "the Host header names no host");
        return HOSTCHECK_REFUSED;
    }
    /* qBittorrent passes a Host that is the address the browser connected to (no name to rebind). */
    if (is_local_address(name, local))
        return HOSTCHECK_OK;
    if (hc->nown > 0) {
        bool found = false;
        for (size_t i = 0; i < hc->nown && !found; i++)
            found = pattern_matches(hc->own[i], name);
        if (!found) {
            snprintf(why, whylen, "Host \"%s\" is not in ALLOWED_HOSTS", name);
            return HOSTCHECK_REFUSED;
        }
    }
    if (!hc->qbt_known) {
        if (hc->nown > 0)
            return HOSTCHECK_OK;
        snprintf(
            why, whylen,
            "Host \"%s\" cannot be checked against qBittorrent's server domains yet (qBittorrent has not "
            "answered the sidecar); until then only the front door's own address, or ALLOWED_HOSTS, passes",
            name);
        return HOSTCHECK_UNKNOWN;
    }
    if (hc->qbt_validation && !list_matches(hc->qbt_domains, name)) {
        snprintf(why, whylen,
                 "Host \"%s\" is not in qBittorrent's server domains (web_ui_domain_list \"%.200s\")", name,
                 hc->qbt_domains);
        return HOSTCHECK_REFUSED;
    }
    return HOSTCHECK_OK;
}
