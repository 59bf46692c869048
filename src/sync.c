/* sync.c - desired port (the file) versus actual port (qBittorrent): compare, apply, verify, retry. */
#include "sync.h"

#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "allowlist.h"
#include "backoff.h"
#include "gluetun.h"
#include "log.h"
#include "metrics.h"
#include "watcher.h"

#define AUTH_BACKOFF_MS (5 * 60 * 1000)
#define BAN_BACKOFF_MS (15 * 60 * 1000)
#define SYNC_MIN_INTERVAL_MS 1000

enum step { STEP_READ, STEP_TRUST, STEP_SET_TEMP, STEP_SET, STEP_VERIFY, STEP_REANNOUNCE };

struct sync {
    uv_loop_t *loop;
    const struct config *cfg;
    struct qbt *qbt;
    struct watcher *watcher;
    struct gluetun
        *gluetun;    /* Gluetun's control server, NULL unless configured; asked while the file is missing */
    uv_timer_t next; /* the retry after a failure, or the periodic re-check */

    /* What the file says, and the control server. */
    enum watcher_state file_state;
    char file_detail[512];
    bool file_seen; /* read at least once */
    enum gluetun_state control_state;
    char control_detail[512];
    bool control_awaited; /* a /sync waits for the control server's answer before its run */
    bool have_port;       /* a port to push: the file's last valid port, while forwarding is up */
    uint16_t desired;     /* the last valid port read (kept while the file is empty or gone) */
    uint64_t gone_since;  /* when the file went empty or missing, 0 while it holds a port */
    bool rebind_pending;  /* forwarding restarted: re-bind even if the port is unchanged */
    uint64_t changed_at;  /* when desired last changed, for the latency log */

    /* What qBittorrent says. */
    int qbt_port;           /* -1 until read */
    enum qbt_result result; /* of the last run */
    char detail[512];       /* its failure, if any */
    bool ran;               /* at least one run finished */
    uint16_t confirmed;     /* the desired port qBittorrent confirmed, 0 if none */
    bool bypass_exposed;    /* localhost bypass on, not trusted, non-loopback clients allowed */

    /* The run in progress. */
    bool running, again, stopped;
    enum step step;
    uint16_t target;
    unsigned long runs; /* runs started */
    unsigned failures;
    bool blocked;          /* waiting out a login backoff: triggers wait for the timer */
    uint64_t last_request; /* last /sync, for the rate limit */
    struct sync_waiter *waiters;
};

/*
 * The longest time the source may say "no port" within one rewrite of the file rather than a new
 * forwarding session: Gluetun truncates the file, then writes it, and a loaded machine can stall a
 * writer in between for more than the settle time. A VPN reconnect, the case that re-binds, keeps
 * the file empty for seconds (the tunnel, then the provider's port request).
 */
#define REWRITE_GAP_MS 500

static void run(struct sync *s);
static void on_qbt(void *ctx, enum qbt_result result, int port, const char *detail);

/* ---- outcome reporting ---- */

/* The control server speaks for Gluetun only while the file is missing: the file, when there, leads. */
static bool using_control(const struct sync *s)
{
    return s->gluetun && s->file_state == WATCH_MISSING;
}

/* The source in use serves a port now. */
static bool source_has_port(const struct sync *s)
{
    return using_control(s) ? s->control_state == GLUETUN_PORT : s->file_state == WATCH_PORT;
}

static int outcome_status(const struct sync *s)
{
    if (!source_has_port(s))
        return using_control(s) && s->control_state == GLUETUN_FAILED ? 502 : 422;
    switch (s->result) {
    case QBT_OK:
        return s->confirmed == s->desired ? 200 : 502;
    case QBT_TIMEOUT:
        return 504;
    case QBT_AUTH_FAILED:
    case QBT_BANNED:
        return 401;
    case QBT_UNREACHABLE:
    case QBT_BAD_RESPONSE:
        break;
    }
    return 502;
}

static const char *outcome_name(const struct sync *s)
{
    if (s->result != QBT_OK)
        return qbt_result_name(s->result);
    if (using_control(s) && s->control_state == GLUETUN_FAILED)
        return "source_failed"; /* qBittorrent may well have the last port: what is new cannot be known */
    if (!s->have_port)
        return "no_port";
    return s->confirmed == s->desired ? "in_sync" : "not_applied";
}

/* Writes the JSON body of /sync; returns the HTTP status. */
static int describe(const struct sync *s, char *json, size_t len)
{
    json_t *o = json_object();
    json_object_set_new(o, "desired_port", s->have_port ? json_integer(s->desired) : json_null());
    json_object_set_new(o, "qbittorrent_port", s->qbt_port >= 0 ? json_integer(s->qbt_port) : json_null());
    json_object_set_new(o, "source", json_string(using_control(s) ? "control_server" : "file"));
    json_object_set_new(o, "file", json_string(watcher_state_name(s->file_state)));
    if (s->gluetun)
        json_object_set_new(o, "control_server", json_string(gluetun_state_name(s->control_state)));
    json_object_set_new(o, "outcome", json_string(outcome_name(s)));
    const char *msg =
        s->result != QBT_OK ? s->detail
        : using_control(s) && s->control_state == GLUETUN_DOWN
            ? "Gluetun's control server reports no forwarded port: port forwarding is down; qBittorrent's "
              "port "
              "is kept"
        : using_control(s) && s->control_state == GLUETUN_FAILED ? s->control_detail
        : using_control(s) && s->control_state == GLUETUN_UNKNOWN
            ? "no answer from Gluetun's control server yet; qBittorrent's port is kept"
        : using_control(s) ? "qBittorrent listens on the forwarded port"
        : s->file_state == WATCH_MISSING
            ? "the port file does not exist: port forwarding is not up; qBittorrent's port is kept"
        : s->file_state == WATCH_EMPTY
            ? "the port file is empty: port forwarding is down; qBittorrent's port is kept"
        : s->file_state != WATCH_PORT ? s->file_detail
                                      : "qBittorrent listens on the forwarded port";
    json_object_set_new(o, "message", json_string(msg));
    char *text = json_dumps(o, JSON_COMPACT);
    snprintf(json, len, "%s\n", text ? text : "{}");
    free(text);
    json_decref(o);
    return outcome_status(s);
}

static void notify_waiters(struct sync *s, unsigned long finished_run)
{
    char json[1024];
    int status = describe(s, json, sizeof json);
    struct sync_waiter *w = s->waiters;
    while (w) {
        struct sync_waiter *next = w->next;
        if (w->first_run <= finished_run) {
            sync_waiter_cancel(s, w);
            w->cb(w, status, json);
        }
        w = next;
    }
}

/* ---- running ---- */

static void on_next_timer(uv_timer_t *t)
{
    struct sync *s = t->data;
    s->blocked = false;
    run(s);
}

static void finish(struct sync *s, enum qbt_result result, const char *detail)
{
    unsigned long finished = s->runs;
    s->running = false;
    s->ran = true;
    bool changed = s->result != result || (detail && strcmp(detail, s->detail) != 0);
    s->result = result;
    snprintf(s->detail, sizeof s->detail, "%s", detail ? detail : "");
    unsigned delay;
    if (result == QBT_OK) {
        if (s->failures > 0)
            log_info("qBittorrent answers again");
        s->failures = 0;
        delay = s->cfg->resync_interval_ms;
        metrics.sync_successes++;
        metrics.last_success_time = (double)time(NULL);
    } else {
        s->failures++;
        s->confirmed = 0;
        metrics.sync_failures[result]++;
        if (result == QBT_AUTH_FAILED || result == QBT_BANNED) {
            /* Never retry a refused login fast enough to earn (or extend) a ban. */
            delay = result == QBT_BANNED ? BAN_BACKOFF_MS : AUTH_BACKOFF_MS;
            s->blocked = true;
        } else {
            delay = backoff_ms(s->failures, backoff_jitter());
        }
        /* A failure that repeats is logged when it changes, and then every 8th time (with the retry count).
         */
        if (changed || s->failures % 8 == 1)
            log_error(
                "port sync failed: %s; retrying in %u s (attempt %u; repeats are logged every 8th time)",
                s->detail, (delay + 500) / 1000, s->failures);
    }
    metrics.applied_port = s->confirmed;
    /* Blocked by a login backoff, no run follows soon: everyone waiting gets this outcome. */
    notify_waiters(s, s->blocked ? ULONG_MAX : finished);
    if (s->stopped)
        return;
    if (s->again && !s->blocked) {
        s->again = false;
        run(s);
        return;
    }
    s->again = false;
    if (delay > 0)
        uv_timer_start(&s->next, on_next_timer, delay, 0);
}

static void call(struct sync *s, enum step step, uint16_t port)
{
    s->step = step;
    int rc = step == STEP_READ || step == STEP_VERIFY ? qbt_get_port(s->qbt, on_qbt, s)
             : step == STEP_REANNOUNCE                ? qbt_reannounce(s->qbt, on_qbt, s)
                                                      : qbt_set_port(s->qbt, port, on_qbt, s);
    if (rc != 0 && step == STEP_REANNOUNCE) {
        log_warn("cannot ask qBittorrent to re-announce its torrents: %s", uv_strerror(rc));
        finish(s, QBT_OK, NULL);
    } else if (rc != 0) {
        finish(s, QBT_UNREACHABLE, uv_strerror(rc));
    }
}

/* Returns true when addr is in qBittorrent's trusted-proxy list ("127.0.0.1;10.0.0.0/8"). */
static bool proxy_list_covers(const char *list, const char *addr)
{
    char text[1024], err[256];
    snprintf(text, sizeof text, "%s", list);
    for (char *c = text; *c; c++) {
        if (*c == ';')
            *c = ',';
    }
    struct sockaddr_storage ss;
    if (uv_ip4_addr(addr, 0, (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(addr, 0, (struct sockaddr_in6 *)&ss) != 0)
        return false;
    struct allowlist *trusted;
    if (allowlist_parse(text, &trusted, err, sizeof err) != 0)
        return strstr(list, addr) != NULL; /* an entry we cannot parse: fall back to the literal */
    bool covered = allowlist_match(trusted, (struct sockaddr *)&ss);
    allowlist_free(trusted);
    return covered;
}

/*
 * Every proxied request reaches qBittorrent from our address. Unless it takes
 * the client's address from our X-Forwarded-For, its localhost bypass lets any
 * allowed client in without a password, and five wrong logins ban us all.
 * Returns true when a call to fix that was started.
 */
static bool check_trust(struct sync *s)
{
    const struct qbt_prefs *prefs = qbt_prefs(s->qbt);
    const char *addr = qbt_local_addr(s->qbt);
    bool listed = prefs->has_proxy_settings && addr[0] && proxy_list_covers(prefs->proxies_list, addr);
    bool trusted = listed && prefs->reverse_proxy_enabled;
    /* Checked on every run, so a qBittorrent that lost the setting (restart, reset) gets it back. */
    if (s->cfg->trust_proxy && !trusted && prefs->has_proxy_settings && addr[0]) {
        /* Keep what is there; add our address only when the list does not already cover it. */
        char list[1100];
        const char *old = prefs->proxies_list;
        snprintf(list, sizeof list, "%s%s%s", old, listed ? "" : old[0] ? ";" : "", listed ? "" : addr);
        log_info("QBIT_TRUST_PROXY: turning on qBittorrent's reverse-proxy support with %s among its trusted "
                 "proxies (now \"%s\"), so it sees each client's own address",
                 addr, list);
        s->step = STEP_TRUST;
        int rc = qbt_set_trusted_proxies(s->qbt, list, on_qbt, s);
        if (rc != 0)
            finish(s, QBT_UNREACHABLE, uv_strerror(rc));
        return true;
    }
    s->bypass_exposed = !trusted && prefs->bypass_local_auth && !allowlist_only_loopback(s->cfg->allowed);
    metrics.localhost_bypass_exposed = s->bypass_exposed;
    if (s->bypass_exposed)
        log_warn("SECURITY: qBittorrent's \"Bypass authentication for clients on localhost\" is on and it "
                 "does not trust this sidecar's X-Forwarded-For: every client in ALLOWED_IPS=\"%s\" reaches "
                 "it from %s and gets the WebUI without a password. Set QBIT_TRUST_PROXY=true, or turn the "
                 "bypass off in qBittorrent, or limit ALLOWED_IPS to loopback",
                 s->cfg->allowed_ips_text, addr[0] ? addr : "localhost");
    return false;
}

/* qBittorrent's Host rule, which the front door applies to the browser's Host (hostcheck.h). */
static void learn_hosts(struct sync *s)
{
    const struct qbt_prefs *prefs = qbt_prefs(s->qbt);
    if (!prefs->has_host_settings ||
        !hostcheck_set_qbt(s->cfg->hosts, prefs->host_validation, prefs->domain_list))
        return;
    const char *own = hostcheck_has_own_list(s->cfg->hosts) ? ", and ALLOWED_HOSTS" : "";
    if (prefs->host_validation)
        log_info(
            "Host check: qBittorrent answers to the names in \"%s\" and to its own address; the front door "
            "passes the same%s, and refuses other names with 421",
            prefs->domain_list, own);
    else
        log_info("Host check: qBittorrent does not check Host names; the front door checks %s",
                 own[0] ? "ALLOWED_HOSTS" : "none either");
}

/* A port for the brief detour of a forced re-bind: any valid port other than the target. */
static uint16_t temp_port(uint16_t target)
{
    return target < 65535 ? (uint16_t)(target + 1) : (uint16_t)(target - 1);
}

static void on_qbt(void *ctx, enum qbt_result result, int port, const char *detail)
{
    struct sync *s = ctx;
    if (s->stopped)
        return;
    if (s->step == STEP_REANNOUNCE) {
        /* The port is set and confirmed either way: a failed re-announce only delays the trackers. */
        if (result != QBT_OK)
            log_warn("qBittorrent did not re-announce its torrents after the port change: %s", detail);
        else
            log_info("asked qBittorrent to re-announce every torrent on port %u", s->target);
        finish(s, QBT_OK, NULL);
        return;
    }
    if (result != QBT_OK) {
        finish(s, result, detail);
        return;
    }
    switch (s->step) {
    case STEP_READ:
        s->qbt_port = port;
        learn_hosts(s);
        if (check_trust(s))
            return;
        /* fall through */
    case STEP_TRUST:
        port = s->qbt_port;
        if (!s->have_port) {
            s->confirmed = 0;
            finish(s, QBT_OK, NULL);
            return;
        }
        /* Read desired now, not when the run began: the newest port wins. */
        s->target = s->desired;
        if (s->rebind_pending && port == s->target) {
            log_info("port forwarding restarted: re-binding qBittorrent via port %u", temp_port(s->target));
            call(s, STEP_SET_TEMP, temp_port(s->target));
        } else if (port != s->target) {
            call(s, STEP_SET, s->target);
        } else {
            s->rebind_pending = false;
            if (s->confirmed != s->target)
                log_info("qBittorrent already listens on the forwarded port %u", s->target);
            s->confirmed = s->target;
            finish(s, QBT_OK, NULL);
        }
        return;
    case STEP_SET_TEMP:
        call(s, STEP_SET, s->target);
        return;
    case STEP_SET:
        call(s, STEP_VERIFY, 0);
        return;
    case STEP_VERIFY:
        s->qbt_port = port;
        if (port != s->target) {
            char msg[128];
            snprintf(msg, sizeof msg, "qBittorrent reports port %d after being set to %u", port, s->target);
            finish(s, QBT_BAD_RESPONSE, msg);
            return;
        }
        if (s->target == s->desired)
            s->rebind_pending = false;
        s->confirmed = s->target;
        log_info("qBittorrent now listens on port %u (%llu ms after the source changed)", s->target,
                 (unsigned long long)(uv_now(s->loop) - s->changed_at));
        metrics_observe(&metrics.apply_latency, (double)(uv_now(s->loop) - s->changed_at) / 1000.0);
        /* Its trackers would go on announcing the old port until their next interval (30 min and more):
         * peers would keep trying a dead port. Only after a port was set, not after a check. */
        if (s->cfg->reannounce_on_change) {
            call(s, STEP_REANNOUNCE, 0);
            return;
        }
        finish(s, QBT_OK, NULL);
        return;
    case STEP_REANNOUNCE:
        return; /* handled above */
    }
}

static void run(struct sync *s)
{
    if (s->stopped)
        return;
    if (s->running) {
        s->again = true;
        return;
    }
    if (s->blocked) {
        s->again = true;
        return;
    }
    uv_timer_stop(&s->next);
    s->running = true;
    s->runs++;
    metrics.sync_attempts++;
    call(s, STEP_READ, 0);
}

/* ---- the sources ---- */

/* The source in use serves port: apply it when it is new, or after forwarding restarted. */
static void source_port(struct sync *s, uint16_t port)
{
    uint64_t now = uv_now(s->loop);
    /* A port after a gap longer than one in-place rewrite means a new forwarding session. */
    bool reconnect = s->gone_since && now - s->gone_since > REWRITE_GAP_MS;
    bool changed = !s->have_port || port != s->desired;
    if (reconnect && s->cfg->rebind_on_reconnect && s->ran)
        s->rebind_pending = true;
    s->gone_since = 0;
    if (!changed && !s->rebind_pending)
        return;
    if (changed)
        log_info("forwarded port is %u%s", port, s->have_port && port != s->desired ? " (changed)" : "");
    s->have_port = true;
    s->desired = port;
    metrics.desired_port = port;
    /* A new port is a fresh start: failures with older ones must not stretch its backoff. */
    if (changed)
        s->failures = 0;
    s->changed_at = now;
    run(s);
}

/* The source in use says forwarding is down (what says it is logged when it starts saying so). */
static void source_down(struct sync *s, bool newly, const char *what)
{
    if (!s->gone_since)
        s->gone_since = uv_now(s->loop) ? uv_now(s->loop) : 1;
    if (s->have_port || newly)
        log_info("%s: port forwarding is not up; qBittorrent keeps its current port", what);
    if (s->have_port) {
        s->have_port = false;
        s->confirmed = 0;
        metrics.desired_port = 0;
        metrics.applied_port = 0;
    }
}

static void on_file(void *ctx, enum watcher_state state, uint16_t port, const char *detail)
{
    struct sync *s = ctx;
    enum watcher_state before = s->file_state;
    s->file_state = state;
    snprintf(s->file_detail, sizeof s->file_detail, "%s", detail ? detail : "");
    char what[64];
    snprintf(what, sizeof what, "port file is %s", watcher_state_name(state));
    bool was_missing = s->file_seen && before == WATCH_MISSING;
    s->file_seen = true;
    if (s->gluetun && (state == WATCH_MISSING) != was_missing) {
        /* The control server answers while the file is missing; its state from before is stale. */
        if (state == WATCH_MISSING)
            log_info("port file %s does not exist: asking Gluetun's control server at %s%s",
                     s->cfg->port_file, s->cfg->gluetun.origin, s->cfg->gluetun.prefix);
        s->control_state = GLUETUN_UNKNOWN;
        gluetun_poll(s->gluetun, state == WATCH_MISSING);
    }
    switch (state) {
    case WATCH_PORT:
        source_port(s, port);
        return;
    case WATCH_MISSING:
        if (s->gluetun)
            return; /* the control server decides, once it answers */
        /* fall through */
    case WATCH_EMPTY:
        source_down(s, before != state, what);
        return;
    case WATCH_INVALID:
    case WATCH_UNREADABLE:
        return; /* logged by the watcher; the last port stays */
    }
}

static void on_control(void *ctx, enum gluetun_state state, uint16_t port, const char *detail)
{
    struct sync *s = ctx;
    enum gluetun_state before = s->control_state;
    bool awaited = s->control_awaited;
    unsigned long runs = s->runs;
    s->control_awaited = false;
    if (!using_control(s))
        return; /* the file came back meanwhile and leads */
    s->control_state = state;
    switch (state) {
    case GLUETUN_PORT:
        s->control_detail[0] = '\0';
        source_port(s, port);
        break;
    case GLUETUN_DOWN:
        s->control_detail[0] = '\0';
        source_down(s, before != state, "Gluetun's control server reports no forwarded port");
        break;
    case GLUETUN_FAILED:
        /* Logged when it starts or changes, not at every poll; the last port stays. */
        if (before != state || strcmp(detail, s->control_detail) != 0)
            log_error("%s; asking again with backoff, qBittorrent keeps its port", detail);
        snprintf(s->control_detail, sizeof s->control_detail, "%s", detail);
        break;
    case GLUETUN_UNKNOWN:
        break;
    }
    if (before == GLUETUN_FAILED && state != GLUETUN_FAILED)
        log_info("Gluetun's control server answers again");
    /* A /sync waits for a run that follows this answer, whether or not it changed anything. */
    if (awaited && s->runs == runs)
        run(s);
}

/* ---- the outside ---- */

int sync_new(uv_loop_t *loop, const struct config *cfg, struct qbt *q, struct upstream *gluetun_up,
             struct sync **out)
{
    struct sync *s = calloc(1, sizeof *s);
    if (!s)
        return UV_ENOMEM;
    if (gluetun_up && gluetun_new(loop, cfg, gluetun_up, on_control, s, &s->gluetun) != 0) {
        free(s);
        return UV_ENOMEM;
    }
    s->loop = loop;
    s->cfg = cfg;
    s->qbt = q;
    s->qbt_port = -1;
    s->file_state = WATCH_MISSING;
    uv_timer_init(loop, &s->next);
    s->next.data = s;
    *out = s;
    return 0;
}

int sync_start(struct sync *s)
{
    int rc = watcher_start(s->loop, s->cfg->port_file, on_file, s, &s->watcher);
    if (rc != 0)
        return rc;
    /* Start-up never waits for qBittorrent: this only starts the first run, unless reading the file
     * (a port in it) already did. Asking again would queue a second run right behind the first, and
     * /readyz would turn ready while that one is still on its way. */
    if (!s->running)
        run(s);
    return 0;
}

void sync_stop(struct sync *s)
{
    if (s->stopped)
        return;
    s->stopped = true;
    /* A /sync still waiting gets an answer, so shutdown does not wait for its deadline. */
    char json[128];
    snprintf(json, sizeof json, "{\"outcome\":\"shutting_down\",\"message\":\"the sidecar is stopping\"}\n");
    while (s->waiters) {
        struct sync_waiter *w = s->waiters;
        sync_waiter_cancel(s, w);
        w->cb(w, 503, json);
    }
    watcher_stop(s->watcher);
    s->watcher = NULL;
    gluetun_stop(s->gluetun);
    s->gluetun = NULL;
    qbt_cancel(s->qbt);
    uv_close((uv_handle_t *)&s->next, NULL);
}

void sync_free(struct sync *s)
{
    free(s);
}

int sync_request(struct sync *s, struct sync_waiter *w, char *json, size_t jsonlen)
{
    uint64_t now = uv_now(s->loop);
    if (s->last_request && now - s->last_request < SYNC_MIN_INTERVAL_MS) {
        snprintf(json, jsonlen,
                 "{\"outcome\":\"rate_limited\",\"message\":\"/sync may be called once a second\"}\n");
        return 429;
    }
    s->last_request = now;
    watcher_read_now(s->watcher);
    if (s->blocked) {
        /* A login backoff is running; answering from the last run keeps us clear of a ban. */
        return describe(s, json, jsonlen);
    }
    w->first_run = s->runs + 1;
    w->prev = NULL;
    w->next = s->waiters;
    if (s->waiters)
        s->waiters->prev = w;
    s->waiters = w;
    if (using_control(s)) {
        /* Re-reading the source means asking the control server: the run follows its answer. */
        s->control_awaited = true;
        gluetun_ask(s->gluetun);
        return 0;
    }
    /* The run starts from the loop: one that fails at once must not answer w before this returns. */
    if (s->running)
        s->again = true;
    else
        uv_timer_start(&s->next, on_next_timer, 0, 0);
    return 0;
}

void sync_waiter_cancel(struct sync *s, struct sync_waiter *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else if (s->waiters == w)
        s->waiters = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->prev = w->next = NULL;
}

/* Readiness without the security warning; returns the status. */
static int readiness(const struct sync *s, char *text, size_t len)
{
    if (!s->ran) {
        snprintf(text, len, "not ready: no answer from qBittorrent yet\n");
        return 503;
    }
    if (s->result != QBT_OK) {
        snprintf(text, len, "not ready: %s\n", s->detail);
        return 503;
    }
    if (!s->have_port) {
        /* Nothing to apply yet and qBittorrent answers: ready, so the WebUI is reachable. */
        if (using_control(s))
            snprintf(text, len,
                     "ready: qBittorrent answers; no forwarded port yet (Gluetun's control server: %s)\n",
                     gluetun_state_name(s->control_state));
        else
            snprintf(text, len, "ready: qBittorrent answers; no forwarded port yet (port file %s)\n",
                     watcher_state_name(s->file_state));
        return 200;
    }
    if (s->confirmed == s->desired) {
        snprintf(text, len, "ready: qBittorrent listens on the forwarded port %u\n", s->desired);
        return 200;
    }
    snprintf(text, len, "not ready: forwarded port %u not applied yet (qBittorrent reports %d)\n", s->desired,
             s->qbt_port);
    return 503;
}

int sync_readiness(const struct sync *s, char *text, size_t len)
{
    int status = readiness(s, text, len);
    size_t used = strlen(text);
    if (s->bypass_exposed && used < len)
        snprintf(text + used, len - used,
                 "warning: qBittorrent's localhost bypass is on and it does not trust this sidecar's "
                 "X-Forwarded-For: clients in ALLOWED_IPS get the WebUI without a password "
                 "(set QBIT_TRUST_PROXY=true)\n");
    used = strlen(text);
    if (s->cfg->qbit_tls_insecure && used < len)
        snprintf(
            text + used, len - used,
            "warning: QBIT_TLS_INSECURE=true: qBittorrent's certificate is not checked (set QBIT_CA_FILE "
            "to it instead)\n");
    return status;
}
