"""QBIT_ADDR forms: a host name resolved off the loop (trying each address until one answers),
an IPv6 literal, and a client on IPv6 (its address is what X-Forwarded-For carries)."""

import socket

import pytest

from conftest import has_ipv6_loopback, localhost_families, skip_unless_localhost_is_ipv4
from proxy_rig import (  # noqa: F401  (fixtures are used by name)
    exchange,
    new_upstream,
    proxy,
    stop_upstream,
    upstream,
)


@pytest.fixture
def upstream6():
    if not has_ipv6_loopback():
        pytest.skip("no IPv6 loopback here")
    up = new_upstream("::1")
    yield up
    stop_upstream(up)


def test_qbit_addr_localhost_name(proxy, upstream):
    skip_unless_localhost_is_ipv4()
    d = proxy(qbit_addr=f"http://localhost:{upstream.port}")
    r = exchange(d, "GET", "/api/v2/app/version")
    assert r.status == 200, r
    (got,) = upstream.wait_requests(1)
    assert got.values("host") == [f"localhost:{upstream.port}"], got


def test_qbit_addr_localhost_falls_back_to_ipv6(proxy, upstream6):
    # The Go sidecar's default QBIT_ADDR is localhost; qBittorrent may listen on ::1 only.
    if localhost_families() != {socket.AF_INET, socket.AF_INET6}:
        pytest.skip("localhost does not resolve to both 127.0.0.1 and ::1 here")
    d = proxy(qbit_addr=f"http://localhost:{upstream6.port}")
    for i in range(3):
        r = exchange(d, "GET", f"/v/{i}")
        assert r.status == 200, r
    assert len(upstream6.requests()) == 3


def test_qbit_addr_ipv6_literal(proxy, upstream6):
    d = proxy(qbit_addr=f"http://[::1]:{upstream6.port}")
    r = exchange(d, "GET", "/api/v2/app/version")
    assert r.status == 200, r
    (got,) = upstream6.wait_requests(1)
    assert got.values("host") == [f"[::1]:{upstream6.port}"], got


def test_ipv6_client_address_in_x_forwarded_for(proxy, upstream):
    if not has_ipv6_loopback():
        pytest.skip("no IPv6 loopback here")
    d = proxy(LISTEN_ADDR="::1")
    r = exchange(d, "GET", "/v6", [("X-Forwarded-For", "1.2.3.4")], host=f"[::1]:{d.port}")
    assert r.status == 200, r
    (got,) = upstream.wait_requests(1)
    assert got.values("x-forwarded-for") == ["::1"], got
