"""Address families: the default listener is dual-stack, and the allowlist matches
an IPv4 client seen on it (as ::ffff:a.b.c.d) as IPv4."""

import os
import shutil
import subprocess

import pytest

from conftest import base_env, has_ipv6_loopback, http_request

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


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root for a network namespace")
def test_default_listen_works_without_ipv6(qgs_bin, tmp_path):
    # Containers often run with IPv6 disabled; the default (dual-stack) must still start and serve.
    port = 19000 + os.getpid() % 1000
    script = f"""
set -u
ip link set lo up
for k in all default lo; do sysctl -qw net.ipv6.conf.$k.disable_ipv6=1; done
PORT_FILE={tmp_path}/pf QBIT_ADDR=http://127.0.0.1:1 LISTEN_PORT={port} ALLOWED_IPS=127.0.0.1 "{qgs_bin}" 2>{tmp_path}/log &
pid=$!
ok=1
for i in $(seq 200); do
  if curl -sf -o /dev/null http://127.0.0.1:{port}/healthz; then ok=0; break; fi
  kill -0 $pid 2>/dev/null || break
  sleep 0.025
done
kill -TERM $pid; wait $pid; rc=$?
echo "healthz=$ok exit=$rc"
"""
    out = subprocess.run(["unshare", "--net", "sh", "-c", script], env=base_env(), capture_output=True,
                         text=True, timeout=30)
    log = (tmp_path / "log").read_text()
    assert "healthz=0 exit=0" in out.stdout, (out.stdout, out.stderr, log)


@pytest.mark.skipif(not shutil.which("cc"), reason="needs a C compiler for the LD_PRELOAD shim")
def test_default_listen_falls_back_to_ipv4_without_ipv6_support(daemon, tmp_path):
    # On a kernel without IPv6 at all, socket(AF_INET6) fails: the default must fall back to IPv4.
    shim = tmp_path / "no_ipv6.so"
    src = os.path.join(os.path.dirname(__file__), "no_ipv6_shim.c")
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(shim), src, "-ldl"], check=True)
    asan = os.environ.get("ASAN_OPTIONS", "")
    d = daemon(LISTEN_ADDR=None, LD_PRELOAD=shim, ASAN_OPTIONS=(asan + ":" if asan else "") + "verify_asan_link_order=0")
    r = http_request("127.0.0.1", d.port, "GET", "/healthz")
    assert r.status == 200, r
    assert "listening on 0.0.0.0" in d.log() and "IPv6 is not available" in d.log(), d.log()
