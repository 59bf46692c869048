"""Address families: the default listener is dual-stack, and the allowlist matches
an IPv4 client seen on it (as ::ffff:a.b.c.d) as IPv4."""

import pytest

from conftest import has_ipv6_loopback

needs_ipv6 = pytest.mark.skipif(not has_ipv6_loopback(), reason="no IPv6 loopback on this machine")


def test_default_listen_reachable_on_ipv4_and_ipv6(daemon):
    d = daemon(LISTEN_ADDR=None)
    assert d.request("GET", "/healthz", host="127.0.0.1").status == 200
    if not has_ipv6_loopback():
        pytest.skip("no IPv6 loopback: only the IPv4 half was checked")
    assert d.request("GET", "/healthz", host="::1").status == 200


@needs_ipv6
def test_ipv4_allowlist_on_dual_stack(daemon):
    d = daemon(LISTEN_ADDR=None, ALLOWED_IPS="127.0.0.1")
    v4 = d.request("GET", "/x", host="127.0.0.1")
    v6 = d.request("GET", "/x", host="::1")
    assert v4.status == 502, v4
    assert v6.status == 403, v6


@needs_ipv6
def test_ipv6_allowlist_on_dual_stack(daemon):
    d = daemon(LISTEN_ADDR=None, ALLOWED_IPS="::1")
    v4 = d.request("GET", "/x", host="127.0.0.1")
    v6 = d.request("GET", "/x", host="::1")
    assert v4.status == 403, v4
    assert v6.status == 502, v6


@needs_ipv6
def test_ipv6_any_does_not_admit_mapped_ipv4(daemon):
    d = daemon(LISTEN_ADDR=None, ALLOWED_IPS="::/0")
    assert d.request("GET", "/x", host="127.0.0.1").status == 403
    assert d.request("GET", "/x", host="::1").status == 502


@needs_ipv6
def test_listen_on_ipv6_loopback_only(daemon):
    d = daemon(LISTEN_ADDR="::1", ALLOWED_IPS="::1")
    assert d.request("GET", "/x", host="::1").status == 502
    assert d.request("GET", "/healthz", host="::1").status == 200
