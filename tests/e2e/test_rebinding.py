"""DNS rebinding through the proxy, against a real qBittorrent (each build the suite has).

qBittorrent's defence is its Host check: a request whose Host names neither the address it came in
on nor a name in its server domains (web_ui_domain_list, when web_ui_host_header_validation_enabled)
gets 401. A rebinding page's requests carry the attacker's name in Host. The sidecar sends
qBittorrent its own Host, so it makes that check itself on the browser's Host, with the settings it
read from qBittorrent, and with ALLOWED_HOSTS on top; a refused name gets 421 and nothing reaches
qBittorrent. Here qBittorrent lets localhost in without a password (its bypass) and the sidecar
does not make it trust X-Forwarded-For, so a request that got through would read the preferences
with no login at all: the worst case the issue saw.
"""

import pytest
import requests

from qbt_rig import wait_for

pytest_plugins = ("qbt_rig",)  # the qbt and sidecar fixtures

TIMEOUT = 10
REBIND = "rebind.attacker.example"
PREFS = "/api/v2/app/preferences"


def get(base, host, path=PREFS):
    return requests.get(base + path, headers={"Host": host}, timeout=TIMEOUT)


def open_qbt(qbt, validation, domains):
    """qBittorrent with its localhost bypass on and the given Host settings (set through its API)."""
    q = qbt(local_host_auth=False)
    q.set_prefs({"web_ui_host_header_validation_enabled": validation, "web_ui_domain_list": domains})
    return q


# qBittorrent's settings, and how many of the four names below it refuses with them (checked too).
@pytest.mark.parametrize("validation,domains,refusals", [
    (True, "127.0.0.1", 4), (True, "*", 0), (False, "127.0.0.1", 0), (True, "qbt.lan;*.home.arpa", 2)],
    ids=["restricted", "default-any-name", "validation-off", "names-and-wildcard"])
def test_proxy_refuses_exactly_the_names_qbittorrent_refuses(qbt, sidecar, validation, domains, refusals):
    q = open_qbt(qbt, validation, domains)
    sc = sidecar(q, QBIT_TRUST_PROXY="false")
    wait_for(lambda: "Host check:" in sc.log(), TIMEOUT,
             message=lambda: f"the sidecar never read qBittorrent's Host settings:\n{sc.log()}")
    refused = 0
    for name in (REBIND, "qbt.lan", "box.home.arpa", "127.0.0.2"):
        direct = get(q.base_url, f"{name}:{q.webui_port}")
        assert direct.status_code in (200, 401), (name, direct.status_code, direct.text)
        since = len(q.log_barrier())
        via = get(sc.base_url, f"{name}:{sc.port}")
        if direct.status_code == 401:
            refused += 1
            assert via.status_code == 421, (name, via.status_code, via.text, sc.log())
            assert "Host" in via.text
            # Nothing reached qBittorrent: it logged no Host refusal of its own for this name.
            logged = q.without_barriers(q.log_barrier()[since:])
            assert name not in logged, logged
            assert name in sc.log(), sc.log()  # the sidecar's log names what it refused
        else:
            assert via.status_code == 200 and "listen_port" in via.json(), (name, via.status_code, via.text)
    assert refused == refusals


def test_rebinding_login_refused_and_ip_address_still_works(qbt, sidecar):
    q = qbt(local_host_auth=True)
    q.set_prefs({"web_ui_host_header_validation_enabled": True, "web_ui_domain_list": "127.0.0.1"})
    sc = sidecar(q, QBIT_USER=q.username, QBIT_PASS=q.password, QBIT_TRUST_PROXY="false")
    wait_for(lambda: "Host check:" in sc.log(), TIMEOUT, message=lambda: sc.log())
    # A rebinding page posting the login form: same-origin as far as the browser knows.
    origin = f"http://{REBIND}:{sc.port}"
    s = requests.Session()
    r = s.post(sc.base_url + "/api/v2/auth/login", data={"username": q.username, "password": q.password},
               headers={"Host": f"{REBIND}:{sc.port}", "Origin": origin, "Referer": origin + "/"}, timeout=TIMEOUT)
    assert r.status_code == 421, (r.status_code, r.text)
    assert not s.cookies, s.cookies
    # The user's own browser, on the sidecar's address, logs in as before.
    origin = sc.origin
    r = s.post(sc.base_url + "/api/v2/auth/login", data={"username": q.username, "password": q.password},
               headers={"Origin": origin, "Referer": origin + "/"}, timeout=TIMEOUT)
    assert q.login_ok(r), (r.status_code, r.text, sc.log())
    # The sidecar's own endpoints are not qBittorrent's: they answer whatever the Host.
    assert get(sc.base_url, f"{REBIND}:{sc.port}", "/healthz").status_code == 200


def test_settings_changed_in_qbittorrent_are_followed_at_the_next_check(qbt, sidecar):
    q = open_qbt(qbt, True, "*")
    sc = sidecar(q, QBIT_TRUST_PROXY="false", RESYNC_INTERVAL=1)
    wait_for(lambda: get(sc.base_url, f"{REBIND}:{sc.port}").status_code == 200, TIMEOUT,
             message=lambda: sc.log())
    q.set_prefs({"web_ui_domain_list": "qbt.lan"})
    wait_for(lambda: get(sc.base_url, f"{REBIND}:{sc.port}").status_code == 421, TIMEOUT,
             message=lambda: f"the sidecar still lets {REBIND} through:\n{sc.log()}")
    assert get(sc.base_url, f"qbt.lan:{sc.port}").status_code == 200


def test_allowed_hosts_narrows_what_qbittorrent_allows(qbt, sidecar):
    q = open_qbt(qbt, True, "*")
    sc = sidecar(q, QBIT_TRUST_PROXY="false", ALLOWED_HOSTS="qbt.lan, *.home.arpa")
    wait_for(lambda: "Host check:" in sc.log(), TIMEOUT, message=lambda: sc.log())
    assert get(sc.base_url, f"{REBIND}:{sc.port}").status_code == 421
    assert get(sc.base_url, f"QBT.LAN:{sc.port}").status_code == 200
    assert get(sc.base_url, f"nas.home.arpa:{sc.port}").status_code == 200
    assert get(sc.base_url, f"127.0.0.1:{sc.port}").status_code == 200  # the address itself


def test_names_wait_until_qbittorrent_has_answered(sidecar, tmp_path):
    """Before qBittorrent's settings are known only the front door's own address (or ALLOWED_HOSTS)
    passes: a name could be one it refuses."""
    from qbt_rig import free_port
    sc = sidecar(None, QBIT_ADDR=f"http://127.0.0.1:{free_port()}")  # nothing listens there
    r = get(sc.base_url, f"nas.lan:{sc.port}", "/api/v2/app/version")
    assert r.status_code == 503 and r.headers.get("Retry-After"), (r.status_code, r.text)
    assert "not answered" in sc.log(), sc.log()
    r = get(sc.base_url, f"127.0.0.1:{sc.port}", "/api/v2/app/version")
    assert r.status_code == 502, (r.status_code, r.text)  # passed on; qBittorrent is down
    sc2 = sidecar(None, QBIT_ADDR=f"http://127.0.0.1:{free_port()}", ALLOWED_HOSTS="nas.lan")
    assert get(sc2.base_url, f"nas.lan:{sc2.port}", "/api/v2/app/version").status_code == 502
