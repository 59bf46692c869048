"""Helpers and fixtures for the proxy's end-to-end tests against the recording upstream.

Test modules import the fixtures by name (`from proxy_rig import upstream, proxy`), which
makes pytest use them. `proxy(**env)` starts the daemon (through conftest's `daemon`
fixture, which also stops it by PID and checks its exit status) with LISTEN_ADDR=127.0.0.1,
ALLOWED_IPS=127.0.0.1,::1 and QBIT_ADDR pointing at the recording upstream, then waits for
GET /healthz to answer 200.
"""

import hashlib
import os
import socket
import threading
import time

import pytest

from conftest import RawConn, Response, http_request, wait_until
from recording_upstream import RecordingUpstream, Reply

HEALTHZ_TIMEOUT = 10.0
# Is this the sanitizer build? Its shadow memory makes RSS figures meaningless.
SANITIZED = os.environ.get("QGS_SANITIZED") == "1"


def new_upstream(host="127.0.0.1", tls=None):
    """A started RecordingUpstream (over TLS with the server ssl.SSLContext tls) that sets the daemon's
    own API calls apart from proxied ones."""
    up = RecordingUpstream(host, tls=tls)
    up.is_own = is_daemon_own_request
    up.own_handler = qbittorrent_like
    return up.start()


def stop_upstream(up):
    stragglers = up.stop()
    assert not stragglers, f"recording upstream threads did not stop: {stragglers}"
    assert not up.errors, f"the recording upstream itself failed: {up.errors}"


@pytest.fixture
def upstream():
    """A started RecordingUpstream; stopped (threads joined) when the test ends."""
    up = new_upstream()
    yield up
    stop_upstream(up)


@pytest.fixture
def proxy(upstream, daemon):
    """A factory: proxy(prefix="", qbit_addr=None, **env) starts the daemon in front of upstream."""

    def start(prefix="", qbit_addr=None, **env):
        settings = {
            "ALLOWED_IPS": "127.0.0.1,::1",
            "QBIT_ADDR": qbit_addr or f"http://127.0.0.1:{upstream.port}{prefix}",
        }
        settings.update(env)
        d = daemon(**settings)

        def healthy():
            if d.proc.poll() is not None:
                pytest.fail(f"daemon exited with {d.proc.returncode}; log:\n{d.log()}")
            try:
                return http_request(d.host, d.port, "GET", "/healthz", tls=d.tls_context()).status == 200
            except (OSError, EOFError, AssertionError, ValueError):
                return False

        wait_until(healthy, HEALTHZ_TIMEOUT, interval=0.05, message="GET /healthz never answered 200")
        # The sidecar applies qBittorrent's Host settings, which it reads at start: until then only its
        # own address passes. With the upstream answering as qBittorrent (the default), wait for them.
        if upstream.own_handler is qbittorrent_like and not prefix and f":{upstream.port}" in settings["QBIT_ADDR"]:
            wait_until(lambda: "Host check:" in d.log(), HEALTHZ_TIMEOUT, interval=0.02,
                       message=lambda: f"the daemon never read the Host settings; log:\n{d.log()}")
        d.authority = f"127.0.0.1:{d.port}"
        return d

    return start


def is_daemon_own_request(r):
    """The daemon's own qBittorrent API calls (port sync) name it in User-Agent; no test does."""
    return any(v.startswith("qbit-gluetun-sync/") for v in r.values("user-agent"))


# The preferences qbittorrent_like answers: a port, and qBittorrent's default Host settings (any
# name passes), which the sidecar applies to the browser's Host.
QBT_LIKE_PREFS = b'{"listen_port":6881,"web_ui_host_header_validation_enabled":true,"web_ui_domain_list":"*"}'


def qbittorrent_like(r, conn):
    """Answers the daemon's own API calls about as qBittorrent 4.5 does, so it stays quiet."""
    if r.target.startswith("/api/v2/app/preferences"):
        return Reply(200, [("content-type", "application/json")], QBT_LIKE_PREFS)
    if r.target.startswith("/api/v2/auth/login"):
        return Reply(200, [("content-type", "text/plain; charset=UTF-8"),
                           ("set-cookie", "SID=own; HttpOnly; path=/; SameSite=Strict")], b"Ok.")
    return Reply(200, [("content-type", "text/plain")], b"")


def req(method, target, headers=(), body=b"", host="", version="HTTP/1.1"):
    """Exact request bytes. headers is a list of (name, value), sent in order, duplicates kept.

    host: the Host header's value; "" means none is added (give it in headers, or leave it out).
    """
    lines = [f"{method} {target} {version}"]
    if host:
        lines.append(f"Host: {host}")
    lines += [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def connect(d, timeout=10.0):
    return RawConn(d.host, d.port, timeout, tls=d.tls_context())


def exchange(d, method, target, headers=(), body=b"", host=None, timeout=10.0):
    """One request on a fresh connection (Connection: close added); returns the Response."""
    with connect(d, timeout) as c:
        c.send(req(method, target, list(headers) + [("Connection", "close")], body,
                   host=host if host is not None else d.authority))
        return c.read_response(head=(method == "HEAD"))


def read_head(c):
    """Reads a response's status line and headers only from RawConn c; returns a Response."""
    status_line = c._read_line().decode("latin-1")
    version, status, *reason = status_line.split(" ", 2)
    assert version in ("HTTP/1.0", "HTTP/1.1"), f"bad status line {status_line!r}"
    headers = []
    while True:
        line = c._read_line()
        if not line:
            break
        name, _, value = line.decode("latin-1").partition(":")
        headers.append((name.strip().lower(), value.strip()))
    return Response(version, int(status), reason[0] if reason else "", headers, b"")


def values(resp, name):
    return [v for k, v in resp.headers if k == name.lower()]


def connection_tokens(resp):
    return [t.strip().lower() for v in values(resp, "connection") for t in v.split(",") if t.strip()]


class BodySink:
    """Counts and hashes body bytes without keeping them."""

    def __init__(self):
        self.size = 0
        self.h = hashlib.sha256()

    def __call__(self, data):
        self.size += len(data)
        self.h.update(data)

    @property
    def hexdigest(self):
        return self.h.hexdigest()


class _Puller:
    """Reads from a RawConn (its buffer first) with an offset, so slicing never copies much."""

    def __init__(self, c):
        self.c = c
        self.data = b""
        self.pos = 0
        self.rbuf = bytearray(1 << 20)
        self.reset = False

    def more(self):
        if self.c.buf:
            d, self.c.buf = self.c.buf, b""
        else:
            try:
                n = self.c.sock.recv_into(self.rbuf)
            except ConnectionResetError:
                self.reset = True
                return False
            if not n:
                return False
            d = bytes(self.rbuf[:n])
        self.data = self.data[self.pos:] + d
        self.pos = 0
        return True

    def line(self):
        while True:
            i = self.data.find(b"\r\n", self.pos)
            if i >= 0:
                line = self.data[self.pos:i]
                self.pos = i + 2
                return line
            if not self.more():
                return None

    def take(self, n):
        if self.pos >= len(self.data) and not self.more():
            return None
        d = self.data[self.pos:self.pos + n]
        self.pos += len(d)
        return d

    def give_back(self):
        self.c.buf = self.data[self.pos:] + self.c.buf
        self.data, self.pos = b"", 0

    def end(self):
        return "reset" if self.reset else "eof"


def stream_body(c, resp, sink, on_progress=None):
    """Reads resp's body from RawConn c into sink, by Content-Length, chunked or to EOF.

    Returns "complete" when the framing said the body ended, "eof" when the connection closed
    first (for a read-to-close body that is the normal end), "reset" on ECONNRESET.
    on_progress(total) is called after every piece.
    """
    p = _Puller(c)
    total = 0
    te = ",".join(values(resp, "transfer-encoding")).lower()
    cl = values(resp, "content-length")

    def got(d):
        nonlocal total
        sink(d)
        total += len(d)
        if on_progress:
            on_progress(total)

    if "chunked" in te:
        while True:
            line = p.line()
            if line is None:
                return p.end()
            size = int(line.split(b";")[0], 16)
            if size == 0:
                while True:
                    t = p.line()
                    if t is None:
                        return p.end()
                    if not t:
                        p.give_back()
                        return "complete"
            while size > 0:
                d = p.take(min(size, 1 << 20))
                if d is None:
                    return p.end()
                got(d)
                size -= len(d)
            crlf = p.line()
            if crlf is None:
                return p.end()
            assert crlf == b"", f"chunk data longer than its size: {crlf[:100]!r}"
    if cl:
        left = int(cl[0])
        while left > 0:
            d = p.take(min(left, 1 << 20))
            if d is None:
                return p.end()
            got(d)
            left -= len(d)
        p.give_back()
        return "complete"
    while True:
        d = p.take(1 << 20)
        if d is None:
            return p.end()
        got(d)


def vmrss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


class RssSampler:
    """Samples a process's VmRSS every interval seconds in a thread; keeps the peak."""

    def __init__(self, pid, interval=0.02):
        self.pid = pid
        self.interval = interval
        self.baseline = vmrss_kib(pid)
        self.peak = self.baseline
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"rss-{pid}", daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, vmrss_kib(self.pid))
                self.samples += 1
            except (OSError, AssertionError):
                return
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)
        try:
            self.peak = max(self.peak, vmrss_kib(self.pid))
        except (OSError, AssertionError):
            pass

    @property
    def growth_kib(self):
        return self.peak - self.baseline


def control_request(d, up, n_expected):
    """Sends GET /control through the proxy on a fresh connection and waits until the upstream
    has n_expected requests; returns them. Proves the daemon still serves, and gives a point in
    time after which anything the daemon forwarded earlier has certainly arrived (the upstream
    serves connections in parallel, so it is a bound, not a proof: the caller also checks that
    nothing new arrived after a short extra wait)."""
    r = exchange(d, "GET", "/control")
    assert r.status == 200, f"control request through the proxy: {r}"
    up.wait_requests(n_expected, timeout=5)
    time.sleep(0.2)
    return up.requests()


def is_closed(c, timeout=5.0):
    """True when the peer closed (EOF or reset) within timeout with nothing more to read."""
    c.sock.settimeout(timeout)
    data = c.buf
    c.buf = b""
    try:
        while True:
            d = c.sock.recv(65536)
            if not d:
                break
            data += d
    except ConnectionResetError:
        pass
    except socket.timeout:
        return False
    assert data == b"", f"expected the connection closed; got more bytes: {data[:500]!r}"
    return True
