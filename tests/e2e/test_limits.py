"""Resource limits at their exact edges: MAX_CONNECTIONS, MAX_HEADER_SIZE, HEADER_TIMEOUT and
IDLE_TIMEOUT; then the attacks they exist for: slowloris (500 connections trickling a head)
and file-descriptor exhaustion under a low RLIMIT_NOFILE (the daemon must keep serving and must
not spin while saturated).

Timing checks are windows around the configured value: never before timeout - EARLY, never
after timeout + LATE (generous, for the sanitizer build on a busy machine).
"""

import os
import resource
import selectors
import socket
import subprocess
import time

import pytest

from conftest import (
    START_TIMEOUT,
    STOP_TIMEOUT,
    Daemon,
    base_env,
    can_connect,
    free_port,
    server_side_connections,
    wait_no_client_connections,
    wait_until,
)
from proxy_rig import (  # noqa: F401  (fixtures are used by name)
    SANITIZED,
    connect,
    control_request,
    exchange,
    is_closed,
    proxy,
    req,
    upstream,
)

EARLY = 0.25
LATE = 1.5 if SANITIZED else 1.0


def head_of_size(size, authority, where="value"):
    """A GET head of exactly size bytes (request line through the blank line), padded in a header
    value or in the query string."""
    if where == "value":
        base = f"GET /pad HTTP/1.1\r\nHost: {authority}\r\nX-Pad: \r\n\r\n".encode()
        pad = size - len(base)
        assert pad >= 0
        return base.replace(b"X-Pad: ", b"X-Pad: " + b"a" * pad)
    base = f"GET /pad? HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode()
    pad = size - len(base)
    assert pad >= 0
    return base.replace(b"/pad? ", b"/pad?" + b"a" * pad + b" ")


# ---- MAX_CONNECTIONS ----


def test_max_connections_exact_idle_connections_then_503(proxy, upstream):
    n = 20
    d = proxy(MAX_CONNECTIONS=n)
    wait_no_client_connections(d.port)  # the fixture's /healthz probes are gone
    idle = [connect(d) for _ in range(n)]  # accepted in order; none sends a byte yet
    try:
        with connect(d) as extra:
            r = extra.read_response()  # answered without having sent anything
            assert r.status == 503, r
            assert is_closed(extra), "the connection over the cap stayed open after its 503"
        # Every one of the n idle connections was accepted and counted, and is served.
        for i, c in enumerate(idle):
            c.send(req("GET", f"/idle/{i}", host=d.authority))
            r = c.read_response()
            assert r.status == 200, (i, r)
        assert [q.target for q in upstream.requests()] == [f"/idle/{i}" for i in range(n)]
        # One leaves; once the daemon has let go of it, the next newcomer is served at once.
        idle.pop().close()
        wait_until(lambda: server_side_connections(d.port) == n - 1, 5,
                   message="the daemon did not release the closed connection")
        with connect(d) as newcomer:
            newcomer.send(req("GET", "/newcomer", host=d.authority))
            r = newcomer.read_response()
            assert r.status == 200, r
        # And the cap holds again with the newcomer gone and one more slot taken.
        wait_until(lambda: server_side_connections(d.port) == n - 1, 5)
        idle.append(connect(d))
        with connect(d) as extra:
            assert extra.read_response().status == 503
    finally:
        for c in idle:
            c.close()


# ---- MAX_HEADER_SIZE: "Largest request head in bytes; larger gets 431" ----


@pytest.mark.parametrize("where", ["value", "target"])
@pytest.mark.parametrize("size", [1023, 1024])
def test_head_at_or_under_max_header_size_served(proxy, upstream, where, size):
    d = proxy(MAX_HEADER_SIZE=1024)
    with connect(d) as c:
        c.send(head_of_size(size, d.authority, where))
        r = c.read_response()
    assert r.status == 200, f"a {size}-byte head with MAX_HEADER_SIZE=1024: {r}"
    assert len(upstream.wait_requests(1, timeout=5)) == 1


@pytest.mark.parametrize("where", ["value", "target"])
@pytest.mark.parametrize("size", [1025, 1040])
def test_head_over_max_header_size_431_and_close(proxy, upstream, where, size):
    d = proxy(MAX_HEADER_SIZE=1024)
    with connect(d) as c:
        c.send(head_of_size(size, d.authority, where))
        r = c.read_response()
        assert r.status == 431, f"a {size}-byte head with MAX_HEADER_SIZE=1024: {r}"
        assert is_closed(c)
    reqs = control_request(d, upstream, 1)
    assert [q.target for q in reqs] == ["/control"], [q.head_raw[:200] for q in reqs]


# ---- HEADER_TIMEOUT and IDLE_TIMEOUT ----


def closed_after(c, start, timeout):
    """Reads until the server closes; returns (seconds since start, bytes received)."""
    data = c.read_until_closed(timeout)
    return time.monotonic() - start, data


def test_header_timeout_partial_head_408_within_window(proxy, upstream):
    d = proxy(HEADER_TIMEOUT=2, IDLE_TIMEOUT=30)
    with connect(d, timeout=10) as c:
        start = time.monotonic()
        c.send(b"GET /partial HTTP/1.1\r\nHost: " + d.authority.encode() + b"\r\n")
        elapsed, data = closed_after(c, start, 10)
    assert data.startswith(b"HTTP/1.1 408 "), data
    assert 2 - EARLY <= elapsed <= 2 + LATE, elapsed
    assert upstream.requests() == []


def test_header_timeout_applies_to_second_request_on_keep_alive(proxy, upstream):
    d = proxy(HEADER_TIMEOUT=2, IDLE_TIMEOUT=30)
    with connect(d, timeout=10) as c:
        c.send(req("GET", "/first", host=d.authority))
        assert c.read_response().status == 200
        start = time.monotonic()
        c.send(b"GET /second HTTP/1.1\r\n")
        elapsed, data = closed_after(c, start, 10)
    assert data.startswith(b"HTTP/1.1 408 "), data
    assert 2 - EARLY <= elapsed <= 2 + LATE, elapsed


def test_silent_new_connection_closed_at_header_timeout(proxy, upstream):
    # A connection that never sends a byte is a slowloris too: it must not hold a slot for
    # IDLE_TIMEOUT (60 s by default) when a request head is due within HEADER_TIMEOUT.
    d = proxy(HEADER_TIMEOUT=2, IDLE_TIMEOUT=30)
    with connect(d, timeout=10) as c:
        start = time.monotonic()
        c.sock.settimeout(2 + LATE + 1)
        try:
            elapsed, data = closed_after(c, start, 2 + LATE + 1)
        except pytest.fail.Exception:
            pytest.fail(f"a silent connection was still open {2 + LATE + 1:.1f} s after connecting "
                        f"(HEADER_TIMEOUT=2, IDLE_TIMEOUT=30)")
    assert 2 - EARLY <= elapsed <= 2 + LATE, elapsed
    assert data == b"" or data.startswith(b"HTTP/1.1 408 "), data


def test_idle_timeout_after_response_within_window(proxy, upstream):
    d = proxy(HEADER_TIMEOUT=30, IDLE_TIMEOUT=2)
    with connect(d, timeout=10) as c:
        c.send(req("GET", "/once", host=d.authority))
        assert c.read_response().status == 200
        start = time.monotonic()
        elapsed, data = closed_after(c, start, 10)
    assert data == b"", f"an idle close sends nothing; got {data!r}"
    assert 2 - EARLY <= elapsed <= 2 + LATE, elapsed


def test_idle_timeout_restarts_with_each_request(proxy, upstream):
    d = proxy(HEADER_TIMEOUT=30, IDLE_TIMEOUT=2)
    with connect(d, timeout=10) as c:
        for i in range(3):  # each request 1.2 s after the last: past IDLE_TIMEOUT in total
            c.send(req("GET", f"/r{i}", host=d.authority))
            assert c.read_response().status == 200
            c.sock.settimeout(1.2)
            try:
                got = c.sock.recv(1)
                pytest.fail(f"closed (or sent {got!r}) 1.2 s into a 2 s idle timeout, request {i}")
            except socket.timeout:
                pass
        c.sock.settimeout(10)
        start = time.monotonic()
        elapsed, data = closed_after(c, start, 10)
    assert data == b""
    assert 2 - 1.2 - EARLY <= elapsed <= 2 - 1.2 + LATE, elapsed


# ---- slowloris ----

TRICKLERS = 500
TRICKLE_INTERVAL = 0.2


def test_slowloris_500_tricklers_do_not_delay_a_normal_client(proxy, upstream):
    header_timeout = 2
    d = proxy(HEADER_TIMEOUT=header_timeout, IDLE_TIMEOUT=30)
    payload = (b"GET /slow HTTP/1.1\r\nHost: " + d.authority.encode() + b"\r\nX-Slow: " + b"a" * 200)
    sel = selectors.DefaultSelector()
    socks = []
    first_byte_at = {}
    closed_at = {}
    received = {}
    sent = {}
    latencies = []
    try:
        for i in range(TRICKLERS):
            s = socket.create_connection((d.host, d.port), timeout=5)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.setblocking(False)
            socks.append(s)
            sent[i] = 0
            received[i] = b""
            sel.register(s, selectors.EVENT_READ, i)
        start = time.monotonic()
        deadline = start + header_timeout + LATE + 3
        next_tick = start
        next_normal = start + 0.3

        def close_one(i, now):
            closed_at[i] = now
            sel.unregister(socks[i])
            socks[i].close()

        while len(closed_at) < TRICKLERS and time.monotonic() < deadline:
            now = time.monotonic()
            if now >= next_tick:
                for i, s in enumerate(socks):
                    if i in closed_at or sent[i] >= len(payload):
                        continue
                    try:
                        s.send(payload[sent[i]:sent[i] + 1])
                    except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                        continue  # a close is seen by the reader below
                    if sent[i] == 0:
                        first_byte_at[i] = time.monotonic()
                    sent[i] += 1
                next_tick += TRICKLE_INTERVAL
            if now >= next_normal and now < start + header_timeout + 0.5:
                t0 = time.monotonic()
                r = exchange(d, "GET", "/normal", timeout=5)
                latencies.append(time.monotonic() - t0)
                assert r.status == 200, r
                next_normal = time.monotonic() + 0.3
            wait = max(0.0, min(next_tick, next_normal) - time.monotonic())
            for key, _ in sel.select(timeout=min(wait, 0.05)):
                i = key.data
                try:
                    chunk = socks[i].recv(4096)
                except ConnectionResetError:
                    chunk = b""
                except BlockingIOError:
                    continue
                if chunk:
                    received[i] += chunk
                else:
                    close_one(i, time.monotonic())
    finally:
        for i, s in enumerate(socks):
            if i not in closed_at:
                s.close()
        sel.close()

    assert latencies and max(latencies) < 1.0, f"normal client latencies under slowloris: {latencies}"
    still_open = TRICKLERS - len(closed_at)
    assert still_open == 0, f"{still_open} trickling connections still open {deadline - start:.1f} s in"
    times = sorted(closed_at[i] - first_byte_at[i] for i in closed_at)
    assert times[0] >= header_timeout - EARLY, f"closed too early: {times[:5]}"
    assert times[-1] <= header_timeout + LATE, f"closed too late: {times[-5:]}"
    not_408 = [received[i][:40] for i in closed_at if not received[i].startswith(b"HTTP/1.1 408 ")]
    assert not not_408, f"{len(not_408)} tricklers closed without a 408, e.g. {not_408[:3]}"
    assert [q.target for q in upstream.requests()] == ["/normal"] * len(latencies)


# ---- file-descriptor exhaustion ----

NOFILE = 64


def cpu_seconds(pid):
    """utime + stime of pid, in seconds, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.fixture
def low_nofile_proxy(qgs_bin, tmp_path, upstream):
    """The daemon in front of upstream with RLIMIT_NOFILE=64 and MAX_CONNECTIONS=1000."""
    port = free_port()
    env = {
        "LISTEN_ADDR": "127.0.0.1",
        "LISTEN_PORT": port,
        "ALLOWED_IPS": "127.0.0.1",
        "PORT_FILE": tmp_path / "forwarded_port",
        "QBIT_ADDR": f"http://127.0.0.1:{upstream.port}",
        "MAX_CONNECTIONS": 1000,
    }
    log_path, out_path = tmp_path / "daemon.stderr", tmp_path / "daemon.stdout"

    def limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))

    with open(log_path, "wb") as err, open(out_path, "wb") as out:
        proc = subprocess.Popen([str(qgs_bin)], env=base_env(**env), stdin=subprocess.DEVNULL,
                                stdout=out, stderr=err, preexec_fn=limit)
    d = Daemon(proc, env, log_path, out_path, port, "127.0.0.1")
    d.authority = f"127.0.0.1:{port}"
    try:
        wait_until(lambda: proc.poll() is not None or can_connect("127.0.0.1", port), START_TIMEOUT)
        assert proc.poll() is None, f"daemon exited with {proc.returncode}; log:\n{d.log()}"
        yield d
    finally:
        rc, _, killed = d.stop_by_pid(STOP_TIMEOUT)
        assert not killed, f"daemon ignored SIGTERM; log:\n{d.log()}"
        assert rc == 0, f"daemon exited {rc} on SIGTERM; log:\n{d.log()[-3000:]}"


def served(d, target):
    try:
        return exchange(d, "GET", target, timeout=2).status == 200
    except (OSError, EOFError, AssertionError, ValueError):
        return False


def test_fd_exhaustion_no_spin_and_serves_after_burst(low_nofile_proxy, upstream):
    d = low_nofile_proxy
    assert exchange(d, "GET", "/before").status == 200
    held = connect(d)  # accepted before the burst: it must still get answers while saturated
    held.send(req("GET", "/held-before", host=d.authority))
    assert held.read_response().status == 200
    burst = []
    try:
        for _ in range(200):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(2)
            try:
                s.connect((d.host, d.port))
            except OSError:
                s.close()
                continue
            burst.append(s)
        assert len(burst) >= 150, f"only {len(burst)} of 200 connects completed"
        # Saturated: the daemon is at its descriptor limit with connections still queued.
        wait_until(lambda: len(os.listdir(f"/proc/{d.pid}/fd")) >= NOFILE - 2, 5,
                   message="the daemon never reached its descriptor limit")
        cpu0, t0 = cpu_seconds(d.pid), time.monotonic()
        deadline = t0 + 2.0
        while time.monotonic() < deadline:
            time.sleep(0.1)
            assert d.proc.poll() is None, f"daemon died while saturated; log:\n{d.log()[-3000:]}"
        used = cpu_seconds(d.pid) - cpu0
        assert used < 0.3, f"daemon used {used:.2f} s CPU in {time.monotonic() - t0:.1f} s while saturated"
        # An established client is answered (through the pooled upstream connection, or with an
        # error status if a new one is needed), never left hanging.
        held.send(req("GET", "/held-during", host=d.authority))
        r = held.read_response()
        assert r.status in (200, 502, 503), r
    finally:
        held.close()
        for s in burst:
            s.close()
    wait_until(lambda: served(d, "/after"), 10, interval=0.1,
               message=f"not serving after the burst closed; log:\n{d.log()[-3000:]}")
    assert d.proc.poll() is None
