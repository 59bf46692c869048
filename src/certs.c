/* certs.c - the TLS contexts of the configuration, and the front door's certificate renewed in place. */
#include "certs.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "filewatch.h"
#include "log.h"
#include "tls.h"

/* A new pair that does not load is tried once more after this: the second file may be on its way. */
#define RETRY_MS 1000

/* What the two files are: a renewal shows as a change here (a new inode, size or time). */
struct pair_id {
    dev_t dev[2];
    ino_t ino[2];
    off_t size[2];
    struct timespec mtime[2], ctime[2];
};

struct certs {
    const struct config *cfg;
    struct tls_ctx *front, *upstream, *gluetun;
    char front_text[160];
    struct pair_id loaded;  /* the pair in use */
    struct pair_id refused; /* the last pair that would not load, logged once */
    bool have_refused, retried, missing_logged;
    struct filewatch *watch[2]; /* the certificate's directory and the key's */
    uv_timer_t retry;
    bool timer_open, watching_failed;
    void (*on_renewed)(void *arg, struct tls_ctx *ctx);
    void *arg;
};

/* Fills id from the two files; -1 with the path of one that cannot be seen in *missing (errno says why). */
static int pair_stat(const struct certs *c, struct pair_id *id, const char **missing)
{
    const char *paths[2] = {c->cfg->tls_cert_file, c->cfg->tls_key_file};
    memset(id, 0, sizeof *id);
    for (int i = 0; i < 2; i++) {
        struct stat st;
        if (stat(paths[i], &st) != 0) {
            *missing = paths[i];
            return -1;
        }
        id->dev[i] = st.st_dev;
        id->ino[i] = st.st_ino;
        id->size[i] = st.st_size;
        id->mtime[i] = st.st_mtim;
        id->ctime[i] = st.st_ctim;
    }
    return 0;
}

static bool pair_same(const struct pair_id *a, const struct pair_id *b)
{
    for (int i = 0; i < 2; i++) {
        if (a->dev[i] != b->dev[i] || a->ino[i] != b->ino[i] || a->size[i] != b->size[i] ||
            a->mtime[i].tv_sec != b->mtime[i].tv_sec || a->mtime[i].tv_nsec != b->mtime[i].tv_nsec ||
            a->ctime[i].tv_sec != b->ctime[i].tv_sec || a->ctime[i].tv_nsec != b->ctime[i].tv_nsec)
            return false;
    }
    return true;
}

int certs_load(const struct config *cfg, struct certs **out, char *err, size_t errlen)
{
    struct certs *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    c->cfg = cfg;
    *out = c;
    if (!cfg->tls_cert_file && !cfg->qbit.https && !(cfg->have_gluetun && cfg->gluetun.https))
        return 0; /* no TLS: OpenSSL is not even loaded, so it costs no memory */
    if (tls_load(err, errlen) != 0)
        goto fail;
    if (cfg->tls_cert_file) {
        /* The identity first: a file replaced between the two reads is seen as a change later. */
        const char *missing;
        pair_stat(c, &c->loaded, &missing);
        if (tls_server_ctx_new(cfg->tls_cert_file, cfg->tls_key_file, &c->front, err, errlen) != 0)
            goto fail;
        if (tls_ctx_describe(c->front, c->front_text, sizeof c->front_text))
            log_warn("the certificate in TLS_CERT_FILE=\"%s\" has %s: browsers will refuse it",
                     cfg->tls_cert_file, c->front_text);
    }
    if (cfg->qbit.https && tls_client_ctx_new(cfg->qbit_ca_file, cfg->qbit_tls_insecure, "QBIT_CA_FILE",
                                              "QBIT_ADDR", &c->upstream, err, errlen) != 0)
        goto fail;
    if (cfg->have_gluetun && cfg->gluetun.https &&
        tls_client_ctx_new(cfg->gluetun_ca_file, false, "GLUETUN_CA_FILE", "GLUETUN_CONTROL_URL", &c->gluetun,
                           err, errlen) != 0)
        goto fail;
    return 0;
fail:
    certs_free(c);
    *out = NULL;
    return -1;
}

struct tls_ctx *certs_front(const struct certs *c)
{
    return c->front;
}

struct tls_ctx *certs_upstream(const struct certs *c)
{
    return c->upstream;
}

struct tls_ctx *certs_gluetun(const struct certs *c)
{
    return c->gluetun;
}

const char *certs_front_describe(const struct certs *c)
{
    return c->front_text;
}

static void reload(struct certs *c);

static void on_retry(uv_timer_t *t)
{
    struct certs *c = t->data;
    c->retried = true;
    reload(c);
}

/* Either file may have changed: load the pair when it is a new one. */
static void reload(struct certs *c)
{
    struct pair_id id;
    const char *missing = NULL;
    if (pair_stat(c, &id, &missing) != 0) {
        /* A file is missing for now (a rename on its way, a secret being remounted): the old pair stays. */
        if (!c->retried && !uv_is_active((uv_handle_t *)&c->retry))
            uv_timer_start(&c->retry, on_retry, RETRY_MS, 0);
        else if (c->retried && !c->missing_logged)
            log_warn("cannot read %s: %s; the TLS certificate in use stays (%s)", missing, strerror(errno),
                     c->front_text);
        c->missing_logged = c->retried;
        return;
    }
    c->missing_logged = false;
    if (pair_same(&id, &c->loaded) || (c->have_refused && pair_same(&id, &c->refused)))
        return;
    char err[512];
    struct tls_ctx *ctx;
    if (tls_server_ctx_new(c->cfg->tls_cert_file, c->cfg->tls_key_file, &ctx, err, sizeof err) != 0) {
        if (!c->retried) {
            /* The certificate may be new and the key not yet: look again before calling it broken. */
            uv_timer_start(&c->retry, on_retry, RETRY_MS, 0);
            return;
        }
        c->refused = id;
        c->have_refused = true;
        log_error("the renewed TLS certificate cannot be used, so the previous one stays (%s): %s",
                  c->front_text, err);
        return;
    }
    c->retried = false;
    c->have_refused = false;
    c->loaded = id;
    struct tls_ctx *old = c->front;
    c->front = ctx;
    bool expired = tls_ctx_describe(ctx, c->front_text, sizeof c->front_text);
    if (c->on_renewed)
        c->on_renewed(c->arg, ctx);
    tls_ctx_free(old); /* open connections keep what they use */
    if (expired)
        log_warn("TLS certificate renewed from %s, but it has %s", c->cfg->tls_cert_file, c->front_text);
    else
        log_info("TLS certificate renewed from %s: %s", c->cfg->tls_cert_file, c->front_text);
}

static void on_look(void *arg, enum filewatch_event event, int err)
{
    struct certs *c = arg;
    if (event == FILEWATCH_CHANGED || event == FILEWATCH_WRITTEN) {
        c->watching_failed = false;
        c->retried = false;
        uv_timer_stop(&c->retry);
        reload(c);
        return;
    }
    if (!c->watching_failed)
        log_warn("cannot watch the directory of TLS_CERT_FILE or TLS_KEY_FILE: %s; the certificate in use "
                 "stays, and a renewal is seen once the directory is back",
                 event == FILEWATCH_NO_DIR ? "it does not exist" : uv_strerror(err));
    c->watching_failed = true;
}

int certs_watch(struct certs *c, uv_loop_t *loop, void (*on_renewed)(void *arg, struct tls_ctx *ctx),
                void *arg)
{
    if (!c->front)
        return 0;
    c->on_renewed = on_renewed;
    c->arg = arg;
    uv_timer_init(loop, &c->retry);
    c->retry.data = c;
    c->timer_open = true;
    const char *paths[2] = {c->cfg->tls_cert_file, c->cfg->tls_key_file};
    for (int i = 0; i < 2; i++) {
        /* Settled, not at once: a certificate and its key are written one after the other. */
        int rc = filewatch_start(loop, paths[i], 0, on_look, c, &c->watch[i]);
        if (rc != 0)
            return rc;
        filewatch_look(c->watch[i]);
    }
    return 0;
}

void certs_stop(struct certs *c)
{
    if (!c)
        return;
    for (int i = 0; i < 2; i++) {
        filewatch_stop(c->watch[i]);
        c->watch[i] = NULL;
    }
    if (c->timer_open) {
        c->timer_open = false;
        uv_close((uv_handle_t *)&c->retry, NULL);
    }
}

void certs_free(struct certs *c)
{
    if (!c)
        return;
    tls_ctx_free(c->front);
    tls_ctx_free(c->upstream);
    tls_ctx_free(c->gluetun);
    free(c);
}
