/*
 * fuzz_hostcheck.c - hostcheck_parse (ALLOWED_HOSTS), hostcheck_set_qbt and
 * hostcheck_allows. The input is split at its first two NULs: the ALLOWED_HOSTS
 * text, qBittorrent's web_ui_domain_list, and the Host header value.
 *
 * Invariants: a refusal always says why; a Host naming the front door's own
 * address passes whatever the lists say; with no list of our own and
 * qBittorrent not checking Host, everything that names a host passes; with
 * qBittorrent's settings unknown and no list of our own, only that address
 * passes; a list of "*" (ours or qBittorrent's) refuses nothing another list
 * would not; answers do not depend on the case of the Host.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "hostcheck.h"

/* Splits data at NUL into up to n NUL-terminated pieces (copies); missing ones are "". */
static void split(const uint8_t *data, size_t size, char **out, size_t n)
{
    size_t start = 0, k = 0;
    for (size_t i = 0; i <= size && k < n; i++) {
        if (i == size || data[i] == 0) {
            out[k] = malloc(i - start + 1);
            memcpy(out[k], data + start, i - start);
            out[k][i - start] = '\0';
            k++;
            start = i + 1;
        }
    }
    for (; k < n; k++)
        out[k] = strdup("");
}

static int allows(const struct hostcheck *hc, const char *host, const struct sockaddr *local)
{
    char why[512];
    memset(why, 'Z', sizeof why);
    enum hostcheck_result rc = hostcheck_allows(hc, host, strlen(host), local, why, sizeof why);
    FUZZ_CHECK(rc == HOSTCHECK_OK || (memchr(why, '\0', sizeof why) && why[0]), "refused without a reason");
    FUZZ_CHECK(rc != HOSTCHECK_UNKNOWN || !hostcheck_qbt_known(hc),
               "unknown although qBittorrent's list is known");
    return rc == HOSTCHECK_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *part[3];
    split(data, size, part, 3);
    struct sockaddr_in local = {.sin_family = AF_INET, .sin_port = htons(9090)};
    inet_pton(AF_INET, "192.168.1.5", &local.sin_addr);
    const struct sockaddr *sa = (const struct sockaddr *)&local;

    char err[256];
    struct hostcheck *own = NULL, *none = NULL, *star = NULL;
    int parsed = hostcheck_parse(part[0], &own, err, sizeof err) == 0;
    FUZZ_CHECK(parsed || (memchr(err, '\0', sizeof err) && err[0]), "ALLOWED_HOSTS refused without a reason");
    FUZZ_CHECK(hostcheck_parse("", &none, err, sizeof err) == 0, "an empty ALLOWED_HOSTS refused");
    FUZZ_CHECK(hostcheck_parse("*", &star, err, sizeof err) == 0, "ALLOWED_HOSTS=* refused");

    /* The front door's own address always passes. */
    struct hostcheck *all[] = {own, none, star};
    for (size_t i = 0; i < 3; i++) {
        if (!all[i])
            continue;
        FUZZ_CHECK(allows(all[i], "192.168.1.5:9090", sa), "the own address refused (list %zu)", i);
    }
    /* Nothing known, no list: only the own address. */
    int own_address = allows(none, part[2], sa);
    if (own_address) {
        char name[300];
        snprintf(name, sizeof name, "%s", part[2]);
        char *colon = strchr(name, ':');
        if (colon)
            *colon = '\0';
        FUZZ_CHECK(strcmp(name, "192.168.1.5") == 0, "\"%s\" passed before qBittorrent's settings were known",
                   part[2]);
    }
    /* A list of "*" passes what names a host at all, before qBittorrent's settings are known. */
    int names_a_host = allows(star, part[2], sa);

    /* qBittorrent not checking: the lists of its own decide. */
    hostcheck_set_qbt(none, false, part[1]);
    FUZZ_CHECK(allows(none, part[2], sa) == names_a_host,
               "validation off: \"%s\" decided otherwise than by *", part[2]);
    /* qBittorrent checking its list; ours on top can only refuse more. */
    hostcheck_set_qbt(none, true, part[1]);
    int by_qbt = allows(none, part[2], sa);
    if (by_qbt)
        FUZZ_CHECK(names_a_host, "\"%s\" passed qBittorrent's list but names no host", part[2]);
    if (own) {
        hostcheck_set_qbt(own, true, part[1]);
        if (allows(own, part[2], sa))
            FUZZ_CHECK(by_qbt, "ALLOWED_HOSTS let \"%s\" through although qBittorrent's list refuses it",
                       part[2]);
    }
    /* Case does not matter. */
    for (char *p = part[2]; *p; p++)
        *p = (char)toupper((unsigned char)*p);
    FUZZ_CHECK(allows(none, part[2], sa) == by_qbt, "the answer for \"%s\" depends on case", part[2]);

    hostcheck_free(own);
    hostcheck_free(none);
    hostcheck_free(star);
    for (size_t i = 0; i < 3; i++)
        free(part[i]);
    return 0;
}
