"""Gluetun's HTTP control server as the port source (GLUETUN_CONTROL_URL), against a real
qbittorrent-nox and a fake Gluetun that answers as Gluetun's sources do (fake_gluetun.py, checked
by test_fake_gluetun.py).

What this proves, as a user sees it (qBittorrent's listen_port, /sync's answers, the sidecar's log,
and what Gluetun was asked):
- the port of every Gluetun shape reaches qBittorrent: 3.40's /v1/openvpn/portforwarded (found by
  falling back from /v1/portforward, then asked directly), 3.41.0's /v1/portforward, the
  "port and ports" body of 3.41.2 and master, and the first of several ports;
- the credentials are sent as Gluetun checks them (X-API-Key, HTTP basic); a 401 names the route
  and config.toml and applies nothing; the 301 of 3.41's old route and any 3xx are never followed;
- forwarding down (port 0, "ports":null or []) keeps qBittorrent's port, and its return re-binds;
- failures (refused, timeout, garbage) keep the last port, are logged once, retried with growing gaps;
- the port file leads: Gluetun is asked only while the file is missing;
- /sync asks Gluetun itself and answers with what Gluetun says now, even while an older question
  is still on its way back;
- /sync says which source is in use, and answers a loopback client that ALLOWED_IPS leaves out,
  which is how Gluetun's VPN_PORT_FORWARDING_UP_COMMAND hook reaches it (busybox wget).

The port file is absent in every test unless the test is about the file (PORT_FILE in a directory
of its own, the file never written).
"""

import base64
import re
import ssl
import subprocess
import time

import pytest
import requests

from conftest import port_file, write_in_place
from fake_gluetun import OPENVPN_PORTFORWARDED, FakeGluetun, apikey_role, basic_role
from qbt_rig import APPLY_TIMEOUT, free_port, sync_call, wait_for, wait_port
from tls_rig import Pki

pytest_plugins = ("qbt_rig",)  # the qbt and sidecar fixtures

RETRY_TIMEOUT = 20.0  # a failing control server is retried after 1, 2, 4, 8 s...
LISTEN_RE = re.compile(r'Trying to listen on the following list of IP addresses: "127\.0\.0\.1:(\d+)"')


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def gluetun():
    """Factory: gluetun(**FakeGluetun options) -> a fake control server, stopped at the end."""
    made = []

    def make(**kwargs):
        made.append(FakeGluetun(**kwargs))
        return made[-1]

    yield make
    for g in made:
        g.stop()


def start(qbt, sidecar, tmp_path, g, **env):
    """A qBittorrent (no login from loopback) and a sidecar asking g, its port file missing."""
    q = qbt(local_host_auth=False)
    sc = sidecar(q, PORT_FILE=port_file(tmp_path), GLUETUN_CONTROL_URL=g.url, **env)
    return q, sc


def log_line(sc, *needles, timeout=APPLY_TIMEOUT):
    """Waits for one line of the sidecar's log holding every needle; returns it."""
    def found():
        return next((ln for ln in sc.log().splitlines() if all(n in ln for n in needles)), None)
    return wait_for(found, timeout, message=lambda: f"no line with {needles} in the sidecar's log:\n{sc.log()}")


def lines_with(sc, *needles):
    return [ln for ln in sc.log().splitlines() if all(n in ln for n in needles)]


def listen_ports_logged(q, since):
    return [int(p) for p in LISTEN_RE.findall(q.log_text()[since:])]


def settle(sc, port):
    """A /sync answered in_sync on port: the reconcile that applied it is over, so what the test
    changes next is not raced by it (see test_sync_during_an_ask_in_flight_answers_the_newer_port)."""
    status, body, _ = sync_call(sc)
    assert status == 200 and body["outcome"] == "in_sync" and body["desired_port"] == port, body
    return time.monotonic()


def assert_applied_and_logged(q, sc, port):
    wait_port(q, sc, port)
    log_line(sc, f"forwarded port is {port}")
    log_line(sc, f"qBittorrent now listens on port {port}")


# --------------------------------------------------------------------------- each Gluetun


def test_340_old_route_found_by_fallback_then_asked_directly(qbt, sidecar, tmp_path, gluetun):
    """3.40 has no /v1/portforward (401 with the default roles): the sidecar falls back to
    /v1/openvpn/portforwarded, and its later polls go there straight."""
    p1, p2 = free_port(), free_port()
    g = gluetun(version="3.40", ports=[p1])
    q, sc = start(qbt, sidecar, tmp_path, g, GLUETUN_POLL_INTERVAL=1)
    assert_applied_and_logged(q, sc, p1)
    first = g.recorded()[:2]
    assert [(r.path, r.status) for r in first] == [("/v1/portforward", 401), ("/v1/openvpn/portforwarded", 200)]
    g.ports = [p2]
    wait_port(q, sc, p2, timeout=APPLY_TIMEOUT + 1)
    g.wait_requests(4)
    assert g.recorded("/v1/portforward") == first[:1], f"the new route asked again: {g.paths()}"
    status, body, _ = sync_call(sc)
    assert status == 200 and body["desired_port"] == p2 and body["source"] == "control_server", body


@pytest.mark.parametrize("version", ["3.41.0", "3.41.2"])
def test_341_new_route(qbt, sidecar, tmp_path, gluetun, version):
    port = free_port()
    g = gluetun(version=version, ports=[port])
    q, sc = start(qbt, sidecar, tmp_path, g)
    assert_applied_and_logged(q, sc, port)
    status, body, _ = sync_call(sc)
    assert status == 200, body
    assert (body["desired_port"], body["qbittorrent_port"], body["outcome"]) == (port, port, "in_sync"), body
    assert (body["source"], body["control_server"]) == ("control_server", "port"), body
    assert set(g.paths()) == {"/v1/portforward"}, g.paths()


@pytest.mark.parametrize("version", ["3.40", "3.41.0", "3.41.2"])
def test_several_ports_the_first_is_applied(qbt, sidecar, tmp_path, gluetun, version):
    """3.40/3.41.0 say {"ports":[a,b]} (no "port"), 3.41.2 {"port":a,"ports":[a,b]}."""
    p1, p2 = free_port(), free_port()
    g = gluetun(version=version, ports=[p1, p2])
    q, sc = start(qbt, sidecar, tmp_path, g)
    assert_applied_and_logged(q, sc, p1)


def test_master_with_an_api_key_role(qbt, sidecar, tmp_path, gluetun):
    """Gluetun's master has no default role at all: a role in config.toml is the only way in."""
    port = free_port()
    g = gluetun(version="master", ports=[port], roles=[apikey_role("k-master")])
    q, sc = start(qbt, sidecar, tmp_path, g, GLUETUN_API_KEY="k-master")
    assert_applied_and_logged(q, sc, port)


# --------------------------------------------------------------------------- credentials


@pytest.mark.parametrize("from_file", [False, True], ids=["env", "file"])
def test_api_key_sent_as_header(qbt, sidecar, tmp_path, gluetun, from_file):
    port = free_port()
    g = gluetun(version="3.41.2", ports=[port], roles=[apikey_role("s3cret-key")])
    if from_file:
        key_file = tmp_path / "gluetun-key"
        key_file.write_text("s3cret-key\n")
        env = {"GLUETUN_API_KEY_FILE": key_file}
    else:
        env = {"GLUETUN_API_KEY": "s3cret-key"}
    q, sc = start(qbt, sidecar, tmp_path, g, **env)
    wait_port(q, sc, port)
    for r in g.recorded():
        assert r.headers.get("x-api-key") == "s3cret-key" and "api_key" not in r.query, r
    assert "s3cret-key" not in sc.log(), "the API key is in the log"


@pytest.mark.parametrize("from_file", [False, True], ids=["env", "file"])
def test_basic_auth(qbt, sidecar, tmp_path, gluetun, from_file):
    port = free_port()
    g = gluetun(version="3.41.2", ports=[port], roles=[basic_role("qgs", "pa:ss word")])
    if from_file:
        pass_file = tmp_path / "gluetun-pass"
        pass_file.write_text("pa:ss word\n")
        env = {"GLUETUN_USER": "qgs", "GLUETUN_PASS_FILE": pass_file}
    else:
        env = {"GLUETUN_USER": "qgs", "GLUETUN_PASS": "pa:ss word"}
    q, sc = start(qbt, sidecar, tmp_path, g, **env)
    wait_port(q, sc, port)
    expected = "Basic " + base64.b64encode(b"qgs:pa:ss word").decode()
    assert all(r.headers.get("authorization") == expected for r in g.recorded()), g.recorded()


def test_no_role_for_the_route_is_a_401_naming_config_toml(qbt, sidecar, tmp_path, gluetun):
    """A config.toml whose roles list neither port route: both routes 401, nothing applied."""
    g = gluetun(version="3.41.2", ports=[free_port()], roles=[apikey_role("k", ["GET /v1/vpn/status"])])
    q, sc = start(qbt, sidecar, tmp_path, g)
    original = q.listen_port()
    line = log_line(sc, "HTTP 401", "config.toml", "GET /v1/portforward")
    status, body, _ = sync_call(sc)
    assert status == 502, body
    assert body["control_server"] == "failed" and body["source"] == "control_server", body
    assert "HTTP 401" in body["message"] and "config.toml" in body["message"], body
    assert q.listen_port() == original
    assert lines_with(sc, "HTTP 401") == [line], "the same problem logged again"
    assert {(r.path, r.status) for r in g.recorded()} == {("/v1/portforward", 401),
                                                         ("/v1/openvpn/portforwarded", 401)}


def test_wrong_api_key(qbt, sidecar, tmp_path, gluetun):
    g = gluetun(version="3.41.2", ports=[free_port()], roles=[apikey_role("right-key")])
    q, sc = start(qbt, sidecar, tmp_path, g, GLUETUN_API_KEY="wrong-key")
    original = q.listen_port()
    log_line(sc, "HTTP 401", "config.toml", "GET /v1/portforward")
    status, body, _ = sync_call(sc)
    assert status == 502 and "HTTP 401" in body["message"], body
    assert q.listen_port() == original
    assert all(r.headers.get("x-api-key") == "wrong-key" for r in g.recorded())


def test_341_redirect_from_the_old_route_is_not_followed(qbt, sidecar, tmp_path, gluetun):
    """A 3.41 config.toml that still lists only the old route: /v1/portforward is 401, the fallback
    /v1/openvpn/portforwarded answers 301 to /v1/portforward. The sidecar reports the new route's
    401 and does not follow (a follow would be a /v1/portforward right after each old-route one)."""
    g = gluetun(version="3.41.2", ports=[free_port()], roles=[apikey_role("k", [OPENVPN_PORTFORWARDED])])
    q, sc = start(qbt, sidecar, tmp_path, g, GLUETUN_API_KEY="k", GLUETUN_POLL_INTERVAL=3600)
    original = q.listen_port()
    log_line(sc, "HTTP 401", "config.toml", "GET /v1/portforward")
    g.wait_requests(2, timeout=RETRY_TIMEOUT, path="/v1/openvpn/portforwarded")  # two rounds (the retry)
    recs = g.recorded()
    for i, r in enumerate(recs):
        if r.path == "/v1/openvpn/portforwarded":
            assert r.status == 301
            after = recs[i + 1:i + 2]
            assert not after or after[0].t - r.t > 0.5, f"followed the redirect: {[x.path for x in recs]}"
    assert q.listen_port() == original
    status, body, _ = sync_call(sc)
    assert status == 502 and "HTTP 401" in body["message"], body


def test_a_3xx_on_the_new_route_is_an_error_naming_its_location(qbt, sidecar, tmp_path, gluetun):
    """Not Gluetun (e.g. a proxy's login page): the redirect is reported, not followed."""
    g = gluetun(version="3.41.2", ports=[free_port()])
    g.reply = (302, [("Location", "/qgs-login-page")], b"")
    q, sc = start(qbt, sidecar, tmp_path, g)
    original = q.listen_port()
    log_line(sc, "Gluetun's control server", "/qgs-login-page")
    status, body, _ = sync_call(sc)
    assert status == 502 and "/qgs-login-page" in body["message"], body
    assert q.listen_port() == original
    assert "/qgs-login-page" not in g.paths()


# --------------------------------------------------------------------------- forwarding down and back


@pytest.mark.parametrize("version,down", [("3.41.0", []), ("3.41.2", None), ("3.41.2", [])],
                         ids=["port0", "ports-null", "ports-empty"])
def test_forwarding_down_keeps_the_port_and_its_return_rebinds(qbt, sidecar, tmp_path, gluetun, version, down):
    port = free_port()
    g = gluetun(version=version, ports=[port])
    q, sc = start(qbt, sidecar, tmp_path, g, GLUETUN_POLL_INTERVAL=1)
    wait_port(q, sc, port)
    settle(sc, port)
    since = len(q.log_barrier())
    g.ports = down
    status, body, _ = sync_call(sc)
    assert status == 422, body
    assert (body["outcome"], body["control_server"]) == ("no_port", "down"), body
    assert q.listen_port() == port
    time.sleep(0.6)  # the VPN is down this long: part of the scenario
    g.ports = [port]  # the next poll (1 s) sees it back

    def rebound():
        ports = listen_ports_logged(q, since)
        return len(ports) >= 2 and ports[-1] == port and any(p != port for p in ports[:-1])

    wait_for(rebound, APPLY_TIMEOUT + 1, interval=0.05,
             message=lambda: f"no re-bind in qBittorrent's log: {listen_ports_logged(q, since)}\n{sc.log()}")
    assert "re-binding" in sc.log()
    wait_port(q, sc, port)


def test_forwarding_down_at_start_applies_nothing(qbt, sidecar, tmp_path, gluetun):
    g = gluetun(version="3.41.2", ports=None)
    q, sc = start(qbt, sidecar, tmp_path, g)
    original = q.listen_port()
    status, body, _ = sync_call(sc)
    assert status == 422 and body["control_server"] == "down" and body["desired_port"] in (None, 0), body
    assert q.listen_port() == original
    port = free_port()
    g.ports = [port]
    status, body, _ = sync_call(sc)  # /sync asks Gluetun and answers after the apply
    assert status == 200 and body["desired_port"] == port, body
    assert q.listen_port() == port


def test_sync_during_an_ask_in_flight_answers_the_newer_port(qbt, sidecar, tmp_path, gluetun):
    """Gluetun's hook fires while the sidecar's own question is still on its way back (here the
    start-up one, slowed to 1.5 s, carrying the old port): /sync must ask again and answer with
    the port Gluetun has now, not with the answer to the older question."""
    p1, p2 = free_port(), free_port()
    g = gluetun(version="3.41.2", ports=[p1])
    g.delay = 1.5
    q, sc = start(qbt, sidecar, tmp_path, g, GLUETUN_POLL_INTERVAL=3600)
    wait_for(lambda: g.recorded(), APPLY_TIMEOUT, message="the sidecar did not ask Gluetun at start")
    g.ports, g.delay = [p2], 0.0  # the in-flight answer still says p1
    status, body, _ = sync_call(sc)
    assert status == 200 and body["desired_port"] == p2, (body, g.paths())
    assert q.listen_port() == p2


# --------------------------------------------------------------------------- failures


def test_unreachable_then_up(qbt, sidecar, tmp_path, gluetun):
    port = free_port()
    g = gluetun(version="3.41.2", ports=[port])
    g.down()
    q, sc = start(qbt, sidecar, tmp_path, g)
    original = q.listen_port()
    log_line(sc, "Gluetun's control server", "connection refused")
    status, body, _ = sync_call(sc)
    assert status == 502, body
    assert body["control_server"] == "failed" and "Gluetun's control server" in body["message"], body
    assert q.listen_port() == original
    g.up()
    wait_port(q, sc, port, timeout=RETRY_TIMEOUT)
    log_line(sc, f"qBittorrent now listens on port {port}")


def test_failures_retried_with_growing_gaps_and_logged_once(qbt, sidecar, tmp_path, gluetun):
    g = gluetun(version="3.41.2", ports=[free_port()])
    g.garbage = "<html>not Gluetun</html>"
    q, sc = start(qbt, sidecar, tmp_path, g)
    g.wait_requests(2, timeout=RETRY_TIMEOUT)
    logged = len(lines_with(sc, "Gluetun's control server"))
    assert logged >= 1, sc.log()
    recs = g.wait_requests(4, timeout=RETRY_TIMEOUT)
    gaps = [b.t - a.t for a, b in zip(recs, recs[1:4])]
    assert gaps[0] >= 0.5, f"retried at once: gaps {gaps}"
    assert gaps[1] > 1.2 * gaps[0] and gaps[2] > 1.2 * gaps[1], f"gaps do not grow: {gaps}"
    assert len(lines_with(sc, "Gluetun's control server")) == logged, f"logged again:\n{sc.log()}"


def test_slow_control_server_times_out_and_the_last_port_stays(qbt, sidecar, tmp_path, gluetun):
    p1, p2 = free_port(), free_port()
    g = gluetun(version="3.41.2", ports=[p1])
    q, sc = start(qbt, sidecar, tmp_path, g, UPSTREAM_TIMEOUT=2)
    wait_port(q, sc, p1)
    settle(sc, p1)
    g.ports, g.delay = [p2], 3.0
    status, body, took = sync_call(sc)
    assert status == 502, body
    assert body["control_server"] == "failed" and "Gluetun's control server" in body["message"], body
    assert re.search(r"time(d)? ?out", body["message"], re.I), body
    assert took < 5.0, f"/sync took {took} s"
    assert q.listen_port() == p1
    g.delay = 0.0
    wait_port(q, sc, p2, timeout=RETRY_TIMEOUT)


@pytest.mark.parametrize("garbage", ["<html>oops</html>", '{"port":"abc"}', '{"port":70000}', '{"ports":[0]}',
                                     '{"port":-1}', '{"ports":"40001"}'])
def test_garbage_keeps_the_last_port(qbt, sidecar, tmp_path, gluetun, garbage):
    port = free_port()
    g = gluetun(version="3.41.2", ports=[port])
    q, sc = start(qbt, sidecar, tmp_path, g)
    wait_port(q, sc, port)
    settle(sc, port)
    before = len(lines_with(sc, "Gluetun's control server"))
    g.garbage = garbage
    status, body, _ = sync_call(sc)
    assert status == 502, body
    assert body["control_server"] == "failed" and "Gluetun's control server" in body["message"], body
    assert q.listen_port() == port
    wait_for(lambda: len(lines_with(sc, "Gluetun's control server")) > before, APPLY_TIMEOUT,
             message=lambda: f"the garbage was not logged:\n{sc.log()}")
    g.garbage = None
    g.ports = [free_port()]
    status, body, _ = sync_call(sc)
    assert status == 200 and body["desired_port"] == g.ports[0], body


def test_an_answer_over_64_kib_is_refused_by_name_and_the_last_port_stays(qbt, sidecar, tmp_path, gluetun):
    """Gluetun's answer is a few bytes; one over 64 KiB (valid JSON, padded) is not read to the end."""
    port = free_port()
    g = gluetun(version="3.41.2", ports=[port])
    q, sc = start(qbt, sidecar, tmp_path, g)
    wait_port(q, sc, port)
    settle(sc, port)
    g.garbage = '{"port":' + " " * 70000 + str(free_port()) + "}"
    status, body, _ = sync_call(sc)
    assert status == 502, body
    assert "sent more than 64 KiB for GET /v1/portforward" in body["message"], body
    assert q.listen_port() == port


# --------------------------------------------------------------------------- the file leads


def test_the_file_leads(qbt, sidecar, tmp_path, gluetun):
    p_file, p_gluetun, p_file2 = free_port(), free_port(), free_port()
    g = gluetun(version="3.41.2", ports=[p_gluetun])
    q = qbt(local_host_auth=False)
    path = port_file(tmp_path, p_file)
    sc = sidecar(q, PORT_FILE=path, GLUETUN_CONTROL_URL=g.url)
    wait_port(q, sc, p_file)
    status, body, _ = sync_call(sc)
    assert status == 200 and body["source"] == "file" and body["desired_port"] == p_file, body
    assert g.recorded() == [], f"asked Gluetun while the file exists: {g.paths()}"

    path.unlink()
    status, body, _ = sync_call(sc)
    assert status == 200 and body["source"] == "control_server" and body["desired_port"] == p_gluetun, body
    wait_port(q, sc, p_gluetun)

    write_in_place(path, str(p_file2))
    wait_port(q, sc, p_file2)
    asked = len(g.recorded())
    status, body, _ = sync_call(sc)
    assert status == 200 and body["source"] == "file" and body["desired_port"] == p_file2, body
    assert len(g.recorded()) == asked, "asked Gluetun again though the file is back"


def test_sync_source_without_a_control_server(qbt, sidecar, tmp_path):
    q = qbt(local_host_auth=False)
    port = free_port()
    sc = sidecar(q, PORT_FILE=port_file(tmp_path, port))
    wait_port(q, sc, port)
    status, body, _ = sync_call(sc)
    assert status == 200 and body["source"] == "file", body
    assert body.get("control_server") is None, body


# --------------------------------------------------------------------------- Gluetun's hook


def test_up_command_hook_applies_at_once(qbt, sidecar, tmp_path, gluetun):
    """VPN_PORT_FORWARDING_UP_COMMAND=busybox wget -qO- http://127.0.0.1:PORT/sync: Gluetun runs it in
    its network namespace, so it comes from loopback, which ALLOWED_IPS need not list."""
    p1, p2 = free_port(), free_port()
    g = gluetun(version="3.41.2", ports=[p1])
    q, sc = start(qbt, sidecar, tmp_path, g, GLUETUN_POLL_INTERVAL=3600, ALLOWED_IPS="192.0.2.0/24")
    wait_port(q, sc, p1)
    settled = settle(sc, p1)  # loopback is answered /sync though ALLOWED_IPS leaves it out
    assert len(g.wait_requests(2)) == 2  # the start-up question and that /sync's
    # Loopback gets /sync only: the WebUI through the proxy is still refused to it.
    assert requests.get(sc.base_url + "/api/v2/app/version", timeout=5).status_code == 403

    g.ports = [p2]
    assert q.listen_port() == p1 and len(g.recorded()) == 2  # no poll for an hour: only the hook helps
    # /sync takes one call a second: the hook comes later than that after the test's own /sync.
    wait_for(lambda: time.monotonic() - settled > 1.2, 2.0)
    r = subprocess.run(["/usr/bin/busybox", "wget", "-qO-", f"http://127.0.0.1:{sc.port}/sync"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr, sc.log())
    assert f'"desired_port":{p2}' in r.stdout.replace(" ", ""), r.stdout
    assert q.listen_port() == p2  # /sync answers after the apply
    assert len(g.recorded()) == 3


# --------------------------------------------------------------------------- configuration


@pytest.mark.parametrize("env,names", [
    ({"GLUETUN_API_KEY": "k", "GLUETUN_USER": "u", "GLUETUN_PASS": "p"}, ["GLUETUN_API_KEY", "GLUETUN_USER"]),
    ({"GLUETUN_POLL_INTERVAL": "0"}, ["GLUETUN_POLL_INTERVAL"]),
    ({"GLUETUN_POLL_INTERVAL": "86401"}, ["GLUETUN_POLL_INTERVAL"]),
], ids=["key-and-user", "poll-0", "poll-86401"])
def test_config_errors(run_cli, env, names):
    r = run_cli(LISTEN_ADDR="127.0.0.1", LISTEN_PORT=str(free_port()),
                GLUETUN_CONTROL_URL=f"http://127.0.0.1:{free_port()}", **env)
    assert r.returncode == 2, (r.stdout, r.stderr)
    for name in names:
        assert name in r.stderr, r.stderr


# --------------------------------------------------------------------------- https


def tls_gluetun(gluetun, pki, port):
    """A Gluetun 3.41.2 whose control server speaks TLS with a certificate pki issued for 127.0.0.1."""
    cert = pki.issue("gluetun", sans=["IP:127.0.0.1"])
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert.cert, cert.key)
    return gluetun(version="3.41.2", ports=[port], tls=ctx)


def test_https_control_server_trusted_through_gluetun_ca_file(qbt, sidecar, tmp_path, gluetun):
    pki = Pki(tmp_path / "pki")
    p = free_port()
    g = tls_gluetun(gluetun, pki, p)
    q, sc = start(qbt, sidecar, tmp_path, g, GLUETUN_CA_FILE=pki.cert)
    assert_applied_and_logged(q, sc, p)
    assert not g.tls_errors, g.tls_errors


def test_https_control_server_with_an_unknown_issuer_is_refused_naming_gluetun_ca_file(
        qbt, sidecar, tmp_path, gluetun):
    p = free_port()
    g = tls_gluetun(gluetun, Pki(tmp_path / "pki"), p)
    other = Pki(tmp_path / "other-pki")
    q, sc = start(qbt, sidecar, tmp_path, g, GLUETUN_CA_FILE=other.cert)
    line = log_line(sc, "Gluetun's control server", "GLUETUN_CA_FILE")
    assert "issuer is unknown" in line, line
    status, body, _ = sync_call(sc)
    assert status == 502 and body["control_server"] == "failed" and body["desired_port"] is None, body
    assert q.listen_port() != p
    assert not g.requests, "a request went to a server that was not trusted"
