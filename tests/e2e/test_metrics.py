"""GET /metrics (issue 7): the Prometheus text format 0.0.4, checked strictly, and values that move
with real traffic.

One scenario per test. The exposition is validated by prom_exposition.parse_exposition on every
scrape (a format error fails the test wherever it shows up). Counters are compared as deltas
between two scrapes, so what the daemon does on its own (its port-sync calls) cannot blur them;
every scrape is itself a client connection of the daemon (client_connections counts it).

/metrics is allow-list protected, so a denied client needs another address than the allowed one:
the tests bind their client sockets to 127.0.0.2 (or ::1) while ALLOWED_IPS names 127.0.0.1.
"""

import time

import pytest
import requests

from conftest import has_ipv6_loopback, port_file, wait_until
from prom_exposition import CONTENT_TYPE, ExpositionError, get, parse_exposition, scrape
from proxy_rig import exchange, proxy, upstream  # noqa: F401  (pytest fixtures)
from qbt_rig import qbt, sidecar, wait_for  # noqa: F401  (pytest fixtures)
from recording_upstream import CloseMidBody, Reply, Stall

P = "qbit_gluetun_sync_"
TIMEOUT = 10.0

# Every family issue 7 asks for, with its type.
EXPECTED_FAMILIES = {
    P + "build_info": "gauge",
    P + "desired_port": "gauge",
    P + "applied_port": "gauge",
    P + "sync_attempts_total": "counter",
    P + "sync_successes_total": "counter",
    P + "sync_failures_total": "counter",
    P + "last_success_timestamp_seconds": "gauge",
    P + "apply_latency_seconds": "histogram",
    P + "proxied_requests_total": "counter",
    P + "upstream_errors_total": "counter",
    P + "denied_requests_total": "counter",
    P + "misdirected_requests_total": "counter",
    P + "client_connections": "gauge",
    P + "upstream_connections": "gauge",
    P + "localhost_bypass_exposed": "gauge",
}
SYNC_FAILURE_REASONS = ("unreachable", "timeout", "auth_failed", "banned", "bad_response")


def m(d):
    """Scrapes daemon d (a conftest Daemon) from its own address."""
    return scrape(d.host, d.port)


def assert_project_families(expo):
    for name, fam in expo.families.items():
        assert name.startswith(P), f"metric {name} lacks the {P} prefix"
    for name, typ in EXPECTED_FAMILIES.items():
        assert name in expo.families, f"{name} missing from /metrics:\n{expo.text}"
        assert expo.families[name].type == typ, f"{name}: TYPE {expo.families[name].type}, expected {typ}"
        assert expo.families[name].help.strip(), f"{name}: empty HELP"
    info = expo.samples(P + "build_info")
    assert len(info) == 1 and info[0][1] == 1 and info[0][0].get("version"), f"build_info: {info}"


def proxied_counts(expo):
    """{(method, code): value} of proxied_requests_total."""
    return {(lab["method"], lab["code"]): v for lab, v in expo.samples(P + "proxied_requests_total")}


def delta(after, before):
    keys = set(after) | set(before)
    return {k: after.get(k, 0) - before.get(k, 0) for k in keys if after.get(k, 0) != before.get(k, 0)}


def upstream_errors(expo):
    return {lab["kind"]: v for lab, v in expo.samples(P + "upstream_errors_total")}


# --------------------------------------------------------------------------- the validator itself

GOOD = (
    "# HELP a_total A counter.\n# TYPE a_total counter\na_total 3\n"
    "# HELP g A gauge with \\\\ and \\n in its help.\n# TYPE g gauge\n"
    'g{x="a\\"b",y="c\\\\d\\ne"} -1.5e3\ng{x="z"} NaN\n'
    "# HELP h A histogram.\n# TYPE h histogram\n"
    'h_bucket{le="0.1"} 1\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 3\nh_sum 4.5\nh_count 3\n'
)

BAD = {
    "no_trailing_newline": "# HELP a_total x\n# TYPE a_total counter\na_total 1",
    "no_help": "# TYPE a_total counter\na_total 1\n",
    "no_type": "# HELP a_total x\na_total 1\n",
    "two_help": "# HELP a_total x\n# HELP a_total y\n# TYPE a_total counter\na_total 1\n",
    "two_type": "# HELP a_total x\n# TYPE a_total counter\n# TYPE a_total counter\na_total 1\n",
    "type_after_sample": "# HELP g x\ng 1\n# TYPE g gauge\n",
    "help_after_sample": "# TYPE g gauge\ng 1\n# HELP g x\n",
    "unknown_type": "# HELP g x\n# TYPE g meter\ng 1\n",
    "counter_without_total": "# HELP c x\n# TYPE c counter\nc 1\n",
    "negative_counter": "# HELP c_total x\n# TYPE c_total counter\nc_total -1\n",
    "bad_value": "# HELP g x\n# TYPE g gauge\ng one\n",
    "two_spaces": "# HELP g x\n# TYPE g gauge\ng  1\n",
    "bad_name": "# HELP g x\n# TYPE g gauge\n1g 1\n",
    "unescaped_quote": '# HELP g x\n# TYPE g gauge\ng{a="x"y"} 1\n',
    "bad_escape": '# HELP g x\n# TYPE g gauge\ng{a="x\\ty"} 1\n',
    "unclosed_label": '# HELP g x\n# TYPE g gauge\ng{a="x} 1\n',
    "repeated_label": '# HELP g x\n# TYPE g gauge\ng{a="1",a="2"} 1\n',
    "reserved_label": '# HELP g x\n# TYPE g gauge\ng{__a="1"} 1\n',
    "repeated_series": '# HELP g x\n# TYPE g gauge\ng{a="1"} 1\ng{a="1"} 2\n',
    "family_split": "# HELP g x\n# TYPE g gauge\ng 1\n# HELP f x\n# TYPE f gauge\nf 1\ng{a=\"b\"} 1\n",
    "sample_of_undeclared": "# HELP g x\n# TYPE g gauge\ng 1\nother 1\n",
    "carriage_return": "# HELP g x\r\n# TYPE g gauge\r\ng 1\r\n",
    "bad_help_escape": "# HELP g a \\t b\n# TYPE g gauge\ng 1\n",
    "hist_not_cumulative": '# HELP h x\n# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="2"} 1\n'
    'h_bucket{le="+Inf"} 2\nh_sum 1\nh_count 2\n',
    "hist_inf_ne_count": '# HELP h x\n# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 2\n'
    "h_sum 1\nh_count 3\n",
    "hist_no_inf": '# HELP h x\n# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 1\nh_count 1\n',
    "hist_le_order": '# HELP h x\n# TYPE h histogram\nh_bucket{le="2"} 1\nh_bucket{le="1"} 1\n'
    'h_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n',
    "hist_no_count": '# HELP h x\n# TYPE h histogram\nh_bucket{le="+Inf"} 1\nh_sum 1\n',
    "hist_bad_le": '# HELP h x\n# TYPE h histogram\nh_bucket{le="x"} 1\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n',
    "hist_le_on_sum": '# HELP h x\n# TYPE h histogram\nh_bucket{le="+Inf"} 1\nh_sum{le="1"} 1\nh_count 1\n',
    "hist_fractional_bucket": '# HELP h x\n# TYPE h histogram\nh_bucket{le="+Inf"} 1.5\nh_sum 1\nh_count 1.5\n',
}


def test_validator_accepts_a_valid_exposition():
    expo = parse_exposition(GOOD.encode())
    assert expo.value("a_total") == 3
    assert expo.value("g", x='a"b', y="c\\d\ne") == -1500
    assert expo.value("h_count") == 3
    assert list(expo.families) == ["a_total", "g", "h"]


@pytest.mark.parametrize("case", sorted(BAD))
def test_validator_rejects(case):
    with pytest.raises(ExpositionError):
        parse_exposition(BAD[case])


# --------------------------------------------------------------------------- format after traffic


def test_exposition_valid_after_proxied_local_and_denied_traffic(proxy, upstream):
    """Every kind of request the front door sees, then one strict parse of everything."""
    upstream.handler = lambda req, conn: Reply(404 if "missing" in req.target else 200,
                                               [("Content-Type", "text/plain")], b"x")
    d = proxy(ALLOWED_IPS="127.0.0.1")
    assert exchange(d, "GET", "/api/v2/app/version").status == 200
    assert exchange(d, "POST", "/api/v2/auth/login", [("Content-Length", "3")], b"a=b").status == 200
    assert exchange(d, "GET", "/missing").status == 404
    assert exchange(d, "HEAD", "/api/v2/app/version").status == 200
    assert get(d.host, d.port, "/api/v2/app/version", source="127.0.0.2").status == 403
    assert d.request("GET", "/healthz").status == 200
    r = get(d.host, d.port, "/metrics")
    assert r.status == 200
    assert r.header("content-type") == CONTENT_TYPE
    expo = parse_exposition(r.body)
    assert_project_families(expo)
    assert expo.value(P + "denied_requests_total") == 1
    assert set(proxied_counts(expo)) == {("GET", "2xx"), ("POST", "2xx"), ("GET", "4xx"), ("HEAD", "2xx")}


def test_head_metrics_has_headers_only(proxy):
    d = proxy()
    r = get(d.host, d.port, "/metrics", method="HEAD")
    assert r.status == 200 and r.body == b""
    assert r.header("content-type") == CONTENT_TYPE
    full = get(d.host, d.port, "/metrics")
    # The same text, give or take a counter: the length is of the same order.
    assert int(r.header("content-length")) > 0.9 * len(full.body)


def test_exposition_valid_with_real_qbittorrent_after_sync_and_login(qbt, sidecar, tmp_path):
    q = qbt()
    sc = sidecar(q, QBIT_USER=q.username, QBIT_PASS=q.password)
    port_file = tmp_path / "sidecar" / "forwarded_port"
    port_file.write_text(str(q.initial_listen_port + 7))
    q.wait_listen_port(q.initial_listen_port + 7)
    s = requests.Session()
    r = s.post(sc.base_url + "/api/v2/auth/login", data={"username": q.username, "password": q.password},
               timeout=TIMEOUT)
    assert q.login_ok(r), (r.status_code, r.text)
    assert s.get(sc.base_url + "/api/v2/app/version", timeout=TIMEOUT).status_code == 200
    expo = wait_for(lambda: (lambda e: e if e.value(P + "apply_latency_seconds_count") == 1 else None)(
        scrape("127.0.0.1", sc.port)), TIMEOUT, interval=0.05, message="apply latency never observed")
    assert_project_families(expo)
    assert proxied_counts(expo).get(("POST", "2xx")) == 1
    assert proxied_counts(expo).get(("GET", "2xx")) == 1


# --------------------------------------------------------------------------- proxied requests


def test_proxied_requests_counted_by_method_and_status_class(proxy, upstream):
    statuses = {"/s/200": 200, "/s/201": 201, "/s/302": 302, "/s/404": 404, "/s/500": 500, "/s/503": 503}
    upstream.handler = lambda req, conn: Reply(statuses[req.target.split("?")[0]],
                                               [("Content-Type", "text/plain")], b"body")
    d = proxy()
    before = proxied_counts(m(d))
    plan = [("GET", "/s/200")] * 3 + [("POST", "/s/200")] * 2 + [
        ("POST", "/s/201"), ("GET", "/s/302"), ("GET", "/s/404?x=1"), ("POST", "/s/500"),
        ("GET", "/s/503"), ("HEAD", "/s/200"), ("DELETE", "/s/404"), ("PUT", "/s/200"),
        # Methods outside the fixed list share one label value: a client cannot mint label values.
        ("PROPFIND", "/s/200"), ("MKCOL", "/s/201"),
    ]
    for method, target in plan:
        body = b"k=v" if method in ("POST", "PUT") else b""
        headers = [("Content-Length", str(len(body)))] if body else []
        r = exchange(d, method, target, headers, body)
        assert r.status == statuses[target.split("?")[0]], f"{method} {target}: {r}"
    after = proxied_counts(m(d))
    assert delta(after, before) == {
        ("GET", "2xx"): 3, ("POST", "2xx"): 3, ("GET", "3xx"): 1, ("GET", "4xx"): 1, ("POST", "5xx"): 1,
        ("GET", "5xx"): 1, ("HEAD", "2xx"): 1, ("DELETE", "4xx"): 1, ("PUT", "2xx"): 1, ("other", "2xx"): 2,
    }


def test_answers_of_the_sidecar_itself_are_not_counted_as_proxied(proxy, upstream):
    """/healthz, /metrics and a cross-origin 401 never reach qBittorrent."""
    d = proxy()
    before = m(d)
    assert d.request("GET", "/healthz").status == 200
    assert d.request("HEAD", "/healthz").status == 200
    assert get(d.host, d.port, "/metrics").status == 200
    r = exchange(d, "POST", "/api/v2/auth/login", [("Origin", "http://evil.example"), ("Content-Length", "0")])
    assert r.status == 401
    after = m(d)
    assert proxied_counts(after) == proxied_counts(before)
    assert upstream.requests() == [], "nothing was meant to be proxied"


# --------------------------------------------------------------------------- denials


def test_denied_requests_counted(daemon):
    d = daemon(ALLOWED_IPS="127.0.0.1")
    before = m(d).value(P + "denied_requests_total")
    for path in ("/", "/api/v2/app/version", "/syncx", "/metrics", "/api/v2/auth/login?x=1"):
        r = get(d.host, d.port, path, source="127.0.0.2")
        assert r.status == 403, f"{path}: {r}"
    # /healthz is open to everyone, and /sync to loopback (Gluetun's hooks): not denials.
    assert get(d.host, d.port, "/healthz", source="127.0.0.2").status == 200
    assert get(d.host, d.port, "/sync", source="127.0.0.2").status != 403
    after = m(d)
    assert after.value(P + "denied_requests_total") - before == 5
    assert proxied_counts(after) == {}, "a denied request is not a proxied one"


def test_misdirected_requests_counted(daemon):
    """A proxied request whose Host name ALLOWED_HOSTS does not list is refused with 421 and counted;
    the sidecar's own endpoints answer whatever the Host."""
    d = daemon(ALLOWED_IPS="127.0.0.1", ALLOWED_HOSTS="qbt.lan")
    before = m(d).value(P + "misdirected_requests_total")
    for path in ("/", "/api/v2/app/version"):
        r = get(d.host, d.port, path, headers={"Host": "rebind.attacker.example"})
        assert r.status == 421, f"{path}: {r}"
    assert get(d.host, d.port, "/metrics", headers={"Host": "rebind.attacker.example"}).status == 200
    assert m(d).value(P + "misdirected_requests_total") - before == 2


@pytest.mark.parametrize("denied_source", ["127.0.0.2", "::1"])
def test_metrics_from_non_allowed_address_403(daemon, denied_source):
    if denied_source == "::1" and not has_ipv6_loopback():
        pytest.skip("no IPv6 loopback on this machine")
    # All interfaces (IPv4 and IPv6), so both clients reach the same daemon.
    d = daemon(LISTEN_ADDR=None, ALLOWED_IPS="127.0.0.1")
    host = "::1" if denied_source == "::1" else "127.0.0.1"
    r = get(host, d.port, "/metrics", source=denied_source)
    assert r.status == 403, r
    assert P.encode() not in r.body, f"metrics leaked to a denied client: {r.body!r}"
    assert scrape("127.0.0.1", d.port).value(P + "denied_requests_total") == 1


# --------------------------------------------------------------------------- port sync


def test_sync_metrics_follow_port_changes_with_real_qbittorrent(qbt, sidecar, tmp_path):
    q = qbt(local_host_auth=True)
    sc = sidecar(q, QBIT_USER=q.username, QBIT_PASS=q.password)
    port_file = tmp_path / "sidecar" / "forwarded_port"

    def scrape_when(pred, what):
        return wait_for(lambda: (lambda e: e if pred(e) else None)(scrape("127.0.0.1", sc.port)), TIMEOUT,
                        interval=0.05, message=f"/metrics never showed {what}")

    # qBittorrent answered, no port file yet: a successful run, nothing desired or applied.
    e0 = scrape_when(lambda e: e.value(P + "sync_successes_total") >= 1, "a first successful sync")
    assert e0.value(P + "desired_port") == 0
    assert e0.value(P + "applied_port") == 0
    assert e0.value(P + "apply_latency_seconds_count") == 0

    p1 = q.initial_listen_port + 11
    t1 = time.time()
    port_file.write_text(str(p1))
    e1 = scrape_when(lambda e: e.value(P + "applied_port") == p1, f"applied_port {p1}")
    q.wait_listen_port(p1)
    assert e1.value(P + "desired_port") == p1
    assert e1.value(P + "apply_latency_seconds_count") == 1
    assert 0 < e1.value(P + "apply_latency_seconds_sum") < TIMEOUT
    # Unix time of the last success, to the second at least: at or after the write.
    assert int(t1) <= e1.value(P + "last_success_timestamp_seconds") <= time.time() + 1
    assert e1.value(P + "sync_successes_total") >= 2
    assert e1.value(P + "sync_attempts_total") >= e1.value(P + "sync_successes_total")
    for reason in SYNC_FAILURE_REASONS:
        assert e1.value(P + "sync_failures_total", reason=reason) == 0, reason

    p2 = p1 + 1
    port_file.write_text(str(p2))
    e2 = scrape_when(lambda e: e.value(P + "applied_port") == p2, f"applied_port {p2}")
    assert e2.value(P + "desired_port") == p2
    assert e2.value(P + "apply_latency_seconds_count") == 2
    assert e2.value(P + "apply_latency_seconds_sum") >= e1.value(P + "apply_latency_seconds_sum")
    assert e2.value(P + "sync_successes_total") > e1.value(P + "sync_successes_total")
    assert e2.value(P + "sync_attempts_total") > e1.value(P + "sync_attempts_total")
    # Both observations are under the largest finite bound (10 s): the buckets say so too.
    assert e2.value(P + "apply_latency_seconds_bucket", le="10") == 2

    # Forwarding down (Gluetun empties the file): nothing is desired any more.
    port_file.write_text("")
    scrape_when(lambda e: e.value(P + "desired_port") == 0, "desired_port 0 after the file emptied")
    assert q.listen_port() == p2, "qBittorrent keeps its port while forwarding is down"


def test_sync_failures_counted_unreachable(daemon):
    """Nothing listens at QBIT_ADDR: runs fail as unreachable, retried after 1 s, 2 s, ..."""
    d = daemon(ALLOWED_IPS="127.0.0.1")
    e = wait_until(lambda: (lambda x: x if x.value(P + "sync_failures_total", reason="unreachable") >= 2
                            else None)(m(d)), TIMEOUT, interval=0.1,
                   message="two unreachable failures never counted")
    assert e.value(P + "sync_successes_total") == 0
    assert e.value(P + "last_success_timestamp_seconds") == 0
    for reason in SYNC_FAILURE_REASONS[1:]:
        assert e.value(P + "sync_failures_total", reason=reason) == 0, reason
    failures = sum(e.value(P + "sync_failures_total", reason=r) for r in SYNC_FAILURE_REASONS)
    # Every run started has ended in a failure, except perhaps the one in progress.
    assert e.value(P + "sync_attempts_total") - failures in (0, 1)


def test_sync_failure_auth_failed_counted_once(qbt, sidecar):
    """A refused login is counted by its reason; the sidecar then waits minutes before retrying."""
    q = qbt(local_host_auth=True)
    sc = sidecar(q, QBIT_USER=q.username, QBIT_PASS="not-the-password")
    e = wait_for(lambda: (lambda x: x if x.value(P + "sync_failures_total", reason="auth_failed") >= 1
                          else None)(scrape("127.0.0.1", sc.port)), TIMEOUT, interval=0.05,
                 message="auth_failed never counted")
    assert e.value(P + "sync_failures_total", reason="auth_failed") == 1
    assert e.value(P + "sync_attempts_total") == 1
    assert e.value(P + "sync_successes_total") == 0
    assert e.value(P + "applied_port") == 0


def test_start_up_with_a_port_file_makes_one_run(qbt, sidecar, tmp_path):
    """Reading the port file at start-up starts the first run; start-up itself asks for no second
    one behind it (which would still be on its way, a request on the wire, once /readyz is ready)."""
    q = qbt(local_host_auth=False)
    path = port_file(tmp_path, q.initial_listen_port)  # already qBittorrent's: one run says so
    sc = sidecar(q, PORT_FILE=path, RESYNC_INTERVAL=0)
    e = wait_for(lambda: (lambda x: x if x.value(P + "sync_successes_total") >= 1
                          else None)(scrape("127.0.0.1", sc.port)), TIMEOUT, interval=0.05,
                 message=lambda: f"the first run never succeeded; log:\n{sc.log()}")
    # A second run would have started as the first one ended, before this scrape.
    assert e.value(P + "sync_attempts_total") == 1
    assert e.value(P + "applied_port") == q.initial_listen_port


# --------------------------------------------------------------------------- upstream errors


def test_upstream_errors_connect_refused(daemon):
    """QBIT_ADDR where nothing listens: each proxied request is a 502 and a connect error. (The
    daemon's own API calls are counted in sync_failures_total, not here.)"""
    d = daemon(ALLOWED_IPS="127.0.0.1")
    before = m(d)
    for _ in range(3):
        r = d.request("GET", "/api/v2/app/version")
        assert r.status == 502, r
    after = m(d)
    assert delta(upstream_errors(after), upstream_errors(before)) == {"connect": 3}
    assert delta(proxied_counts(after), proxied_counts(before)) == {("GET", "5xx"): 3}


def test_upstream_errors_timeout(proxy, upstream):
    d = proxy(UPSTREAM_TIMEOUT=1)
    before = m(d)
    upstream.queue(Stall())
    t0 = time.monotonic()
    r = exchange(d, "GET", "/api/v2/sync/maindata", timeout=15)
    assert r.status == 504, r
    assert time.monotonic() - t0 < 5
    after = m(d)
    assert delta(upstream_errors(after), upstream_errors(before)) == {"timeout": 1}
    assert delta(proxied_counts(after), proxied_counts(before)) == {("GET", "5xx"): 1}


def test_upstream_errors_broken_mid_body(proxy, upstream):
    d = proxy()
    before = m(d)
    upstream.queue(CloseMidBody(100000, 1000))
    with d.connect() as c:
        c.send(f"GET /api/v2/torrents/export HTTP/1.1\r\nHost: {d.authority}\r\n\r\n".encode())
        # The client gets the head and part of the body, then the connection is cut.
        data = c.read_until_closed(timeout=10)
    assert data.startswith(b"HTTP/1.1 200"), data[:200]
    after = wait_until(lambda: (lambda e: e if upstream_errors(e) != upstream_errors(before) else None)(m(d)),
                       TIMEOUT, message="no upstream error counted")
    assert delta(upstream_errors(after), upstream_errors(before)) == {"broken": 1}


# --------------------------------------------------------------------------- connection gauges


def test_client_and_upstream_connection_gauges(proxy, upstream):
    upstream.idle_close_ms = 200  # so the port sync's pooled connection goes away soon
    # UPSTREAM_TIMEOUT bounds the held request below: a client that closes while its request waits
    # for qBittorrent may only have half-closed, so the daemon keeps the exchange until an answer
    # or the timeout.
    d = proxy(RESYNC_INTERVAL=0, UPSTREAM_TIMEOUT=2)

    def gauges():
        e = m(d)
        return (e.value(P + "client_connections"), e.value(P + "upstream_connections", state="active"),
                e.value(P + "upstream_connections", state="idle"))

    def wait_gauges(want, what):
        deadline = time.monotonic() + TIMEOUT
        while True:
            got = gauges()
            if got == want:
                return
            if time.monotonic() > deadline:
                pytest.fail(f"{what}: (client, active, idle) is {got}, expected {want}")
            time.sleep(0.05)

    # At rest: only the scraping connection is open.
    wait_gauges((1, 0, 0), "at rest")
    upstream.idle_close_ms = None

    # Three idle keep-alive clients, plus the scrape.
    conns = [d.connect() for _ in range(3)]
    try:
        wait_gauges((4, 0, 0), "three idle clients")
        # One request held by qBittorrent: one active upstream connection.
        upstream.queue(Stall())
        conns[0].send(f"GET /stalled HTTP/1.1\r\nHost: {d.authority}\r\n\r\n".encode())
        upstream.wait_requests(1, timeout=TIMEOUT)
        wait_gauges((4, 1, 0), "a request in flight")
        # Its client leaves; at the latest when UPSTREAM_TIMEOUT ends the exchange, both go.
        conns[0].close()
        wait_gauges((3, 0, 0), "the waiting client left and the exchange timed out")
        # A completed keep-alive exchange leaves one pooled (idle) upstream connection.
        conns[1].send(f"GET /done HTTP/1.1\r\nHost: {d.authority}\r\n\r\n".encode())
        assert conns[1].read_response().status == 200
        wait_gauges((3, 0, 1), "a pooled connection")
    finally:
        for c in conns:
            c.close()
    # The clients are gone; the pooled connection is dropped after its idle time (4 s).
    wait_gauges((1, 0, 0), "everything closed")
