"""What the upstream answers, when it is odd: ambiguous or malformed framing, interim 1xx
responses, bytes beyond the declared body, oversized heads. The client must get either a
correct response or a 502, never a desynchronised connection, and a poisoned upstream
connection must never be reused."""

import pytest

from conftest import wait_until
from proxy_rig import (  # noqa: F401  (fixtures are used by name)
    connect,
    exchange,
    proxy,
    req,
    upstream,
    values,
)
from recording_upstream import Raw, Reply


def next_request_ok(d, c):
    """The client connection (if still open) and a fresh one both get correct answers."""
    if c is not None:
        c.send(req("GET", "/next", host=d.authority))
        r = c.read_response()
        assert r.status == 200 and r.body.startswith(b"GET /next "), r
    r = exchange(d, "GET", "/fresh")
    assert r.status == 200 and r.body.startswith(b"GET /fresh "), r


def test_extra_bytes_after_body_never_reach_the_next_request(proxy, upstream):
    # Upstream answers with a second, unsolicited response glued to the first. Reusing that
    # connection would hand "poison" to the next client request.
    d = proxy()
    upstream.queue(Raw(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                       b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\npoison"))
    with connect(d) as c:
        c.send(req("GET", "/first", host=d.authority))
        r = c.read_response()
        assert r.status == 200 and r.body == b"ok", r
        for i in range(3):
            c.send(req("GET", f"/again/{i}", host=d.authority))
            r = c.read_response()
            assert r.status == 200 and r.body.startswith(f"GET /again/{i} ".encode()), r


@pytest.mark.parametrize("head", [
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    b"HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\nhello!",
    b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nhello",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nX-Bad: a\x00b\r\nContent-Length: 5\r\n\r\nhello",
    b"HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\nhello",
    b"HTTP/1.1 2000 OK\r\nContent-Length: 5\r\n\r\nhello",
], ids=["two_cl", "cl_list", "cl_negative", "bad_chunk", "nul", "space_colon", "bad_status"])
def test_malformed_upstream_response_502_or_aborted(proxy, upstream, head):
    d = proxy()
    upstream.queue(Raw(head, close=True))
    with connect(d) as c:
        c.send(req("GET", "/bad", host=d.authority))
        try:
            r = c.read_response()
        except (EOFError, ConnectionResetError):
            r = None  # aborted after the head: acceptable for a body error
        if r is not None:
            assert r.status == 502, f"malformed upstream answer {head!r} passed as {r}"
    next_request_ok(d, None)


@pytest.mark.parametrize("head,problem", [
    (b"HTTP/1.1 003 Odd\r\nContent-Length: 2\r\n\r\nok", "a status code outside 100..599"),
    (b"HTTP/1.1 200 O\x01K\r\nContent-Length: 2\r\n\r\nok", "a control byte in the reason phrase"),
    (b"HTTP/1.1 200 OK\r\n: v\r\nContent-Length: 2\r\n\r\nok", "an empty header name"),
    # A switch of protocols nobody asked for: the client would get a tunnel to who knows what.
    (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
     "a 101 Switching Protocols to a request that asked for no upgrade"),
    (b"HTTP/1.1 101 Switching Protocols\r\n\r\n", "a 101 Switching Protocols to a request that asked for no upgrade"),
    # A coding the proxy would strip while re-framing: the client would take gzip bytes for the body.
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n\x1f\x8b\x08\x00", "a Transfer-Encoding other than chunked"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n4\r\n\x1f\x8b\x08\x00\r\n0\r\n\r\n",
     "a Transfer-Encoding other than chunked"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
     "a Transfer-Encoding other than chunked"),
], ids=["status_003", "control_in_reason", "empty_name", "101_unasked", "101_unasked_bare", "te_gzip",
        "te_gzip_chunked", "te_chunked_twice"])
def test_response_llhttp_accepts_but_we_refuse_502_with_the_reason_logged(proxy, upstream, head, problem):
    # llhttp takes these; passing them on would hand the client a head it cannot trust.
    d = proxy()
    upstream.queue(Raw(head, close=True))
    r = exchange(d, "GET", "/odd")
    assert r.status == 502, r
    wait_until(lambda: f"invalid response: {problem}" in d.log(), 5,
               message=f"no log line naming {problem!r}")
    # One line with the reason, not a second one with a wrong one.
    assert "closed the connection" not in d.log() and "protocol error" not in d.log(), d.log()
    next_request_ok(d, None)


def test_upstream_te_and_cl_never_both_reach_client(proxy, upstream):
    # RFC 9112: Transfer-Encoding overrides Content-Length; forwarding both would desync the
    # client. Either the proxy decodes it as chunked or it refuses it (502).
    d = proxy()
    upstream.queue(Raw(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
                       b"5\r\nhello\r\n0\r\n\r\n", close=True))
    with connect(d) as c:
        c.send(req("GET", "/both", host=d.authority))
        r = c.read_response()
        assert not (values(r, "content-length") and values(r, "transfer-encoding")), r
        assert r.status == 502 or (r.status == 200 and r.body == b"hello"), r
    next_request_ok(d, None)


def test_interim_1xx_then_final_response(proxy, upstream):
    d = proxy()
    upstream.queue(Raw(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
                       b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal"))
    with connect(d) as c:
        c.send(req("GET", "/hints", host=d.authority))
        r = c.read_response()
        while 100 <= r.status < 200:
            assert r.status == 103, r
            r = c.read_response()
        assert r.status == 200 and r.body == b"final", r
        next_request_ok(d, c)


def test_oversized_upstream_head_502(proxy, upstream):
    d = proxy()
    big = b"".join(b"X-Filler-%d: %s\r\n" % (i, b"v" * 1000) for i in range(2048))  # 2 MiB
    upstream.queue(Raw(b"HTTP/1.1 200 OK\r\n" + big + b"Content-Length: 2\r\n\r\nok", close=True))
    r = exchange(d, "GET", "/huge-head")
    assert r.status == 502, (r.status, r.headers[:3])
    next_request_ok(d, None)


def test_large_request_headers_pass_intact(proxy, upstream):
    d = proxy()
    # A browser sends about 20 headers; the daemon caps a head at 100 fields (src/http.h).
    cookie = "SID=" + "a" * 6000
    headers = [("Cookie", cookie)] + [(f"X-Many-{i}", f"value {i}") for i in range(80)]
    r = exchange(d, "GET", "/many", headers)
    assert r.status == 200, r
    (got,) = upstream.wait_requests(1)
    assert got.values("cookie") == [cookie], got
    many = [(k, v) for k, v in got.headers if k.lower().startswith("x-many-")]
    assert many == [(f"X-Many-{i}", f"value {i}") for i in range(80)], many


def test_response_status_line_without_reason(proxy, upstream):
    d = proxy()
    upstream.queue(Raw(b"HTTP/1.1 200 \r\nContent-Length: 2\r\n\r\nok"))
    with connect(d) as c:
        c.send(req("GET", "/noreason", host=d.authority))
        r = c.read_response()
        assert r.status == 200 and r.body == b"ok", r
        next_request_ok(d, c)


def test_http10_upstream_response_read_to_close(proxy, upstream):
    d = proxy()
    upstream.queue(Raw(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nold server body", close=True))
    with connect(d) as c:
        c.send(req("GET", "/old", host=d.authority))
        r = c.read_response()
        assert r.status == 200 and r.body == b"old server body", r
        if values(r, "content-length") or values(r, "transfer-encoding"):
            next_request_ok(d, c)
    next_request_ok(d, None)
