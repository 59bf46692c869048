/*
 * fuzz_config.c - config_load on an environment made from the input.
 *
 * The input is up to 32 NUL-separated pieces. A piece "NAME=value" with a
 * known NAME sets it; any other piece sets the known name chosen by its first
 * byte to the rest of the piece. For the *_PASS_FILE and *_API_KEY_FILE the
 * value is the file's contents (0x01 stands for a NUL byte), put in a memfd
 * whose /proc/self/fd path becomes the variable, so no fuzz input ever names
 * a real file; a value starting with '!' names a file that does not exist.
 *
 * Invariants: success gives values within their documented ranges, both or
 * neither of user and password, an API key only without a user, a list, and
 * config_print runs; failure gives a message and a config with nothing to
 * free. ASan's leak check covers both paths.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"
#include "fuzz.h"

static const char *const names[] = {
    "QBIT_ADDR",
    "QBIT_USER",
    "QBIT_PASS",
    "QBIT_PASS_FILE",
    "QBIT_API_KEY",
    "QBIT_API_KEY_FILE",
    "PORT_FILE",
    "LISTEN_PORT",
    "LISTEN_ADDR",
    "ALLOWED_IPS",
    "LOG_LEVEL",
    "HEADER_TIMEOUT",
    "IDLE_TIMEOUT",
    "SHUTDOWN_TIMEOUT",
    "MAX_HEADER_SIZE",
    "MAX_CONNECTIONS",
    "UPSTREAM_CONNECT_TIMEOUT",
    "UPSTREAM_TIMEOUT",
    "MAX_BUFFERED_BODY",
    "RESYNC_INTERVAL",
    "REBIND_ON_RECONNECT",
    "QBIT_TRUST_PROXY",
    "LOG_FORMAT",
    "ACCESS_LOG",
    "QBIT_CA_FILE",
    "QBIT_TLS_INSECURE",
    "TLS_CERT_FILE",
    "TLS_KEY_FILE",
    "ALLOWED_HOSTS",
    "REANNOUNCE_ON_CHANGE",
    "GLUETUN_CONTROL_URL",
    "GLUETUN_API_KEY",
    "GLUETUN_API_KEY_FILE",
    "GLUETUN_USER",
    "GLUETUN_PASS",
    "GLUETUN_PASS_FILE",
    "GLUETUN_CA_FILE",
    "GLUETUN_POLL_INTERVAL",
    "UPSTREAM_MAX_CONNECTIONS",
    "UPSTREAM_MAX_QUEUE",
};
#define NNAMES (sizeof names / sizeof names[0])
#define MAX_PIECES 32

static FILE *devnull;

/* The "NAME=value" strings given to putenv, freed after each input. */
static char *env_strings[NNAMES];
static int memfds[NNAMES];

static int is_file_var(size_t i)
{
    return strcmp(names[i], "QBIT_PASS_FILE") == 0 || strcmp(names[i], "QBIT_API_KEY_FILE") == 0 ||
           strcmp(names[i], "GLUETUN_PASS_FILE") == 0 || strcmp(names[i], "GLUETUN_API_KEY_FILE") == 0;
}

static void set_var(size_t i, const char *value, size_t len)
{
    char path[64];
    if (is_file_var(i) && len > 0 && value[0] == '!') {
        snprintf(path, sizeof path, "/proc/self/fd/999999/missing");
        value = path;
        len = strlen(path);
    } else if (is_file_var(i) && len > 0) {
        if (memfds[i] < 0)
            memfds[i] = memfd_create("qgs-fuzz-secret", 0);
        FUZZ_CHECK(memfds[i] >= 0, "memfd_create failed");
        FUZZ_CHECK(ftruncate(memfds[i], 0) == 0, "ftruncate failed");
        char *contents = malloc(len);
        FUZZ_CHECK(contents != NULL, "out of memory");
        for (size_t k = 0; k < len; k++)
            contents[k] = value[k] == '\x01' ? '\0' : value[k];
        FUZZ_CHECK(pwrite(memfds[i], contents, len, 0) == (ssize_t)len, "pwrite failed");
        free(contents);
        snprintf(path, sizeof path, "/proc/self/fd/%d", memfds[i]);
        value = path;
        len = strlen(path);
    }
    if (env_strings[i]) {
        unsetenv(names[i]);
        free(env_strings[i]);
    }
    size_t nlen = strlen(names[i]);
    env_strings[i] = malloc(nlen + 1 + len + 1);
    FUZZ_CHECK(env_strings[i] != NULL, "out of memory");
    memcpy(env_strings[i], names[i], nlen);
    env_strings[i][nlen] = '=';
    memcpy(env_strings[i] + nlen + 1, value, len);
    env_strings[i][nlen + 1 + len] = '\0';
    putenv(env_strings[i]);
}

static void clear_vars(void)
{
    for (size_t i = 0; i < NNAMES; i++) {
        unsetenv(names[i]);
        free(env_strings[i]);
        env_strings[i] = NULL;
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    devnull = fopen("/dev/null", "w");
    for (size_t i = 0; i < NNAMES; i++) {
        memfds[i] = -1;
        unsetenv(names[i]);
    }
    return 0;
}

static void check_loaded(const struct config *cfg)
{
    /* The TLS trust settings only with https:// (and never both ways of trusting). */
    FUZZ_CHECK(cfg->qbit.https || (!cfg->qbit_ca_file && !cfg->qbit_tls_insecure),
               "QBIT TLS settings without https");
    FUZZ_CHECK(!(cfg->qbit_ca_file && cfg->qbit_tls_insecure), "QBIT_CA_FILE and QBIT_TLS_INSECURE both");
    FUZZ_CHECK((cfg->tls_cert_file == NULL) == (cfg->tls_key_file == NULL),
               "certificate without key or back");
    FUZZ_CHECK(cfg->reannounce_on_change == 0 || cfg->reannounce_on_change == 1, "REANNOUNCE_ON_CHANGE");
    /* Gluetun: credentials only with a control server, one kind of them, within the bounds of the request. */
    FUZZ_CHECK(cfg->have_gluetun || (!cfg->gluetun_api_key && !cfg->gluetun_user && !cfg->gluetun_pass &&
                                     !cfg->gluetun_ca_file),
               "Gluetun settings without GLUETUN_CONTROL_URL");
    FUZZ_CHECK((cfg->gluetun_user == NULL) == (cfg->gluetun_pass == NULL), "Gluetun user without password");
    FUZZ_CHECK(!(cfg->gluetun_api_key && cfg->gluetun_user), "Gluetun API key and user both set");
    FUZZ_CHECK(!cfg->gluetun_user || !strchr(cfg->gluetun_user, ':'), "':' in GLUETUN_USER");
    FUZZ_CHECK(!cfg->gluetun_api_key || strlen(cfg->gluetun_api_key) <= 256, "GLUETUN_API_KEY too long");
    FUZZ_CHECK(!cfg->gluetun_pass || strlen(cfg->gluetun_pass) <= 256, "GLUETUN_PASS too long");
    FUZZ_CHECK(!cfg->gluetun_ca_file || cfg->gluetun.https, "GLUETUN_CA_FILE without https");
    FUZZ_CHECK(cfg->gluetun_poll_ms >= 1000 && cfg->gluetun_poll_ms <= 86400000, "GLUETUN_POLL_INTERVAL");
    FUZZ_CHECK(cfg->qbit.port >= 1, "QBIT_ADDR port 0");
    FUZZ_CHECK((cfg->qbit_user == NULL) == (cfg->qbit_pass == NULL), "user without password or back");
    FUZZ_CHECK(!(cfg->qbit_api_key && cfg->qbit_user), "API key and user both set");
    if (cfg->qbit_pass)
        FUZZ_CHECK(cfg->qbit_pass[0] != '\0', "empty password accepted");
    if (cfg->qbit_api_key)
        FUZZ_CHECK(cfg->qbit_api_key[0] != '\0', "empty API key accepted");
    FUZZ_CHECK(cfg->port_file && cfg->port_file[0] != '\0', "no port file");
    FUZZ_CHECK(cfg->listen_port >= 1, "LISTEN_PORT 0");
    FUZZ_CHECK(cfg->allowed_ips_text && cfg->allowed, "no allow-list");
    FUZZ_CHECK(cfg->log_level >= LOG_DEBUG && cfg->log_level <= LOG_ERROR, "log level %d",
               (int)cfg->log_level);
    FUZZ_CHECK(cfg->header_timeout_ms >= 1000 && cfg->header_timeout_ms <= 3600000, "HEADER_TIMEOUT");
    FUZZ_CHECK(cfg->idle_timeout_ms >= 1000 && cfg->idle_timeout_ms <= 86400000, "IDLE_TIMEOUT");
    FUZZ_CHECK(cfg->shutdown_timeout_ms <= 3600000 && cfg->shutdown_timeout_ms % 1000 == 0,
               "SHUTDOWN_TIMEOUT");
    FUZZ_CHECK(cfg->max_header_size >= 1024 && cfg->max_header_size <= 1048576, "MAX_HEADER_SIZE");
    FUZZ_CHECK(cfg->max_connections >= 1 && cfg->max_connections <= 1000000, "MAX_CONNECTIONS");
    FUZZ_CHECK(cfg->upstream_connect_timeout_ms >= 1000 && cfg->upstream_connect_timeout_ms <= 600000,
               "UPSTREAM_CONNECT_TIMEOUT");
    FUZZ_CHECK(cfg->upstream_timeout_ms >= 1000 && cfg->upstream_timeout_ms <= 3600000, "UPSTREAM_TIMEOUT");
    /* At least two: one is kept for the API calls, and the proxy needs one. */
    FUZZ_CHECK(cfg->upstream_max_connections >= 2 && cfg->upstream_max_connections <= 10000,
               "UPSTREAM_MAX_CONNECTIONS");
    FUZZ_CHECK(cfg->upstream_max_queue <= 1000000, "UPSTREAM_MAX_QUEUE");
    FUZZ_CHECK(cfg->max_buffered_body <= (1UL << 30), "MAX_BUFFERED_BODY");
    FUZZ_CHECK(cfg->resync_interval_ms <= 86400000, "RESYNC_INTERVAL");
    FUZZ_CHECK(cfg->rebind_on_reconnect == 0 || cfg->rebind_on_reconnect == 1, "REBIND_ON_RECONNECT");
    FUZZ_CHECK(cfg->trust_proxy == 0 || cfg->trust_proxy == 1, "QBIT_TRUST_PROXY");
    FUZZ_CHECK(cfg->access_log == 0 || cfg->access_log == 1, "ACCESS_LOG");
    FUZZ_CHECK(cfg->log_json == 0 || cfg->log_json == 1, "LOG_FORMAT");
    /* Secrets are masked in what --check-config prints. */
    char *printed = NULL;
    size_t printed_len = 0;
    FILE *mem = open_memstream(&printed, &printed_len);
    FUZZ_CHECK(mem != NULL, "open_memstream failed");
    config_print(cfg, mem);
    fclose(mem);
    FUZZ_CHECK(strstr(printed, cfg->qbit_pass ? "\nQBIT_PASS=******** (set)\n" : "\nQBIT_PASS=\n") != NULL,
               "QBIT_PASS not masked");
    FUZZ_CHECK(strstr(printed, cfg->qbit_api_key ? "\nQBIT_API_KEY=******** (set)\n" : "\nQBIT_API_KEY=\n") !=
                   NULL,
               "QBIT_API_KEY not masked");
    /* Gluetun's credentials are described, never printed. */
    if (cfg->have_gluetun)
        FUZZ_CHECK(strstr(printed, cfg->gluetun_api_key ? "\nGLUETUN_AUTH=API key (set)\n"
                                   : cfg->gluetun_user  ? "\nGLUETUN_AUTH=basic, user and password (set)\n"
                                                        : "\nGLUETUN_AUTH=none\n") != NULL,
                   "Gluetun's credentials not masked");
    free(printed);
    config_print(cfg, devnull);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data, *end = p + size;
    for (unsigned piece = 0; piece < MAX_PIECES && p < end; piece++) {
        const char *nul = memchr(p, '\0', (size_t)(end - p));
        const char *piece_end = nul ? nul : end;
        size_t len = (size_t)(piece_end - p);
        size_t which = NNAMES;
        const char *value = NULL;
        const char *eq = memchr(p, '=', len);
        if (eq) {
            for (size_t i = 0; i < NNAMES; i++) {
                if ((size_t)(eq - p) == strlen(names[i]) && memcmp(p, names[i], (size_t)(eq - p)) == 0) {
                    which = i;
                    value = eq + 1;
                }
            }
        }
        if (which == NNAMES && len > 0) {
            which = (unsigned char)p[0] % NNAMES;
            value = p + 1;
        }
        if (which < NNAMES)
            set_var(which, value, (size_t)(piece_end - value));
        p = nul ? nul + 1 : end;
    }

    struct config cfg;
    char err[2048];
    memset(err, 'Z', sizeof err);
    if (config_load(&cfg, err, sizeof err) == 0) {
        check_loaded(&cfg);
        config_free(&cfg);
    } else {
        FUZZ_CHECK(memchr(err, '\0', sizeof err) && err[0] != '\0', "refused without a message");
        struct config zero;
        memset(&zero, 0, sizeof zero);
        FUZZ_CHECK(memcmp(&cfg, &zero, sizeof cfg) == 0, "a refused config still holds something");
    }

    /* A tiny message buffer: messages are cut, never overflowed. */
    char small[16];
    memset(small, 'Z', sizeof small);
    size_t smalllen = 1 + (size_t)(fuzz_hash(data, size) % 8);
    if (config_load(&cfg, small, smalllen) == 0)
        config_free(&cfg);
    else
        FUZZ_CHECK(memchr(small, '\0', smalllen) != NULL, "message not terminated within %zu", smalllen);
    for (size_t k = smalllen; k < sizeof small; k++)
        FUZZ_CHECK(small[k] == 'Z', "config_load wrote past errlen %zu", smalllen);

    clear_vars();
    return 0;
}
