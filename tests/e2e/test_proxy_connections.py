"""Connections: client keep-alive, the upstream pool, retry on a stale pooled connection,
the client connection cap, and upstream failures (502, 504, abort after the head)."""

import hashlib
import os
import threading
import time

import pytest

from conftest import free_port, wait_until
from proxy_rig import (  # noqa: F401  (fixtures are used by name)
    BodySink,
    connect,
    exchange,
    is_closed,
    proxy,
    read_head,
    req,
    stream_body,
    upstream,
    values,
)
from recording_upstream import CloseMidBody, CloseNoAnswer, Raw, Reply, Stall, Stream

# Slack on top of UPSTREAM_TIMEOUT for the 504 (the sanitizer build and a busy CI are slower),
# kept below UPSTREAM_TIMEOUT itself so a second full wait cannot hide in it.
TIMEOUT_MARGIN = 1.5


def test_twenty_requests_on_one_client_connection_reuse_upstream(proxy, upstream):
    d = proxy()
    with connect(d) as c:
        for i in range(20):
            c.send(req("GET", f"/seq/{i}", host=d.authority))
            r = c.read_response()
            assert r.status == 200, (i, r)
            assert r.body.startswith(f"GET /seq/{i} ".encode()), (i, r)
    assert len(upstream.requests()) == 20
    n = len(upstream.proxied_conns())
    assert n <= 2, f"{n} upstream connections for 20 sequential requests"


def test_pipelined_requests_answered_in_order(proxy, upstream):
    d = proxy()
    with connect(d) as c:
        c.send(b"".join(req("GET", f"/p/{i}", host=d.authority) for i in range(5)))
        for i in range(5):
            r = c.read_response()
            assert r.status == 200 and r.body.startswith(f"GET /p/{i} ".encode()), (i, r)


def test_two_client_connections_in_turn_share_pooled_upstream(proxy, upstream):
    d = proxy()
    with connect(d) as a:
        a.send(req("GET", "/a", host=d.authority))
        assert a.read_response().status == 200
    with connect(d) as b:
        b.send(req("GET", "/b", host=d.authority))
        r = b.read_response()
        assert r.status == 200, r
    conns = upstream.proxied_conns()
    assert len(conns) == 1, [(c.index, c.requests) for c in conns]
    assert r.body.startswith(b"GET /b ") and r.body.endswith(b" req=1\n"), r


def test_client_connection_close_honoured(proxy, upstream):
    d = proxy()
    with connect(d) as c:
        c.send(req("GET", "/x", [("Connection", "close")], host=d.authority))
        r = c.read_response()
        assert r.status == 200, r
        assert is_closed(c), "the proxy kept the connection open after Connection: close"


def test_upstream_connection_close_does_not_close_client(proxy, upstream):
    # qBittorrent may close its side after a response; the client's keep-alive is ours.
    d = proxy()
    upstream.handler = lambda rq, conn: Reply(200, [], b"bye", close=True)
    with connect(d) as c:
        for i in range(3):
            c.send(req("GET", f"/{i}", host=d.authority))
            r = c.read_response()
            assert r.status == 200 and r.body == b"bye", r
    assert len(upstream.proxied_conns()) == 3


def test_stale_pooled_connection_closed_by_upstream_idle_timeout(proxy, upstream):
    # qBittorrent closes idle keep-alive connections after ~7 s; here after 300 ms.
    d = proxy()
    upstream.idle_close_ms = 300
    with connect(d) as c:
        c.send(req("GET", "/1", host=d.authority))
        assert c.read_response().status == 200
        first = upstream.conn_of("/1")
        assert first.closed.wait(5), "the upstream did not close its idle connection"
        c.send(req("GET", "/2", host=d.authority))
        r = c.read_response()
        assert r.status == 200, r
        assert r.body.startswith(b"GET /2 "), r
        assert upstream.conn_of("/2") is not first


def test_get_retried_once_when_reused_connection_closes_without_answer(proxy, upstream):
    d = proxy()

    def handler(rq, conn):
        if rq.proxied_index > 0:  # a reused connection: behave like a keep-alive close race
            return CloseNoAnswer()
        return Reply(200, [], f"{rq.target} on a fresh connection".encode())

    upstream.handler = handler
    with connect(d) as c:
        c.send(req("GET", "/first", host=d.authority))
        assert c.read_response().status == 200
        c.send(req("GET", "/second", host=d.authority))
        r = c.read_response()
        assert r.status == 200, r
        assert r.body == b"/second on a fresh connection", r
    reqs = upstream.requests()
    got = [(q.proxied_index, q.target) for q in reqs]
    assert got == [(0, "/first"), (1, "/second"), (0, "/second")], reqs
    assert reqs[0].conn_index == reqs[1].conn_index != reqs[2].conn_index, reqs
    assert reqs[1].head_raw == reqs[2].head_raw, reqs


def test_retry_happens_only_once(proxy, upstream):
    d = proxy()

    def handler(rq, conn):
        if rq.target == "/warm":
            return Reply(200, [], b"warm")
        return CloseNoAnswer()

    upstream.handler = handler
    with connect(d) as c:
        c.send(req("GET", "/warm", host=d.authority))
        assert c.read_response().status == 200
        c.send(req("GET", "/doomed", host=d.authority))
        r = c.read_response()
        assert r.status == 502, r
    doomed = [q for q in upstream.requests() if q.target == "/doomed"]
    assert len(doomed) == 2, f"/doomed sent {len(doomed)} times: {doomed}"


def test_upstream_refused_502_then_still_serving(proxy, upstream):
    d = proxy(qbit_addr=f"http://127.0.0.1:{free_port()}")
    r = exchange(d, "GET", "/api/v2/app/version")
    assert r.status == 502, r
    r = exchange(d, "GET", "/again")
    assert r.status == 502, r
    assert exchange(d, "GET", "/healthz").status == 200


def test_upstream_stall_504_within_timeout(proxy, upstream):
    # A stalled upstream has the request and may be executing it: that is not the keep-alive
    # close race that justifies a retry, so one attempt, and 504 after UPSTREAM_TIMEOUT (not 2x).
    d = proxy(UPSTREAM_TIMEOUT=2, UPSTREAM_CONNECT_TIMEOUT=1)
    upstream.handler = lambda rq, conn: Stall() if rq.target == "/stall" else Reply(200, [], b"ok")
    with connect(d, timeout=2 + TIMEOUT_MARGIN + 3) as c:
        t0 = time.monotonic()
        c.send(req("GET", "/stall", host=d.authority))
        r = c.read_response()
        took = time.monotonic() - t0
    attempts = [q for q in upstream.requests() if q.target == "/stall"]
    assert r.status == 504, (r, attempts)
    assert 1.8 <= took <= 2 + TIMEOUT_MARGIN, f"504 after {took:.2f} s with UPSTREAM_TIMEOUT=2"
    assert len(attempts) == 1, f"a request that timed out was sent again: {attempts}"
    # The stalled upstream connection must not be reused; the next request works.
    r = exchange(d, "GET", "/after")
    assert r.status == 200 and r.body == b"ok", r


def test_slow_upstream_within_timeout_succeeds(proxy, upstream):
    d = proxy(UPSTREAM_TIMEOUT=2)
    upstream.queue(Reply(200, [], b"slow but fine", delay=0.5))
    r = exchange(d, "GET", "/slow")
    assert r.status == 200 and r.body == b"slow but fine", r


def test_slow_trickled_body_arrives_whole(proxy, upstream):
    # UPSTREAM_TIMEOUT bounds the wait for the head and idle gaps, not the whole transfer.
    d = proxy(UPSTREAM_TIMEOUT=1)
    body = bytes(range(48, 58)) * 5
    upstream.queue(Reply(200, [], body, trickle=0.05, piece=2))
    r = exchange(d, "GET", "/trickle")
    assert r.status == 200 and r.body == body, r


def check_aborted(d, up, framing):
    length, sent = 100000, 50000
    up.queue(CloseMidBody(length, sent, framing=framing))
    with connect(d) as c:
        c.send(req("GET", "/mid", host=d.authority))
        head = read_head(c)
        assert head.status == 200, head
        sink = BodySink()
        end = stream_body(c, head, sink)
        assert end in ("eof", "reset"), f"a truncated body looked complete ({end}); {head}"
        assert sink.size < length, (sink.size, head)
        cl = values(head, "content-length")
        if cl:
            assert int(cl[0]) == length, head
        else:
            assert "chunked" in ",".join(values(head, "transfer-encoding")), (
                f"no length and no chunking: a read-to-close body would look complete; {head}")
    r = exchange(d, "GET", "/after")
    assert r.status == 200 and r.body.startswith(b"GET /after "), r


def test_upstream_closes_mid_body_content_length_client_aborted(proxy, upstream):
    d = proxy()
    check_aborted(d, upstream, "length")


def test_upstream_closes_mid_body_chunked_client_aborted(proxy, upstream):
    d = proxy()
    check_aborted(d, upstream, "chunked")


def test_upstream_closes_before_answering_fresh_connection_502(proxy, upstream):
    d = proxy()
    upstream.handler = lambda rq, conn: CloseNoAnswer() if rq.target == "/gone" else Reply(200, [], b"ok")
    r = exchange(d, "GET", "/gone")
    assert r.status == 502, r
    assert exchange(d, "GET", "/after").status == 200


def test_upstream_closes_inside_head_502(proxy, upstream):
    d = proxy()
    upstream.queue(Raw(b"HTTP/1.1 200 OK\r\nContent-Type: te", close=True))
    r = exchange(d, "POST", "/half", [("Content-Length", "2")], b"hi")
    assert r.status == 502, r
    assert exchange(d, "GET", "/after").status == 200


def test_upstream_garbage_response_502(proxy, upstream):
    d = proxy()
    upstream.queue(Raw(b"SSH-2.0-OpenSSH_9.2\r\n\r\n", close=True))
    r = exchange(d, "POST", "/garbage", [("Content-Length", "2")], b"hi")
    assert r.status == 502, r
    assert exchange(d, "GET", "/after").status == 200


def test_connection_cap_sixth_gets_503(proxy, upstream):
    d = proxy(MAX_CONNECTIONS=5)
    held = []
    try:
        for i in range(5):
            c = connect(d)
            held.append(c)
            c.send(req("GET", f"/held/{i}", host=d.authority))
            assert c.read_response().status == 200  # accepted, counted, now idle
        with connect(d) as sixth:
            try:
                sixth.send(req("GET", "/sixth", host=d.authority))
            except (BrokenPipeError, ConnectionResetError):
                pass
            r = sixth.read_response()
            assert r.status == 503, r
        assert [q.target for q in upstream.requests()] == [f"/held/{i}" for i in range(5)]
        # One idle connection leaves: a new client gets through.
        held.pop().close()

        def served():
            try:
                return exchange(d, "GET", "/later").status == 200
            except (OSError, EOFError):
                return False

        wait_until(served, 5, interval=0.05, message="no room after a client left")
    finally:
        for c in held:
            c.close()


def test_pool_drops_connections_the_upstream_closed(proxy, upstream):
    # A pooled connection that qBittorrent closed is dropped from the pool, not reused forever.
    d = proxy()
    upstream.idle_close_ms = 100
    for i in range(3):
        assert exchange(d, "GET", f"/{i}").status == 200
        assert upstream.conn_of(f"/{i}").closed.wait(5)
    assert len(upstream.proxied_conns()) == 3


def test_aborted_transfers_leak_no_descriptors(proxy, upstream):
    d = proxy()
    assert exchange(d, "GET", "/warm").status == 200
    before = len(os.listdir(f"/proc/{d.pid}/fd"))
    for _ in range(5):
        upstream.queue(CloseMidBody(10000, 10))
        with connect(d) as c:
            c.send(req("GET", "/mid", host=d.authority))
            c.read_until_closed(5)
    assert exchange(d, "GET", "/after").status == 200
    after = len(os.listdir(f"/proc/{d.pid}/fd"))
    assert after <= before + 1, f"descriptors: {before} before, {after} after 5 aborted transfers"


def test_client_disconnects_mid_download_daemon_survives(proxy, upstream):
    d = proxy()
    upstream.queue(Stream(64 * 1024 * 1024))
    with connect(d) as c:
        c.send(req("GET", "/big", host=d.authority))
        head = read_head(c)
        assert head.status == 200, head
        got = len(c.buf)
        while got < 1024 * 1024:
            got += len(c.sock.recv(65536))
    # Half a response cannot be reused: the upstream connection must be closed, soon.
    assert upstream.conn_of("/big").closed.wait(10), "upstream connection left open after abort"
    r = exchange(d, "GET", "/after")
    assert r.status == 200 and r.body.startswith(b"GET /after "), r
    assert d.proc.poll() is None


def test_client_closes_with_pipelined_response_in_flight(proxy, upstream):
    d = proxy()
    upstream.handler = lambda rq, conn: Reply(200, [], b"x" * 100000, delay=0.2 if rq.target == "/2" else 0)
    with connect(d) as c:
        c.send(req("GET", "/1", host=d.authority) + req("GET", "/2", host=d.authority))
        r = c.read_response()
        assert r.status == 200, r
    # Closed while /2 is still waiting upstream.
    upstream.wait_requests(2, timeout=5)
    assert upstream.conn_of("/2").closed.wait(10)
    r = exchange(d, "GET", "/after")
    assert r.status == 200 and r.body == b"x" * 100000, r
    assert d.proc.poll() is None


def test_client_closes_while_request_waits_upstream(proxy, upstream):
    d = proxy(UPSTREAM_TIMEOUT=2)
    upstream.queue(Stall())
    with connect(d) as c:
        c.send(req("GET", "/stalled", host=d.authority))
        upstream.wait_requests(1, timeout=5)
    assert upstream.conn_of("/stalled").closed.wait(10), "stalled upstream connection never closed"
    r = exchange(d, "GET", "/after")
    assert r.status == 200, r
    assert d.proc.poll() is None


def test_upstream_stalls_mid_body_client_aborted_after_timeout(proxy, upstream):
    d = proxy(UPSTREAM_TIMEOUT=1)
    upstream.queue(CloseMidBody(100000, 30000, then="stall"))
    with connect(d, timeout=10) as c:
        t0 = time.monotonic()
        c.send(req("GET", "/stuck", host=d.authority))
        head = read_head(c)
        assert head.status == 200, head
        sink = BodySink()
        end = stream_body(c, head, sink)
        took = time.monotonic() - t0
    assert end in ("eof", "reset"), f"a truncated body looked complete ({end}); {head}"
    assert sink.size == 30000, sink.size
    assert took <= 1 + TIMEOUT_MARGIN + 1, f"client aborted only after {took:.2f} s"
    assert upstream.conn_of("/stuck").closed.wait(5)
    assert exchange(d, "GET", "/after").status == 200


def test_client_aborts_mid_upload_upstream_connection_not_reused(proxy, upstream):
    # Half a body sits on that upstream connection: reusing it would let the next request's
    # bytes be read as the rest of this body.
    d = proxy()
    with connect(d) as c:
        c.send(req("POST", "/upload", [("Content-Length", "100000")], b"a" * 1000, host=d.authority))
        upstream.wait_requests(1, timeout=5, complete=False)
    assert upstream.conn_of("/upload").closed.wait(10), "upstream connection kept after abort"
    r = exchange(d, "POST", "/next", [("Content-Length", "5")], b"hello")
    assert r.status == 200, r
    nxt = [q for q in upstream.requests() if q.target == "/next"]
    assert len(nxt) == 1 and nxt[0].body == b"hello", upstream.requests()
    upload = upstream.requests()[0]
    assert upload.target == "/upload" and not upload.complete, upload


def test_pipelined_post_then_get(proxy, upstream):
    d = proxy()
    with connect(d) as c:
        c.send(req("POST", "/p", [("Content-Length", "11")], b"hello world", host=d.authority)
               + req("GET", "/g", host=d.authority))
        r1 = c.read_response()
        r2 = c.read_response()
    assert r1.status == 200 and r1.body.startswith(b"POST /p "), r1
    assert r2.status == 200 and r2.body.startswith(b"GET /g "), r2
    reqs = upstream.requests()
    assert [(q.method, q.target, q.body) for q in reqs] == [("POST", "/p", b"hello world"),
                                                            ("GET", "/g", b"")], reqs


def test_pool_drops_idle_connections_before_qbittorrent_does(proxy, upstream):
    # qBittorrent closes idle keep-alive connections after about 7 s; the proxy must close its
    # pooled ones first, or it will keep racing that close. The upstream here never closes.
    d = proxy()
    assert exchange(d, "GET", "/idle").status == 200
    conn = upstream.conn_of("/idle")
    assert conn.closed.wait(7.0), "a pooled connection stayed open for 7 s"
    assert conn.closed_by == "peer", conn


def test_client_connection_close_not_forwarded_pool_kept(proxy, upstream):
    # Connection: close is the client's hop; the upstream connection stays pooled.
    d = proxy()
    assert exchange(d, "GET", "/a").status == 200  # exchange sends Connection: close
    assert exchange(d, "GET", "/b").status == 200
    a, b = upstream.requests()
    assert "close" not in a.connection_tokens(), a
    assert a.conn_index == b.conn_index, (a, b)


def test_upstream_connection_close_header_means_no_reuse(proxy, upstream):
    # The upstream said it will close; even if it is slow to do so, nothing more goes there.
    d = proxy()
    upstream.queue(Raw(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"))
    assert exchange(d, "GET", "/closing").body == b"ok"
    r = exchange(d, "GET", "/after")
    assert r.status == 200, r
    assert upstream.conn_of("/after") is not upstream.conn_of("/closing")


def test_http10_upstream_response_means_no_reuse(proxy, upstream):
    d = proxy()
    upstream.queue(Raw(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"))
    assert exchange(d, "GET", "/old").body == b"ok"
    r = exchange(d, "GET", "/after")
    assert r.status == 200, r
    assert upstream.conn_of("/after") is not upstream.conn_of("/old")


@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_body_request_on_stale_connection_never_replayed_truncated(proxy, upstream, framing):
    # A reused connection closes after reading the whole request. A replay is allowed only with
    # the whole body still held; whatever arrives must be complete and intact.
    d = proxy()
    body = os.urandom(8 * 1024 * 1024 if framing == "length" else 256 * 1024)
    upstream.handler = lambda rq, conn: CloseNoAnswer() if rq.proxied_index > 0 else Reply(200, [], b"ok")
    with connect(d, timeout=20) as c:
        c.send(req("GET", "/warm", host=d.authority))
        assert c.read_response().status == 200
        if framing == "length":
            c.send(req("POST", "/upload", [("Content-Length", str(len(body)))], body, host=d.authority))
        else:
            pieces = [body[i:i + 65536] for i in range(0, len(body), 65536)]
            c.send(req("POST", "/upload", [("Transfer-Encoding", "chunked")],
                       b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n",
                       host=d.authority))
        r = c.read_response()
    uploads = [q for q in upstream.requests() if q.target == "/upload"]
    assert 1 <= len(uploads) <= 2, uploads
    for q in uploads:
        if q.complete:
            assert q.body_size == len(body) and q.body_sha256 == hashlib.sha256(body).hexdigest(), q
    if r.status == 200:
        assert len(uploads) == 2 and uploads[1].complete, uploads
    else:
        assert r.status == 502, r


def test_head_response_with_chunked_header_has_no_body(proxy, upstream):
    d = proxy()
    upstream.queue(Reply(200, [("Transfer-Encoding", "chunked")], framing="none"))
    with connect(d) as c:
        c.send(req("HEAD", "/head-chunked", host=d.authority))
        c.sock.settimeout(5)
        r = c.read_response(head=True)
        assert r.status == 200, r
        c.send(req("GET", "/next", host=d.authority))
        r2 = c.read_response()
        assert r2.status == 200 and r2.body.startswith(b"GET /next "), r2


@pytest.mark.parametrize("target", ["/healthzx", "/healthz/x", "/api/v2/healthz", "/readyzz", "/syncx"])
def test_paths_near_own_endpoints_are_proxied(proxy, upstream, target):
    d = proxy()
    r = exchange(d, "GET", target)
    assert r.status == 200 and r.body.startswith(f"GET {target} ".encode()), r


class LateBody:
    """Answers with head_bytes now and tail_bytes a moment later, on the same kept connection:
    a server that sends what it should not (qBittorrent 4.5 sends the body after a HEAD answer)."""

    def __init__(self, head_bytes, tail_bytes, delay=0.05):
        self.head_bytes, self.tail_bytes, self.delay = head_bytes, tail_bytes, delay
        self.sent = threading.Event()  # set once the tail is on the wire

    def run(self, ctx):
        ctx.send(self.head_bytes)
        if not ctx.sleep(self.delay):
            return False
        ctx.send(self.tail_bytes)
        self.sent.set()
        return True


# The bytes a late sender puts on the connection: a complete response, so a proxy that reads them
# as the next exchange's answer hands them to the next client whole.
FOR_SOMEONE_ELSE = b"HTTP/1.1 200 OK\r\nContent-Length: 21\r\n\r\nmeant for someone else"[:-1]


@pytest.mark.parametrize("first", ["head", "get-then-stray-bytes"])
def test_late_bytes_from_the_upstream_never_reach_the_next_client(proxy, upstream, first):
    """20 rounds: client A's exchange ends, then qBittorrent sends more bytes on that connection
    (after a HEAD: the body, a moment later; after a GET: stray bytes, which are on the wire before
    B asks); client B, on its own connection, must get its own answer."""
    d = proxy()
    sent = []

    def handler(rq, conn):
        if rq.target.startswith("/a"):
            if first == "head":
                late = LateBody(b"HTTP/1.1 200 OK\r\nContent-Length: 21\r\n\r\n", FOR_SOMEONE_ELSE[-21:])
            else:
                late = LateBody(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", FOR_SOMEONE_ELSE)
            sent.append(late.sent)
            return late
        return Reply(200, [], f"{rq.target} for B".encode())

    upstream.handler = handler
    method = "HEAD" if first == "head" else "GET"
    for i in range(20):
        with connect(d) as a:
            a.send(req(method, f"/a{i}", host=d.authority))
            ra = a.read_response(head=(method == "HEAD"))
            assert ra.status == 200, ra
        # After a HEAD, B asks at once (the body is still to come); after a GET, once the stray bytes
        # are out: nobody can tell those from an answer once a new request is on the wire.
        if first != "head":
            assert sent[-1].wait(5), "the upstream never sent its stray bytes"
        with connect(d) as b:
            b.send(req("GET", f"/b{i}", host=d.authority))
            rb = b.read_response()
        assert rb.status == 200 and rb.body == f"/b{i} for B".encode(), (i, rb)


@pytest.mark.parametrize("method,body", [("POST", None), ("POST", "chunked"), ("POST", "length"),
                                         ("PATCH", None)],
                         ids=["post-no-body", "post-chunked", "post-length", "patch"])
def test_non_idempotent_request_never_sent_twice(proxy, upstream, method, body):
    """A reused connection that closes without answering: qBittorrent may have executed the request,
    so it is not sent again; the client gets 502 and can decide itself."""
    d = proxy()
    upstream.handler = lambda rq, conn: CloseNoAnswer() if rq.proxied_index > 0 else Reply(200, [], b"ok")
    with connect(d) as c:
        c.send(req("GET", "/warm", host=d.authority))
        assert c.read_response().status == 200
        if body == "chunked":
            c.send(req(method, "/act", [("Transfer-Encoding", "chunked")], b"5\r\nhello\r\n0\r\n\r\n",
                       host=d.authority))
        elif body == "length":
            c.send(req(method, "/act", [("Content-Length", "5")], b"hello", host=d.authority))
        else:
            c.send(req(method, "/act", [("Content-Length", "0")], host=d.authority))
        r = c.read_response()
    assert r.status == 502, r
    sent = [q for q in upstream.requests() if q.target == "/act"]
    assert len(sent) == 1, f"{method} /act sent {len(sent)} times"
