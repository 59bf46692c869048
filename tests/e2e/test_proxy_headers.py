"""The proxy's request and response header rewriting, as the recording upstream receives it.

qBittorrent refuses a Host whose port is not its own and an Origin/Referer that differs from
Host, so the proxy sends Host as QBIT_ADDR's authority, checks same-origin itself against the
Host the client used, and rewrites Origin/Referer to QBIT_ADDR's origin (issue 3).
"""

from conftest import free_port
from proxy_rig import (  # noqa: F401  (fixtures are used by name)
    connect,
    connection_tokens,
    control_request,
    exchange,
    proxy,
    req,
    upstream,
    values,
)
from recording_upstream import Reply

HOP_BY_HOP = ("keep-alive", "proxy-authorization", "proxy-connection", "te", "trailer", "upgrade",
              "x-hop", "x-hop-2")
CLIENT_FORWARDING = ("forwarded", "x-forwarded-host", "x-forwarded-port", "x-forwarded-server",
                     "x-real-ip")


def one_request(d, up, target="/api/v2/app/version", headers=(), method="GET", body=b"", host=None):
    """Sends one request through the proxy; returns (client response, upstream's record)."""
    r = exchange(d, method, target, headers, body, host=host)
    reqs = up.wait_requests(1, timeout=5)
    assert len(reqs) == 1, f"upstream saw {reqs}; client got {r}"
    return r, reqs[0]


def test_host_is_qbit_authority_and_target_untouched(proxy, upstream):
    d = proxy()
    target = "/api/v2/torrents/info?filter=all&category=a%2Fb%20c&sort=name&empty=&flag"
    r, got = one_request(d, upstream, target)
    assert r.status == 200, r
    assert got.target == target, got
    assert got.values("host") == [f"127.0.0.1:{upstream.port}"], got
    assert got.method == "GET" and got.version == "HTTP/1.1", got


def test_path_with_encoded_slash_and_semicolon_untouched(proxy, upstream):
    d = proxy()
    target = "/api/v2/x%2Fy;z=1/..%2F?q=%00%ff"
    r, got = one_request(d, upstream, target)
    assert r.status == 200, r
    assert got.target == target, got


def test_qbit_addr_prefix_is_prepended(proxy, upstream):
    d = proxy(prefix="/qbt")
    r, got = one_request(d, upstream, "/api/v2/x?y=1")
    assert r.status == 200, r
    assert got.target == "/qbt/api/v2/x?y=1", got
    assert got.values("host") == [f"127.0.0.1:{upstream.port}"], got


def test_methods_pass_through(proxy, upstream):
    d = proxy()
    for i, method in enumerate(("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")):
        body = b"x=1" if method in ("POST", "PUT", "PATCH") else b""
        headers = [("Content-Length", str(len(body)))] if body else []
        r = exchange(d, method, f"/m/{i}", headers, body)
        assert r.status == 200, (method, r)
        reqs = upstream.wait_requests(i + 1, timeout=5)
        assert reqs[i].method == method and reqs[i].target == f"/m/{i}", reqs[i]
        assert reqs[i].body == body, reqs[i]


def test_end_to_end_headers_arrive_unchanged(proxy, upstream):
    d = proxy()
    headers = [
        ("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) qgs-test/1.0"),
        ("Cookie", "SID=abcDEF123+/=; other=1"),
        ("Content-Type", "application/x-www-form-urlencoded; charset=UTF-8"),
        ("Accept", "*/*"),
        ("Accept-Language", "en-GB,en;q=0.9"),
        ("Authorization", "Basic dXNlcjpwYXNz"),
        ("X-Custom", "  value with  inner  spaces"),
        ("X-Dup", "1"),
        ("X-Dup", "2"),
        ("Sec-Fetch-Site", "same-origin"),
        ("Sec-Fetch-Mode", "cors"),
        ("Content-Length", "7"),
    ]
    r, got = one_request(d, upstream, "/api/v2/auth/login", headers, "POST", b"a=b&c=d")
    assert r.status == 200, r
    for name, value in headers:
        if name == "X-Dup":
            continue
        assert got.values(name) == [value.strip()], (name, got)
    assert got.values("x-dup") == ["1", "2"], got
    assert got.body == b"a=b&c=d", got


def test_hop_by_hop_request_headers_removed(proxy, upstream):
    d = proxy()
    headers = [
        ("Connection", "keep-alive, X-Hop, x-hop-2"),
        ("X-Hop", "must go"),
        ("X-Hop-2", "must go too"),
        ("Keep-Alive", "timeout=5, max=100"),
        ("Proxy-Authorization", "Basic c2VjcmV0OnNlY3JldA=="),
        ("Proxy-Connection", "keep-alive"),
        ("TE", "trailers"),
        ("Trailer", "X-Checksum"),
        ("Upgrade", "h2c"),  # not named in Connection: not an upgrade
        ("X-Stays", "yes"),
    ]
    with connect(d) as c:
        c.send(req("GET", "/hop", headers, host=d.authority))
        r = c.read_response()
        assert r.status == 200, r
        # The client asked for keep-alive: the connection must still work.
        c.send(req("GET", "/after", host=d.authority))
        assert c.read_response().status == 200
    got = upstream.wait_requests(2, timeout=5)[0]
    for name in HOP_BY_HOP:
        assert not got.has(name), (name, got)
    assert set(got.connection_tokens()) <= {"keep-alive"}, got
    assert got.values("x-stays") == ["yes"], got


def test_client_forwarding_headers_replaced(proxy, upstream):
    d = proxy()
    headers = [
        ("Forwarded", "for=8.8.8.8;host=evil.example;proto=https"),
        ("X-Forwarded-For", "8.8.8.8, 1.1.1.1"),
        ("x-forwarded-for", "9.9.9.9"),
        ("X-Forwarded-Host", "evil.example"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Port", "443"),
        ("X-Forwarded-Server", "evil"),
        ("X-Real-IP", "8.8.8.8"),
    ]
    r, got = one_request(d, upstream, "/api/v2/app/version", headers)
    assert r.status == 200, r
    assert got.values("x-forwarded-for") == ["127.0.0.1"], got
    assert got.values("x-forwarded-proto") == ["http"], got
    for name in CLIENT_FORWARDING:
        assert not got.has(name), (name, got)


def test_forwarding_headers_added_when_client_sent_none(proxy, upstream):
    d = proxy()
    r, got = one_request(d, upstream)
    assert r.status == 200, r
    assert got.values("x-forwarded-for") == ["127.0.0.1"], got
    assert got.values("x-forwarded-proto") == ["http"], got
    assert not got.has("x-forwarded-host"), got
    assert not got.has("forwarded"), got


def test_same_origin_origin_rewritten_to_qbit(proxy, upstream):
    d = proxy()
    headers = [("Origin", f"http://{d.authority}"), ("Sec-Fetch-Site", "same-origin"),
               ("Content-Length", "3")]
    r, got = one_request(d, upstream, "/api/v2/auth/login", headers, "POST", b"a=b")
    assert r.status == 200, r
    assert got.values("origin") == [f"http://127.0.0.1:{upstream.port}"], got
    assert got.values("sec-fetch-site") == ["same-origin"], got
    assert got.values("host") == [f"127.0.0.1:{upstream.port}"], got


def test_same_origin_referer_rewritten_to_qbit(proxy, upstream):
    d = proxy()
    headers = [("Referer", f"http://{d.authority}/some/page?tab=2")]
    r, got = one_request(d, upstream, "/api/v2/sync/maindata", headers)
    assert r.status == 200, r
    assert got.values("referer") == [f"http://127.0.0.1:{upstream.port}/some/page?tab=2"], got


def test_origin_and_referer_both_rewritten(proxy, upstream):
    d = proxy()
    headers = [("Origin", f"http://{d.authority}"), ("Referer", f"http://{d.authority}/some/page")]
    r, got = one_request(d, upstream, "/api/v2/app/version", headers)
    assert r.status == 200, r
    assert got.values("origin") == [f"http://127.0.0.1:{upstream.port}"], got
    assert got.values("referer") == [f"http://127.0.0.1:{upstream.port}/some/page"], got


def test_origin_check_uses_host_the_client_sent(proxy, upstream):
    # A client that reached us by another name (a DNS name, a published port) is same-origin
    # with that name; the check is against its Host, not our listen address.
    d = proxy()
    host = "qbt.example:8443"
    headers = [("Origin", f"http://{host}"), ("Referer", f"http://{host}/index.html")]
    r, got = one_request(d, upstream, "/api/v2/app/version", headers, host=host)
    assert r.status == 200, r
    assert got.values("host") == [f"127.0.0.1:{upstream.port}"], got
    assert got.values("origin") == [f"http://127.0.0.1:{upstream.port}"], got
    assert got.values("referer") == [f"http://127.0.0.1:{upstream.port}/index.html"], got


def cross_origin_refused(d, up, headers, method="GET", body=b""):
    with connect(d) as c:
        c.send(req(method, "/api/v2/app/shutdown", headers, body, host=d.authority))
        r = c.read_response()
    assert r.status == 401, r
    reqs = control_request(d, up, 1)
    assert [q.target for q in reqs] == ["/control"], f"upstream received {reqs}"


def test_cross_origin_origin_refused_401(proxy, upstream):
    d = proxy()
    cross_origin_refused(d, upstream, [("Origin", "http://evil.example")])


def test_cross_origin_post_with_body_refused_401(proxy, upstream):
    d = proxy()
    cross_origin_refused(d, upstream, [("Origin", "http://evil.example"), ("Content-Length", "9"),
                                       ("Content-Type", "application/x-www-form-urlencoded")],
                         "POST", b"json=%7B%7D")


def test_origin_other_port_refused_401(proxy, upstream):
    d = proxy()
    cross_origin_refused(d, upstream, [("Origin", f"http://127.0.0.1:{free_port()}")])


def test_origin_other_name_same_address_refused_401(proxy, upstream):
    # Compared as strings, as qBittorrent does: localhost is not 127.0.0.1.
    d = proxy()
    cross_origin_refused(d, upstream, [("Origin", f"http://localhost:{d.port}")])


def test_cross_origin_referer_without_origin_refused_401(proxy, upstream):
    d = proxy()
    cross_origin_refused(d, upstream, [("Referer", f"http://127.0.0.1:{free_port()}/page")])


def test_cross_origin_origin_wins_over_same_origin_referer(proxy, upstream):
    d = proxy()
    cross_origin_refused(d, upstream, [("Origin", "http://evil.example"),
                                       ("Referer", f"http://{d.authority}/page")])


def test_response_hop_by_hop_removed_set_cookie_kept(proxy, upstream):
    d = proxy()
    body = b"response body " * 100
    upstream.handler = lambda rq, conn: Reply(
        200,
        [
            ("Content-Type", "text/plain"),
            ("Connection", "x-foo"),
            ("X-Foo", "secret"),
            ("Keep-Alive", "timeout=5, max=100"),
            ("Trailer", "X-Checksum"),
            ("Upgrade", "h2c"),
            ("Set-Cookie", "SID=abc123; HttpOnly; path=/; SameSite=Strict"),
            ("Set-Cookie", "other=1; path=/"),
            ("X-Normal", "kept"),
        ],
        body,
        framing="chunked",
        chunk_size=333,
    )
    with connect(d) as c:
        c.send(req("GET", "/resp", host=d.authority))
        r = c.read_response()
        assert r.status == 200, r
        assert r.body == body, r
        for name in ("x-foo", "keep-alive", "trailer", "upgrade"):
            assert not values(r, name), (name, r)
        assert set(connection_tokens(r)) <= {"keep-alive"}, r
        assert values(r, "set-cookie") == ["SID=abc123; HttpOnly; path=/; SameSite=Strict",
                                           "other=1; path=/"], r
        assert values(r, "x-normal") == ["kept"], r
        te = values(r, "transfer-encoding")
        cl = values(r, "content-length")
        assert (te == ["chunked"] and not cl) or (cl == [str(len(body))] and not te), r
        # The connection stays in sync.
        c.send(req("GET", "/next", host=d.authority))
        r2 = c.read_response()
        assert r2.status == 200 and r2.body == body, r2


def test_response_status_and_reason_pass_through(proxy, upstream):
    d = proxy()
    upstream.queue(Reply(403, [("Content-Type", "text/plain")], b"Forbidden", reason="Forbidden"),
                   Reply(404, [], b"nope", reason="Not Found"),
                   Reply(500, [], b"oops", reason="Internal Server Error"))
    for status, body in ((403, b"Forbidden"), (404, b"nope"), (500, b"oops")):
        r = exchange(d, "GET", f"/{status}")
        assert (r.status, r.body) == (status, body), r
