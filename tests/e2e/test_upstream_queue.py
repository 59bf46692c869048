"""The bound on connections to qBittorrent (UPSTREAM_MAX_CONNECTIONS) and the queue behind it.

qBittorrent's WebUI is one thread: a thousand connections to it buy nothing. The sidecar opens
at most UPSTREAM_MAX_CONNECTIONS (one of them kept for its own API calls); requests beyond that
wait in a FIFO queue (UPSTREAM_MAX_QUEUE long, within UPSTREAM_TIMEOUT) for the next connection
released, and a full queue answers 503 with Retry-After. The recording upstream counts every
connection it accepts, so "never more than the cap" is checked, not sampled."""

import os
import resource
import selectors
import signal
import socket
import threading
import time

import pytest

from conftest import wait_until
from prom_exposition import scrape
from proxy_rig import connect, is_daemon_own_request, proxy, qbittorrent_like, req, stop_upstream, upstream  # noqa: F401
from recording_upstream import RecordingUpstream, Reply, Stall

P = "qbit_gluetun_sync_"


def queue_length(d):
    return scrape(d.host, d.port).value(P + "upstream_queue_length")


def wait_queued(d, n):
    wait_until(lambda: queue_length(d) == n, 10, interval=0.02,
               message=lambda: f"queue length {queue_length(d)}, want {n}")


class Gate:
    """A handler that holds every request for a target prefix until opened."""

    def __init__(self, prefix="/hold"):
        self.prefix = prefix
        self.open = threading.Event()

    def __call__(self, r, conn):
        if r.target.startswith(self.prefix):
            self.open.wait(30)
        return Reply(200, [("Content-Type", "text/plain")], f"{r.target}\n".encode())


def send_async(d, target):
    """Opens a connection, sends one request; returns the RawConn to read the answer from later."""
    c = connect(d, timeout=30)
    c.send(req("GET", target, [("Connection", "close")], host=d.authority))
    return c


def many_requests(d, n, target_of):
    """n clients at once, one request each, from one thread; returns {index: (status, body)}."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n + 256:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 1024), hard))
    sel = selectors.DefaultSelector()
    socks = {}
    for i in range(n):
        s = socket.create_connection((d.host, d.port), timeout=30)
        s.sendall(req("GET", target_of(i), [("Connection", "close")], host=d.authority))
        s.setblocking(False)
        socks[s] = (i, bytearray())
        sel.register(s, selectors.EVENT_READ)
    results = {}
    deadline = time.monotonic() + 120
    while socks and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=1):
            s = key.fileobj
            i, buf = socks[s]
            try:
                chunk = s.recv(65536)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                chunk = b""
            if chunk:
                buf += chunk
                continue
            sel.unregister(s)
            s.close()
            del socks[s]
            head, _, body = bytes(buf).partition(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/1.") else 0
            results[i] = (status, body)
    for s in socks:
        s.close()
    sel.close()
    return results


def test_the_cap_holds_under_a_thousand_clients(proxy, upstream):
    cap = 8
    upstream.handler = lambda r, conn: Reply(200, [("Content-Type", "text/plain")], f"{r.target}\n".encode(),
                                             delay=0.002)
    d = proxy(UPSTREAM_MAX_CONNECTIONS=str(cap), MAX_CONNECTIONS="2000")
    results = many_requests(d, 1000, lambda i: f"/many/{i}")
    assert len(results) == 1000
    bad = {i: r for i, r in results.items() if r != (200, f"/many/{i}\n".encode())}
    assert not bad, f"{len(bad)} wrong answers, e.g. {list(bad.items())[:3]}"
    # Every connection the sidecar ever opened to the upstream: the proxy's (one is kept for the API).
    assert len(upstream.proxied_conns()) <= cap - 1, upstream.conns
    assert upstream.connection_count <= cap, upstream.conns
    m = scrape(d.host, d.port)
    assert m.value(P + "upstream_queue_wait_seconds_count") > 0, "nobody waited: the test proves nothing"
    assert m.value(P + "upstream_queue_length") == 0


def test_queued_requests_go_in_arrival_order(proxy, upstream):
    gate = Gate()
    upstream.handler = gate
    d = proxy(UPSTREAM_MAX_CONNECTIONS="2")  # one for the proxy, one kept for the API
    first = send_async(d, "/hold/0")
    upstream.wait_requests(1, complete=False)
    waiting = []
    for i in range(1, 6):
        waiting.append(send_async(d, f"/q/{i}"))
        wait_queued(d, i)
    gate.open.set()
    for i, c in enumerate([first] + waiting):
        r = c.read_response()
        assert r.status == 200, (i, r)
        c.close()
    order = [r.target for r in upstream.requests()]
    assert order == ["/hold/0"] + [f"/q/{i}" for i in range(1, 6)], order
    assert len(upstream.proxied_conns()) == 1, "the queue took the released connection, no new one"


def test_a_client_that_leaves_the_queue_takes_no_connection(proxy, upstream):
    gate = Gate()
    upstream.handler = gate
    d = proxy(UPSTREAM_MAX_CONNECTIONS="2")
    first = send_async(d, "/hold/0")
    upstream.wait_requests(1, complete=False)
    leaver = send_async(d, "/left")
    wait_queued(d, 1)
    leaver.close()
    wait_queued(d, 0)  # at once, not when its turn comes
    stayer = send_async(d, "/stayed")
    wait_queued(d, 1)
    gate.open.set()
    assert first.read_response().status == 200
    assert stayer.read_response().status == 200
    first.close()
    stayer.close()
    assert [r.target for r in upstream.requests()] == ["/hold/0", "/stayed"]


def test_a_full_queue_answers_503_with_retry_after(proxy, upstream):
    gate = Gate()
    upstream.handler = gate
    d = proxy(UPSTREAM_MAX_CONNECTIONS="2", UPSTREAM_MAX_QUEUE="1")
    first = send_async(d, "/hold/0")
    upstream.wait_requests(1, complete=False)
    queued = send_async(d, "/queued")
    wait_queued(d, 1)
    with connect(d) as c:
        c.send(req("GET", "/refused", [("Connection", "close")], host=d.authority))
        r = c.read_response()
    assert r.status == 503, r
    assert r.header("retry-after") == "1", r
    assert scrape(d.host, d.port).value(P + "upstream_queue_full_total") == 1
    gate.open.set()
    assert first.read_response().status == 200
    assert queued.read_response().status == 200
    first.close()
    queued.close()
    assert "/refused" not in [r.target for r in upstream.requests()]


def test_a_queued_request_times_out_within_upstream_timeout(proxy, upstream):
    # The first holds the only proxy connection for 6 s, making progress all along (no timeout).
    upstream.handler = lambda r, conn: Reply(200, [("Content-Type", "text/plain")], b"x" * 20, trickle=0.3,
                                             piece=1)
    d = proxy(UPSTREAM_MAX_CONNECTIONS="2", UPSTREAM_TIMEOUT="2")
    first = send_async(d, "/slow")
    upstream.wait_requests(1, complete=False)
    t0 = time.monotonic()
    with connect(d, timeout=10) as c:
        c.send(req("GET", "/waits", [("Connection", "close")], host=d.authority))
        r = c.read_response()
    took = time.monotonic() - t0
    assert r.status == 504, r
    assert took < 2 + 1.5, f"answered after {took:.1f} s: the wait must count toward UPSTREAM_TIMEOUT"
    first.close()
    assert "/waits" not in [r.target for r in upstream.requests()]


def test_api_calls_run_while_the_proxy_is_saturated(proxy, upstream):
    upstream.handler = lambda r, conn: Stall()
    d = proxy(UPSTREAM_MAX_CONNECTIONS="3", UPSTREAM_TIMEOUT="20", SHUTDOWN_TIMEOUT="1")
    held = [send_async(d, f"/stalled/{i}") for i in range(2)]
    upstream.wait_requests(2, complete=False)
    held.append(send_async(d, "/queued"))
    wait_queued(d, 1)
    before = len(upstream.requests(include_own=True))
    with connect(d, timeout=15) as c:
        c.send(req("GET", "/sync", [("Connection", "close")], host=d.authority))
        r = c.read_response()
    own = [x for x in upstream.requests(include_own=True)[before:] if x.own]
    assert own, "the port sync's call never reached qBittorrent"
    assert b'"qbittorrent_port":' in r.body and b'"qbittorrent_port":null' not in r.body, r
    assert queue_length(d) == 1, "the proxied request still waits; the API call did not take its place"
    for c in held:
        c.close()


def test_qbittorrent_restarting_under_load_recovers_without_a_storm(proxy, upstream):
    cap = 6
    d = proxy(UPSTREAM_MAX_CONNECTIONS=str(cap), UPSTREAM_CONNECT_TIMEOUT="2")
    port = upstream.port
    statuses, stop = [], threading.Event()

    def load():
        while not stop.is_set():
            try:
                with connect(d, timeout=15) as c:
                    c.send(req("GET", "/load", [("Connection", "close")], host=d.authority))
                    statuses.append(c.read_response().status)
            except (OSError, EOFError):
                statuses.append(0)

    threads = [threading.Thread(target=load, daemon=True) for _ in range(40)]
    for t in threads:
        t.start()
    wait_until(lambda: statuses.count(200) >= 200, 30, message="no load got through")
    upstream.stop()  # qBittorrent goes away: refused connects, 502s
    wait_until(lambda: statuses[-20:].count(502) == 20, 30, message=lambda: f"{statuses[-20:]}")
    back = RecordingUpstream(port=port)  # qBittorrent is back, on the same port
    back.is_own, back.own_handler = is_daemon_own_request, qbittorrent_like
    back.start()
    try:
        n = len(statuses)
        wait_until(lambda: statuses[n:].count(200) >= 300, 60, message=lambda: f"{statuses[-20:]}")
        stop.set()
        for t in threads:
            t.join(20)
        assert back.connection_count <= cap, f"{back.connection_count} connections after the restart"
    finally:
        stop.set()
        stop_upstream(back)


def half_closed_request(d, target):
    """A GET, then shutdown(SHUT_WR) at once; returns everything the daemon sent back."""
    s = socket.create_connection((d.host, d.port), timeout=10)
    s.sendall(req("GET", target, [("Connection", "close")], host=d.authority))
    s.shutdown(socket.SHUT_WR)
    data = b""
    while True:
        try:
            chunk = s.recv(65536)
        except OSError:
            break
        if not chunk:
            break
        data += chunk
    s.close()
    return data


def test_a_half_closed_request_waiting_for_a_new_connection_is_answered(proxy, upstream):
    """Reading while an exchange waits for its connection must not turn a half-close into a departure:
    only a request still in the queue leaves it (test_a_client_that_leaves...)."""
    upstream.idle_close_ms = 50  # the start-up sync's pooled connection goes: the next request connects anew
    d = proxy(RESYNC_INTERVAL="0")
    wait_until(lambda: scrape(d.host, d.port).value(P + "upstream_connections", state="idle") == 0, 10,
               message="the pooled connection never closed")
    data = half_closed_request(d, "/half-closed")
    assert data.startswith(b"HTTP/1.1 200") and b"GET /half-closed " in data, (data[:300], d.log())


def test_a_leaver_granted_but_not_served_yet_passes_its_turn_on(proxy, upstream):
    """The released connection is granted to the first waiter, whose client closes in the same loop turn:
    the next waiter must get it at once, not after the pool's idle timeout (4 s) closes it."""
    gate = Gate()
    upstream.handler = gate
    d = proxy(UPSTREAM_MAX_CONNECTIONS="2", RESYNC_INTERVAL="0")
    first = send_async(d, "/hold/0")
    upstream.wait_requests(1, complete=False)
    leaver = send_async(d, "/left")
    wait_queued(d, 1)
    stayer = send_async(d, "/stayed")
    wait_queued(d, 2)
    # Stopped, the daemon sees the answer to /hold/0 and the leaver's FIN in one loop turn after SIGCONT.
    os.kill(d.pid, signal.SIGSTOP)
    try:
        gate.open.set()
        upstream.wait_for(lambda up: any(c.requests and c.requests[0].target == "/hold/0" and
                                         c.requests[0].complete for c in up.conns), 5)
        time.sleep(0.3)  # the answer is sent while the daemon is stopped; nothing to wait on but time
        leaver.close()
    finally:
        os.kill(d.pid, signal.SIGCONT)
    assert first.read_response().status == 200
    t0 = time.monotonic()
    r = stayer.read_response()
    assert r.status == 200, r
    assert time.monotonic() - t0 < 2, "the waiter sat behind a grant nobody took"
    assert [x.target for x in upstream.requests()] == ["/hold/0", "/stayed"]
