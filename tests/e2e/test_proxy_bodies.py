"""Bodies through the proxy: Content-Length and chunked requests (the latter collected and sent
with Content-Length, since qBittorrent cannot read chunked requests), response framings,
bodiless responses, Expect: 100-continue, and the 101 upgrade tunnel."""

import hashlib
import os
import time

import pytest

from conftest import wait_until
from proxy_rig import (  # noqa: F401  (fixtures are used by name)
    BodySink,
    connect,
    control_request,
    exchange,
    proxy,
    read_head,
    req,
    stream_body,
    upstream,
    values,
)
from recording_upstream import Reply, Stream, Upgrade, pattern_digest


def chunked(pieces, trailers=b""):
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n" + trailers + b"\r\n"


def test_content_length_body_1mib_byte_identical(proxy, upstream):
    d = proxy()
    body = os.urandom(1024 * 1024)
    r = exchange(d, "POST", "/api/v2/torrents/add",
                 [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(body)))],
                 body)
    assert r.status == 200, r
    (got,) = upstream.wait_requests(1)
    assert got.values("content-length") == [str(len(body))], got
    assert not got.has("transfer-encoding"), got
    assert got.body_size == len(body) and got.body_sha256 == hashlib.sha256(body).hexdigest(), got


def test_chunked_request_forwarded_with_content_length(proxy, upstream):
    d = proxy()
    pieces = [b"a" * 1, b"json=%7B%22listen_port%22%3A", b"51413%7D", os.urandom(70000), b"end"]
    body = b"".join(pieces)
    with connect(d) as c:
        c.send(req("POST", "/api/v2/app/setPreferences",
                   [("Content-Type", "application/x-www-form-urlencoded"),
                    ("Transfer-Encoding", "chunked")], chunked(pieces), host=d.authority))
        r = c.read_response()
        assert r.status == 200, r
        c.send(req("GET", "/after", host=d.authority))
        assert c.read_response().status == 200
    got = upstream.wait_requests(2)[0]
    assert got.values("content-length") == [str(len(body))], got
    assert not got.has("transfer-encoding"), got
    assert got.body_framing == "length" and got.body == body, got


def test_chunked_request_with_extensions_and_trailers(proxy, upstream):
    d = proxy()
    raw = b"5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nX-Checksum: 123\r\n\r\n"
    with connect(d) as c:
        c.send(req("POST", "/c", [("Transfer-Encoding", "chunked")], raw, host=d.authority))
        assert c.read_response().status == 200
    (got,) = upstream.wait_requests(1)
    assert got.body == b"hello world" and got.values("content-length") == ["11"], got


def test_chunked_request_at_cap_accepted(proxy, upstream):
    d = proxy(MAX_BUFFERED_BODY=65536)
    pieces = [os.urandom(16384) for _ in range(4)]
    with connect(d) as c:
        c.send(req("POST", "/cap", [("Transfer-Encoding", "chunked")], chunked(pieces),
                   host=d.authority))
        r = c.read_response()
    assert r.status == 200, r
    (got,) = upstream.wait_requests(1)
    assert got.body == b"".join(pieces), got


def test_chunked_request_over_cap_413_nothing_forwarded(proxy, upstream):
    d = proxy(MAX_BUFFERED_BODY=65536)
    pieces = [os.urandom(16384) for _ in range(4)] + [b"x"]
    with connect(d) as c:
        try:
            c.send(req("POST", "/api/v2/torrents/add", [("Transfer-Encoding", "chunked")],
                       chunked(pieces), host=d.authority))
        except (BrokenPipeError, ConnectionResetError):
            pass
        r = c.read_response()
    assert r.status == 413, r
    reqs = control_request(d, upstream, 1)
    assert [q.target for q in reqs] == ["/control"], reqs


def test_default_chunked_cap_is_64mib(proxy, upstream):
    # 64 MiB + 1 byte in chunks, with the default cap: 413, nothing forwarded.
    d = proxy()
    block = b"z" * (1 << 20)
    with connect(d, timeout=30) as c:
        c.send(req("POST", "/big", [("Transfer-Encoding", "chunked")], host=d.authority))
        try:
            for _ in range(64):
                c.send(b"100000\r\n" + block + b"\r\n")
            c.send(b"1\r\nz\r\n0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        r = c.read_response()
    assert r.status == 413, r
    reqs = control_request(d, upstream, 1)
    assert [q.target for q in reqs] == ["/control"], reqs


def test_content_length_body_not_limited_by_chunked_cap(proxy, upstream):
    d = proxy(MAX_BUFFERED_BODY=65536)
    body = os.urandom(2 * 1024 * 1024)
    r = exchange(d, "POST", "/cl", [("Content-Length", str(len(body)))], body)
    assert r.status == 200, r
    (got,) = upstream.wait_requests(1)
    assert got.body_size == len(body) and got.body_sha256 == hashlib.sha256(body).hexdigest()


def test_chunked_response_complete_and_connection_reused(proxy, upstream):
    d = proxy()
    body = os.urandom(200000)
    upstream.queue(Reply(200, [("Content-Type", "application/json")], body, framing="chunked",
                         chunk_size=7000))
    with connect(d) as c:
        c.send(req("GET", "/chunked", host=d.authority))
        r = c.read_response()
        assert r.status == 200 and r.body == body, (r.status, len(r.body), r.headers)
        c.send(req("GET", "/next", host=d.authority))
        assert c.read_response().status == 200


def test_chunked_response_with_trailer_fields_keeps_sync(proxy, upstream):
    d = proxy()
    upstream.queue(Reply(200, [], b"abc" * 1000, framing="chunked", chunk_size=1000,
                         trailers=[("X-Checksum", "deadbeef")]))
    with connect(d) as c:
        c.send(req("GET", "/trailers", host=d.authority))
        r = c.read_response()
        assert r.status == 200 and r.body == b"abc" * 1000, r
        c.send(req("GET", "/next", host=d.authority))
        r2 = c.read_response()
        assert r2.status == 200 and r2.body.startswith(b"GET /next "), r2


def test_read_to_close_response_complete(proxy, upstream):
    d = proxy()
    body = os.urandom(300000)
    upstream.queue(Reply(200, [("Content-Type", "text/html")], body, framing="close"))
    with connect(d) as c:
        c.send(req("GET", "/close-delimited", host=d.authority))
        r = c.read_response()
        assert r.status == 200, r.headers
        assert r.body == body, (len(r.body), r.headers)
        if not values(r, "content-length") and not values(r, "transfer-encoding"):
            # Delimited by close toward the client too: it must have closed (read_response did).
            return
        # Re-framed: the connection must still serve.
        c.send(req("GET", "/next", host=d.authority))
        assert c.read_response().status == 200


def test_http10_client_gets_close_delimited_or_length(proxy, upstream):
    d = proxy()
    body = os.urandom(50000)
    upstream.queue(Reply(200, [], body, framing="chunked", chunk_size=4096))
    with connect(d) as c:
        c.send(req("GET", "/old", host=d.authority, version="HTTP/1.0"))
        head = read_head(c)
        assert head.status == 200, head
        assert not values(head, "transfer-encoding"), f"chunked sent to an HTTP/1.0 client: {head}"
        data = c.read_until_closed(10)
    assert data == body, len(data)


def test_head_no_body_connection_usable(proxy, upstream):
    d = proxy()
    upstream.queue(Reply(200, [("Content-Type", "text/html"), ("Content-Length", "12345")],
                         framing="none"))
    with connect(d) as c:
        c.send(req("HEAD", "/index.html", host=d.authority))
        r = c.read_response(head=True)
        assert r.status == 200, r
        assert values(r, "content-length") in (["12345"], []), r
        # Body bytes after a HEAD response would corrupt this one.
        c.send(req("GET", "/next", host=d.authority))
        r2 = c.read_response()
        assert r2.status == 200 and r2.body.startswith(b"GET /next "), r2
    assert upstream.requests()[0].method == "HEAD"


@pytest.mark.parametrize("status,headers", [
    (204, []),
    (304, [("ETag", '"abc"')]),
    (304, [("ETag", '"abc"'), ("Content-Length", "5000")]),
])
def test_bodiless_status_connection_usable(proxy, upstream, status, headers):
    d = proxy()
    upstream.queue(Reply(status, headers, framing="none"))
    with connect(d) as c:
        c.send(req("GET", "/cached", [("If-None-Match", '"abc"')], host=d.authority))
        c.sock.settimeout(5)
        r = c.read_response()
        assert r.status == status, r
        c.send(req("GET", "/next", host=d.authority))
        r2 = c.read_response()
        assert r2.status == 200 and r2.body.startswith(b"GET /next "), r2


def test_expect_100_continue(proxy, upstream):
    d = proxy()
    body = b"json=%7B%7D" * 10
    with connect(d) as c:
        c.send(req("POST", "/api/v2/app/setPreferences",
                   [("Content-Length", str(len(body))), ("Expect", "100-continue")],
                   host=d.authority))
        interim = c.read_response()
        assert interim.status == 100, interim
        c.send(body)
        r = c.read_response()
        assert r.status == 200, r
        c.send(req("GET", "/next", host=d.authority))
        assert c.read_response().status == 200
    got = upstream.wait_requests(2)[0]
    assert got.body == body, got


def test_no_100_continue_to_an_http10_client(proxy, upstream):
    # RFC 9110, 15.2: a server must not send a 1xx response to an HTTP/1.0 client, which sends its
    # body without waiting for one.
    d = proxy()
    body = b"json=%7B%7D"
    with connect(d) as c:
        c.send(req("POST", "/api/v2/app/setPreferences", [("Content-Length", str(len(body))),
                                                           ("Expect", "100-continue")],
                   host=d.authority, version="HTTP/1.0"))
        c.sock.settimeout(0.5)
        with pytest.raises(OSError):  # nothing comes before the body (socket.timeout)
            c.read_response()
        c.sock.settimeout(5)
        c.send(body)
        r = c.read_response()
        assert r.status == 200, r
    assert upstream.wait_requests(1)[0].body == body


def test_expect_100_continue_refused_request_gets_final_status_without_body(proxy, upstream):
    # A cross-origin request with Expect is refused at once; the body is never needed.
    d = proxy()
    with connect(d) as c:
        c.send(req("POST", "/x", [("Content-Length", "1000000"), ("Expect", "100-continue"),
                                  ("Origin", "http://evil.example")], host=d.authority))
        r = c.read_response()
        assert r.status == 401, r
    reqs = control_request(d, upstream, 1)
    assert [q.target for q in reqs] == ["/control"], reqs


def test_upgrade_tunnel_echoes_both_ways(proxy, upstream):
    d = proxy()
    upstream.queue(Upgrade(headers=[("Upgrade", "websocket"), ("Connection", "Upgrade"),
                                    ("Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")],
                           greeting=b"hello from upstream"))
    with connect(d) as c:
        c.send(req("GET", "/ws", [("Connection", "Upgrade"), ("Upgrade", "websocket"),
                                  ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                                  ("Sec-WebSocket-Version", "13"),
                                  ("Origin", f"http://{d.authority}")], host=d.authority))
        head = read_head(c)
        assert head.status == 101, head
        assert values(head, "upgrade") == ["websocket"], head
        assert "upgrade" in [t.strip().lower() for v in values(head, "connection")
                             for t in v.split(",")], head
        assert values(head, "sec-websocket-accept") == ["s3pPLMBiTxaQ9kYGzzhZRbK+xOo="], head
        greeting = b"hello from upstream"
        while len(c.buf) < len(greeting):
            c._fill()
        assert c.buf == greeting
        c.buf = b""
        for msg in (b"ping", os.urandom(1024 * 1024), b"last"):
            c.send(msg)
            got = c._read_exact(len(msg))
            assert got == msg, len(got)
    (got,) = upstream.wait_requests(1)
    assert got.values("upgrade") == ["websocket"], got
    assert "upgrade" in got.connection_tokens(), got
    assert got.values("sec-websocket-key") == ["dGhlIHNhbXBsZSBub25jZQ=="], got
    ws = upstream.conn_of("/ws")
    assert ws.closed.wait(5), "the tunnel was not closed toward the upstream"
    assert ws.tunnel_bytes == 4 + 1024 * 1024 + 4


def test_upgrade_refused_by_upstream_is_normal_response(proxy, upstream):
    d = proxy()
    upstream.queue(Reply(400, [("Content-Type", "text/plain")], b"no websockets here"))
    with connect(d) as c:
        c.send(req("GET", "/ws", [("Connection", "Upgrade"), ("Upgrade", "websocket")],
                   host=d.authority))
        r = c.read_response()
        assert r.status == 400 and r.body == b"no websockets here", r
    assert exchange(d, "GET", "/after").status == 200


def test_large_response_to_slow_reader(proxy, upstream):
    """Back-pressure toward a client that stops reading: the proxy stops reading qBittorrent, so what
    qBittorrent gets to send is bounded (by the sockets' buffers and the proxy's 256 KiB queue), not
    the size of the response; once the client reads again, everything arrives whole."""
    d = proxy()
    size = 128 * 1024 * 1024
    stream = Stream(size)
    upstream.queue(stream)
    with connect(d, timeout=60) as c:
        c.send(req("GET", "/slow-reader", host=d.authority))
        head = read_head(c)
        assert head.status == 200, head
        # The client reads nothing more: the upstream's sending must come to a stop, well short of the end.
        last = [-1, time.monotonic()]

        def stalled():
            if stream.sent != last[0]:
                last[:] = [stream.sent, time.monotonic()]
            return time.monotonic() - last[1] > 0.5

        wait_until(stalled, 20, message=lambda: f"the upstream never stopped sending ({stream.sent} bytes)")
        print(f"the upstream stalled after {stream.sent / 1048576:.1f} MiB of {size >> 20} MiB")
        # Loopback's socket buffers hold some MiB each way (8 MiB were seen here); 32 MiB is far beyond them.
        assert stream.sent < 32 * 1024 * 1024, f"{stream.sent} of {size} bytes sent to a client that reads nothing"
        sink = BodySink()
        end = stream_body(c, head, sink)
    assert end == "complete" and sink.size == size, (end, sink.size)
    assert sink.hexdigest == pattern_digest(size), "the body arrived corrupted"


