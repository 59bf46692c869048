"""QBIT_TRUST_PROXY (issue 7): the localhost-bypass and ban traps, against a real qbittorrent-nox.

Every proxied request reaches qBittorrent from the sidecar, i.e. from 127.0.0.1. By default the
sidecar makes qBittorrent trust it as a reverse proxy (web_ui_reverse_proxy_enabled on, its own
address appended to web_ui_reverse_proxies_list), so qBittorrent takes each client's address
from X-Forwarded-For for the localhost bypass and for bans. With QBIT_TRUST_PROXY=false it leaves
qBittorrent alone and, when the bypass is on while ALLOWED_IPS admits non-loopback clients,
warns ("SECURITY: ...") at start-up and on every re-check, sets
qbit_gluetun_sync_localhost_bypass_exposed to 1 and adds a warning line to /readyz.

The browser-side client that must look non-local to qBittorrent runs in a network namespace of
the test's own (netns_rig: veth pair, 10.213.X.0/30); the sidecar listens on the host side of
the pair. Those tests need root and `ip netns` and are skipped otherwise. The others need neither.

qBittorrent 4.5.2's log lines for logins (its strings, checked in the binary and in the log):
    (W) ... - WebAPI login failure. Reason: invalid credentials, attempt count: 1, IP: 10.213.X.2, username: admin
    (W) ... - WebAPI login failure. Reason: IP has been banned, IP: 10.213.X.2, username: admin
    (I) ... - WebAPI login success. IP: 127.0.0.1
"""

import re

import pytest
import requests
from requests.adapters import HTTPAdapter

from netns_rig import netns  # noqa: F401  (pytest fixture)
from prom_exposition import scrape
from qbt_rig import qbt, sidecar, wait_for  # noqa: F401  (pytest fixtures)

TIMEOUT = 10.0
TRUST_LOG = "QBIT_TRUST_PROXY:"
SECURITY_LOG = "SECURITY:"
EXPOSED = "qbit_gluetun_sync_localhost_bypass_exposed"
# ALLOWED_IPS admitting a non-loopback network (only a setting here: nobody connects from it).
LAN_ALLOWED = "127.0.0.1,10.213.0.0/30"


class SourceAdapter(HTTPAdapter):
    """Makes requests connect from a chosen local address (here: 127.0.0.1 to the veth address)."""

    def __init__(self, source, **kwargs):
        self.source = source
        super().__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.source, 0)
        super().init_poolmanager(*args, **kwargs)


def lines_with(text, needle):
    return [line for line in text.splitlines() if needle in line]


def proxy_prefs(q):
    p = q.preferences()
    return p["web_ui_reverse_proxy_enabled"], p["web_ui_reverse_proxies_list"]


def wait_trusted(q, want_list, log):
    """Waits until qBittorrent's reverse-proxy support is on with exactly want_list."""
    return wait_for(lambda: proxy_prefs(q) == (True, want_list), TIMEOUT, interval=0.05,
                    message=lambda: f"qBittorrent's reverse-proxy prefs are {proxy_prefs(q)}, expected "
                                    f"(True, {want_list!r}); sidecar log:\n{log()}")


def wait_runs(scrape_fn, n, log):
    """Waits until n more reconcile runs have succeeded (each one reads qBittorrent's prefs);
    returns the last exposition."""
    start = scrape_fn().value("qbit_gluetun_sync_sync_successes_total")
    return wait_for(lambda: (lambda e: e if e.value("qbit_gluetun_sync_sync_successes_total") >= start + n
                             else None)(scrape_fn()), TIMEOUT + 2 * n, interval=0.1,
                    message=lambda: f"fewer than {n} more successful runs; sidecar log:\n{log()}")


def sidecar_scrape(sc):
    return lambda: scrape("127.0.0.1", sc.port)


# --------------------------------------------------------------------------- default: trust


def test_default_turns_on_trust_and_logs_it_once(qbt, sidecar):
    q = qbt(local_host_auth=False)
    assert proxy_prefs(q) == (False, "")
    assert q.preferences()["bypass_local_auth"] is True
    sc = sidecar(q, QBIT_USER=q.username, QBIT_PASS=q.password, RESYNC_INTERVAL=1, ALLOWED_IPS=LAN_ALLOWED)
    wait_trusted(q, "127.0.0.1", sc.log)
    e = wait_runs(sidecar_scrape(sc), 3, sc.log)  # three re-checks after the change
    changes = lines_with(sc.log(), TRUST_LOG)
    assert len(changes) == 1, f"the change is logged once:\n{sc.log()}"
    assert "127.0.0.1" in changes[0] and " info " in changes[0], changes[0]
    assert not lines_with(sc.log(), SECURITY_LOG), sc.log()
    assert e.value(EXPOSED) == 0
    r = requests.get(sc.base_url + "/readyz", timeout=TIMEOUT)
    assert r.status_code == 200 and "warning" not in r.text.lower(), r.text


@pytest.mark.parametrize("enabled_before", [False, True], ids=["support-off", "support-on"])
def test_existing_trusted_list_is_kept(qbt, sidecar, enabled_before):
    q = qbt(local_host_auth=False, extra_conf={
        ("Preferences", "WebUI\\ReverseProxySupportEnabled"): "true" if enabled_before else "false",
        ("Preferences", "WebUI\\TrustedReverseProxiesList"): "192.0.2.7",
    })
    assert proxy_prefs(q) == (enabled_before, "192.0.2.7")
    sc = sidecar(q, QBIT_USER=q.username, QBIT_PASS=q.password, RESYNC_INTERVAL=1)
    wait_trusted(q, "192.0.2.7;127.0.0.1", sc.log)
    wait_runs(sidecar_scrape(sc), 2, sc.log)
    assert proxy_prefs(q) == (True, "192.0.2.7;127.0.0.1")
    changes = lines_with(sc.log(), TRUST_LOG)
    assert len(changes) == 1 and "192.0.2.7;127.0.0.1" in changes[0], sc.log()


def test_already_trusted_by_a_cidr_nothing_changes(qbt, sidecar):
    q = qbt(local_host_auth=False, reverse_proxy=True, trusted_proxies="127.0.0.0/8")
    assert proxy_prefs(q) == (True, "127.0.0.0/8")
    sc = sidecar(q, QBIT_USER=q.username, QBIT_PASS=q.password, RESYNC_INTERVAL=1, ALLOWED_IPS=LAN_ALLOWED)
    e = wait_runs(sidecar_scrape(sc), 3, sc.log)
    assert proxy_prefs(q) == (True, "127.0.0.0/8")
    assert not lines_with(sc.log(), TRUST_LOG), sc.log()
    assert not lines_with(sc.log(), SECURITY_LOG), sc.log()
    assert e.value(EXPOSED) == 0


def test_support_off_with_our_address_listed_only_switches_it_on(qbt, sidecar):
    """The list already names the sidecar: turning support on is all it takes; the list must not
    get the same address twice."""
    q = qbt(local_host_auth=False, extra_conf={
        ("Preferences", "WebUI\\ReverseProxySupportEnabled"): "false",
        ("Preferences", "WebUI\\TrustedReverseProxiesList"): "127.0.0.1",
    })
    assert proxy_prefs(q) == (False, "127.0.0.1")
    sc = sidecar(q, QBIT_USER=q.username, QBIT_PASS=q.password, RESYNC_INTERVAL=1)
    wait_for(lambda: proxy_prefs(q)[0] is True, TIMEOUT, interval=0.05,
             message=lambda: f"support never turned on; log:\n{sc.log()}")
    wait_runs(sidecar_scrape(sc), 2, sc.log)
    assert proxy_prefs(q) == (True, "127.0.0.1"), sc.log()


@pytest.mark.parametrize("how", ["turned-off-in-qbittorrent", "qbittorrent-restarted-with-fresh-config"])
def test_trust_restored_at_the_next_recheck(qbt, sidecar, how):
    """The re-check (RESYNC_INTERVAL) re-checks the trust too: when qBittorrent no longer trusts
    the sidecar (an operator switched it off, or qBittorrent came back with a config that lost it),
    the sidecar sets it again and logs that change as well."""
    q = qbt(local_host_auth=False)
    sc = sidecar(q, QBIT_USER=q.username, QBIT_PASS=q.password, RESYNC_INTERVAL=1)
    wait_trusted(q, "127.0.0.1", sc.log)
    if how == "turned-off-in-qbittorrent":
        q.set_prefs({"web_ui_reverse_proxy_enabled": False, "web_ui_reverse_proxies_list": ""})
    else:
        q.stop()
        q.set_webui_conf("ReverseProxySupportEnabled", "false")
        q.set_webui_conf("TrustedReverseProxiesList", "")
        q.start()
    # Not checked here that the trust is gone: the re-check may restore it any moment. The second
    # change logged below says it was gone and came back.
    wait_trusted(q, "127.0.0.1", sc.log)
    wait_for(lambda: len(lines_with(sc.log(), TRUST_LOG)) == 2, TIMEOUT, interval=0.05,
             message=lambda: f"the second change was not logged:\n{sc.log()}")


def ban_scenario(ns, q, daemon, tmp_path):
    """The sidecar (default QBIT_TRUST_PROXY) on the veth address; the netns client tries five
    wrong passwords and a sixth; then port sync, a correct login from 127.0.0.1 through the
    sidecar and a freshly started sidecar must all work. Returns (daemon env, qBittorrent log)."""
    port_dir = tmp_path / "gluetun"
    port_dir.mkdir()
    port_file = port_dir / "forwarded_port"
    env = dict(LISTEN_ADDR=ns.host_addr, ALLOWED_IPS=f"127.0.0.1,{ns.cidr}", QBIT_ADDR=q.base_url,
               QBIT_USER=q.username, QBIT_PASS=q.password, PORT_FILE=port_file, RESYNC_INTERVAL=1)
    d = daemon(**env)
    base = f"http://{ns.host_addr}:{d.port}"
    wait_trusted(q, "127.0.0.1", d.log)

    # Without a session the netns client is refused, bypass or not: qBittorrent sees its address.
    r = ns.http(base, [{"path": "/api/v2/app/version"}])[0]
    assert r.get("status") == 403, r

    # Five wrong passwords refused each time; the sixth try finds that address banned.
    wrong = [{"method": "POST", "path": "/api/v2/auth/login",
              "data": {"username": q.username, "password": f"wrong-{i}"}} for i in range(6)]
    res = ns.http(base, wrong)
    assert all(q.login_refused(x) for x in res[:5]), res
    assert res[5].get("status") == 403, f"qBittorrent should have banned the netns client: {res[5]}"

    # The sidecar's own port sync still works...
    p1 = q.initial_listen_port + 21
    port_file.write_text(str(p1))
    q.wait_listen_port(p1)
    wait_for(lambda: scrape(ns.host_addr, d.port, source="127.0.0.1").value("qbit_gluetun_sync_applied_port")
             == p1, TIMEOUT, interval=0.05, message=lambda: f"applied_port never {p1}; log:\n{d.log()}")

    # ...and a correct login from 127.0.0.1 through the sidecar is not banned.
    s = requests.Session()
    s.mount("http://", SourceAdapter("127.0.0.1"))
    r = s.post(base + "/api/v2/auth/login", data={"username": q.username, "password": q.password}, timeout=TIMEOUT)
    assert q.login_ok(r), f"{r.status_code} {r.text!r}; log:\n{d.log()}"
    r = s.get(base + "/api/v2/app/version", timeout=TIMEOUT)
    assert r.status_code == 200 and r.text.startswith("v"), r.text

    # A sidecar started now logs in afresh from 127.0.0.1 and applies a port.
    assert d.terminate()[0] == 0
    assert len(lines_with(d.log(), TRUST_LOG)) == 1, d.log()
    assert not lines_with(d.log(), SECURITY_LOG), d.log()
    p2 = p1 + 1
    port_file.write_text(str(p2))
    d2 = daemon(**env)
    q.wait_listen_port(p2)
    assert not lines_with(d2.log(), TRUST_LOG), "already trusted: nothing to change"

    # qBittorrent attributed the failures and the ban to the netns client, never to 127.0.0.1.
    text = q.without_barriers(q.log_barrier())
    failures = lines_with(text, "WebAPI login failure")
    expected = [f"WebAPI login failure. Reason: invalid credentials, attempt count: {i}, IP: {ns.ns_addr}, "
                f"username: {q.username}" for i in range(1, 6)]
    expected.append(f"WebAPI login failure. Reason: IP has been banned, IP: {ns.ns_addr}, username: {q.username}")
    assert [line.split(" - ", 1)[1] for line in failures] == expected, "\n".join(failures)
    assert not re.search(r"IP: 127\.0\.0\.1, username", text), text
    return env, text


def test_default_netns_client_gets_no_bypass_and_its_ban_is_its_own(netns, qbt, daemon, tmp_path):
    """The brief's set-up: the localhost bypass on. (A client qBittorrent takes for 127.0.0.1 gets
    a session from the bypass before any password or ban check, so here the correct login and the
    sidecar's own calls would pass even if 127.0.0.1 were banned; the next test covers that.)"""
    ns = netns()
    q = qbt(local_host_auth=False, max_auth_fail_count=5)
    assert proxy_prefs(q) == (False, "")
    assert q.preferences()["bypass_local_auth"] is True
    ban_scenario(ns, q, daemon, tmp_path)


def test_default_netns_client_ban_does_not_lock_out_loopback_logins(netns, qbt, daemon, tmp_path):
    """The ban trap proper: the bypass off, so every login from 127.0.0.1 checks the password and
    the ban list. The correct logins (the proxied one and the sidecar's own) really succeed."""
    ns = netns()
    q = qbt(local_host_auth=True, max_auth_fail_count=5)
    assert proxy_prefs(q) == (False, "")
    assert q.preferences()["bypass_local_auth"] is False
    _, text = ban_scenario(ns, q, daemon, tmp_path)
    successes = lines_with(text, "WebAPI login success. IP: 127.0.0.1")
    # The test's own direct login, both sidecars' logins and the proxied login from 127.0.0.1.
    assert len(successes) >= 4, text


# --------------------------------------------------------------------------- QBIT_TRUST_PROXY=false


def test_false_leaves_qbittorrent_alone_and_warns(qbt, sidecar):
    q = qbt(local_host_auth=False)
    sc = sidecar(q, QBIT_USER=q.username, QBIT_PASS=q.password, RESYNC_INTERVAL=1, QBIT_TRUST_PROXY="false",
                 ALLOWED_IPS=LAN_ALLOWED)
    # At start-up: the first run's warning.
    first = wait_for(lambda: lines_with(sc.log(), SECURITY_LOG), TIMEOUT, interval=0.05,
                     message=lambda: f"no SECURITY warning at start-up:\n{sc.log()}")
    assert " warn " in first[0], first[0]
    assert LAN_ALLOWED in first[0] and "QBIT_TRUST_PROXY=true" in first[0], first[0]
    # Again on every re-check.
    n = len(lines_with(sc.log(), SECURITY_LOG))
    e = wait_runs(sidecar_scrape(sc), 2, sc.log)
    assert len(lines_with(sc.log(), SECURITY_LOG)) >= n + 2, sc.log()
    assert e.value(EXPOSED) == 1
    assert proxy_prefs(q) == (False, ""), "QBIT_TRUST_PROXY=false must leave qBittorrent alone"
    assert not lines_with(sc.log(), TRUST_LOG)
    r = requests.get(sc.base_url + "/readyz", timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    warning = [line for line in r.text.splitlines() if line.lower().startswith("warning")]
    assert len(warning) == 1 and "QBIT_TRUST_PROXY=true" in warning[0], r.text


def test_false_netns_client_reaches_webui_without_password(netns, qbt, daemon, tmp_path):
    """The danger the warning is about: with the bypass on and no trust, a LAN client gets in."""
    ns = netns()
    q = qbt(local_host_auth=False)
    d = daemon(LISTEN_ADDR=ns.host_addr, ALLOWED_IPS=f"127.0.0.1,{ns.cidr}", QBIT_ADDR=q.base_url,
               QBIT_USER=q.username, QBIT_PASS=q.password, QBIT_TRUST_PROXY="false", RESYNC_INTERVAL=1)
    wait_for(lambda: lines_with(d.log(), SECURITY_LOG), TIMEOUT, interval=0.05,
             message=lambda: f"no SECURITY warning:\n{d.log()}")
    base = f"http://{ns.host_addr}:{d.port}"
    res = ns.http(base, [{"path": "/api/v2/app/version"}, {"path": "/readyz"}])
    assert res[0].get("status") == 200 and res[0]["text"].startswith("v"), res[0]
    assert "warning" in res[1].get("text", "").lower(), res[1]
    assert scrape(ns.host_addr, d.port, source="127.0.0.1").value(EXPOSED) == 1
    assert proxy_prefs(q) == (False, "")


@pytest.mark.parametrize("allowed", ["127.0.0.1", "127.0.0.1,::1", "127.0.0.0/8,::1/128"])
def test_false_loopback_only_allowed_no_warning(qbt, sidecar, allowed):
    q = qbt(local_host_auth=False)
    sc = sidecar(q, QBIT_USER=q.username, QBIT_PASS=q.password, RESYNC_INTERVAL=1, QBIT_TRUST_PROXY="false",
                 ALLOWED_IPS=allowed)
    e = wait_runs(sidecar_scrape(sc), 3, sc.log)
    assert not lines_with(sc.log(), SECURITY_LOG), sc.log()
    assert e.value(EXPOSED) == 0
    r = requests.get(sc.base_url + "/readyz", timeout=TIMEOUT)
    assert r.status_code == 200 and "warning" not in r.text.lower(), r.text
    assert proxy_prefs(q) == (False, "")


def test_false_bypass_off_no_warning(qbt, sidecar):
    q = qbt(local_host_auth=True)
    sc = sidecar(q, QBIT_USER=q.username, QBIT_PASS=q.password, RESYNC_INTERVAL=1, QBIT_TRUST_PROXY="false",
                 ALLOWED_IPS=LAN_ALLOWED)
    e = wait_runs(sidecar_scrape(sc), 3, sc.log)
    assert not lines_with(sc.log(), SECURITY_LOG), sc.log()
    assert e.value(EXPOSED) == 0
    assert proxy_prefs(q) == (False, "")
