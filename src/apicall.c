/* apicall.c - one API call over the upstream client, its answer kept whole. */
#include "apicall.h"

#include <errno.h>

static const struct upstream_handler handler;

void apicall_init(struct apicall *a, struct upstream *up, size_t limit, const struct apicall_ops *ops,
                  void *ctx)
{
    *a = (struct apicall){.up = up, .ops = ops, .ctx = ctx};
    buf_init(&a->body, limit);
}

/* Puts the request on a connection (a new one for the retry); returns 0 or UV_ENOMEM. */
static int attempt(struct apicall *a)
{
    a->status = 0;
    buf_reset(&a->body);
    a->conn = upstream_conn_get(a->up, a->flags | (a->retried ? UPSTREAM_FRESH : 0), &handler, a);
    if (!a->conn)
        return UV_ENOMEM;
    /* The whole call within one deadline: an answer that trickles must not hold its owner for as long
     * as it trickles. */
    upstream_conn_set_deadline(a->conn, a->deadline);
    return 0;
}

int apicall_start(struct apicall *a, unsigned flags, bool repeatable, uint64_t deadline)
{
    if (a->conn)
        return UV_EBUSY;
    a->flags = flags;
    a->repeatable = repeatable;
    a->retried = false;
    a->deadline = deadline;
    return attempt(a);
}

void apicall_abort(struct apicall *a)
{
    if (a->conn)
        upstream_conn_abort(a->conn);
    a->conn = NULL;
}

void apicall_free(struct apicall *a)
{
    apicall_abort(a);
    buf_free(&a->body);
}

/* Ends the call with a failure. The connection is already gone: the owner may start the next call. */
static void fail(struct apicall *a, enum apicall_stage stage, int err, const char *reason)
{
    a->conn = NULL;
    struct apicall_failure f = {.stage = stage, .err = err, .reason = reason ? reason : uv_strerror(err)};
    a->ops->on_failure(a->ctx, &f);
}

/* ---- upstream events ---- */

static void on_connect(void *ctx, struct upstream_conn *c, const struct upstream_failure *f)
{
    struct apicall *a = ctx;
    a->conn = c;
    if (f) {
        fail(a, APICALL_CONNECT, f->err, f->reason);
        return;
    }
    int rc = a->ops->write_request(a->ctx, c);
    if (rc != 0) {
        upstream_conn_abort(c);
        fail(a, APICALL_SEND, rc, NULL);
        return;
    }
    upstream_conn_request_done(c);
}

static void on_head(void *ctx, const struct upstream_response *r)
{
    struct apicall *a = ctx;
    a->status = r->status;
    if (a->ops->on_head)
        a->ops->on_head(a->ctx, r);
}

static void on_body(void *ctx, const char *data, size_t len)
{
    struct apicall *a = ctx;
    int rc = buf_append(&a->body, data, len);
    if (rc != 0) {
        upstream_conn_abort(a->conn);
        fail(a, rc == -E2BIG ? APICALL_TOO_LARGE : APICALL_NO_MEMORY, rc, NULL);
    }
}

static void on_end(void *ctx)
{
    struct apicall *a = ctx;
    upstream_conn_release(a->conn, 1);
    a->conn = NULL;
    a->ops->on_answer(a->ctx, a->status, a->body.data ? a->body.data : "", a->body.len);
}

static void on_error(void *ctx, const struct upstream_failure *f)
{
    struct apicall *a = ctx;
    a->conn = NULL;
    if (upstream_may_retry(f, a->repeatable, a->retried)) {
        a->retried = true;
        int rc = attempt(a);
        if (rc != 0)
            fail(a, APICALL_NO_MEMORY, rc, NULL);
        return;
    }
    fail(a, APICALL_EXCHANGE, f->err, f->reason);
}

static const struct upstream_handler handler = {
    .on_connect = on_connect,
    .on_head = on_head,
    .on_body = on_body,
    .on_end = on_end,
    .on_error = on_error,
};
