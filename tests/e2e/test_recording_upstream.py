"""The recording upstream on its own, driven by http.client and raw sockets (no daemon).

These keep the proxy tests honest: when a proxy test fails, the upstream is known to frame,
record and answer correctly.
"""

import hashlib
import http.client
import socket
import time

import pytest

from recording_upstream import (
    PATTERN,
    CloseMidBody,
    CloseNoAnswer,
    Raw,
    RecordingUpstream,
    Reply,
    Stall,
    Stream,
    Upgrade,
    pattern_bytes,
    pattern_digest,
)


@pytest.fixture
def up():
    u = RecordingUpstream().start()
    yield u
    stragglers = u.stop()
    assert not stragglers, f"upstream threads still running: {stragglers}"
    assert not u.errors, f"upstream internal errors: {u.errors}"


def client(up):
    return http.client.HTTPConnection("127.0.0.1", up.port, timeout=10)


def test_records_exact_head_and_answers_default(up):
    c = client(up)
    c.request("GET", "/a/b?x=1&y=%20", headers={"X-Test": "v", "Cookie": "a=b"})
    r = c.getresponse()
    assert r.status == 200
    assert r.read() == b"GET /a/b?x=1&y=%20 conn=0 req=0\n"
    (req,) = up.wait_requests(1)
    assert req.head_raw.startswith(b"GET /a/b?x=1&y=%20 HTTP/1.1\r\n")
    assert req.head_raw.endswith(b"\r\n\r\n")
    assert req.header("x-test") == "v" and req.header("Cookie") == "a=b"
    assert req.target == "/a/b?x=1&y=%20"
    c.close()


def test_keep_alive_counts_connections(up):
    c = client(up)
    for i in range(5):
        c.request("GET", f"/{i}")
        assert c.getresponse().read() == f"GET /{i} conn=0 req={i}\n".encode()
    assert up.connection_count == 1
    c2 = client(up)
    c2.request("GET", "/x")
    assert c2.getresponse().read() == b"GET /x conn=1 req=0\n"
    assert up.connection_count == 2
    c.close()
    c2.close()


def test_content_length_body_hashed(up):
    body = bytes(range(256)) * 4096 + b"tail"
    c = client(up)
    c.request("POST", "/up", body=body, headers={"Content-Type": "application/octet-stream"})
    assert c.getresponse().status == 200
    (req,) = up.wait_requests(1)
    assert req.body_framing == "length"
    assert req.body_size == len(body)
    assert req.body_sha256 == hashlib.sha256(body).hexdigest()
    assert req.body == body


def test_chunked_body_and_100_continue(up):
    with socket.create_connection(("127.0.0.1", up.port), timeout=5) as s:
        s.sendall(b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                  b"Expect: 100-continue\r\n\r\n")
        assert s.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(b"5\r\nhello\r\n3;ext=1\r\nabc\r\n0\r\nX-T: 1\r\n\r\n")
        data = s.recv(1000)
        assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    (req,) = up.wait_requests(1)
    assert req.body == b"helloabc" and req.chunk_sizes == [5, 3, 0] and req.trailers == ["X-T: 1"]


@pytest.mark.parametrize("framing", ["length", "chunked", "close"])
def test_reply_framings(up, framing):
    up.handler = lambda req, conn: Reply(200, [("X-A", "1")], b"0123456789" * 100, framing=framing,
                                         chunk_size=300)
    c = client(up)
    c.request("GET", "/")
    r = c.getresponse()
    assert r.read() == b"0123456789" * 100
    assert r.getheader("X-A") == "1"
    if framing == "chunked":
        assert r.getheader("Transfer-Encoding") == "chunked"
    c.close()


def test_head_204_304(up):
    up.queue(Reply(200, [("Content-Length", "1234")], framing="none"), Reply(204, framing="none"),
             Reply(304, [("ETag", '"x"')], framing="none"))
    c = client(up)
    c.request("HEAD", "/h")
    r = c.getresponse()
    assert r.status == 200 and r.read() == b""
    c.request("GET", "/204")
    r = c.getresponse()
    assert r.status == 204 and r.read() == b""
    c.request("GET", "/304")
    r = c.getresponse()
    assert r.status == 304 and r.read() == b""
    c.request("GET", "/after")
    assert c.getresponse().read().startswith(b"GET /after")
    assert up.connection_count == 1


@pytest.mark.parametrize("framing", ["length", "chunked", "close"])
def test_stream_large_body(up, framing):
    size = 8 * 1024 * 1024 + 123
    up.handler = lambda req, conn: Stream(size, framing=framing)
    c = client(up)
    c.request("GET", "/big")
    r = c.getresponse()
    h = hashlib.sha256()
    n = 0
    while True:
        d = r.read(1 << 20)
        if not d:
            break
        h.update(d)
        n += len(d)
    assert n == size and h.hexdigest() == pattern_digest(size)
    c.close()


def test_pattern_helpers():
    assert pattern_bytes(0, 10) == PATTERN[:10]
    assert pattern_bytes(65530, 10) == PATTERN[65530:] + PATTERN[:4]
    assert pattern_digest(100000) == hashlib.sha256(pattern_bytes(0, 100000)).hexdigest()


def test_upgrade_echo(up):
    up.handler = lambda req, conn: Upgrade(greeting=b"hi!")
    with socket.create_connection(("127.0.0.1", up.port), timeout=5) as s:
        s.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
        buf = b""
        while b"hi!" not in buf:
            buf += s.recv(1000)
        assert buf.startswith(b"HTTP/1.1 101 ")
        s.sendall(b"ping")
        got = b""
        while len(got) < 4:
            got += s.recv(100)
        assert got == b"ping"
    assert up.wait_for(lambda u: u.conns[0].closed.is_set(), 5)
    assert up.conns[0].tunnel_bytes == 4


def test_stall_and_close_variants(up):
    up.queue(Stall())
    c = http.client.HTTPConnection("127.0.0.1", up.port, timeout=0.5)
    c.request("GET", "/stall")
    with pytest.raises(socket.timeout):
        c.getresponse()
    c.close()
    up.queue(CloseMidBody(1000, 400))
    c = client(up)
    c.request("GET", "/mid")
    r = c.getresponse()
    with pytest.raises(http.client.IncompleteRead):
        r.read()
    c.close()
    up.queue(CloseNoAnswer())
    c = client(up)
    c.request("GET", "/none")
    with pytest.raises(http.client.RemoteDisconnected):
        c.getresponse()
    c.close()
    up.queue(Raw(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
    c = client(up)
    c.request("GET", "/raw")
    assert c.getresponse().read() == b"ok"


def test_idle_close(up):
    up.idle_close_ms = 200
    c = client(up)
    c.request("GET", "/1")
    c.getresponse().read()
    assert up.wait_for(lambda u: u.conns[0].closed.is_set(), 5)
    assert up.conns[0].closed_by == "upstream"
    c.close()


def test_slow_reply_and_body_pause(up):
    up.handler = lambda req, conn: Reply(200, body=b"abcdef", trickle=0.05, piece=2)
    up.body_pause = (1000, 0.3)
    c = client(up)
    t0 = time.monotonic()
    c.request("POST", "/", body=b"x" * 5000)
    assert c.getresponse().read() == b"abcdef"
    assert time.monotonic() - t0 >= 0.3


def test_bad_request_recorded_with_error(up):
    with socket.create_connection(("127.0.0.1", up.port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 400 ")
    (req,) = up.wait_requests(1, complete=False)
    assert "bad header line" in req.error


def test_stop_with_open_idle_connection():
    u = RecordingUpstream().start()
    s = socket.create_connection(("127.0.0.1", u.port))
    u.wait_for(lambda x: x.connection_count == 1, 5)
    t0 = time.monotonic()
    assert u.stop() == []
    assert time.monotonic() - t0 < 2
    s.close()
