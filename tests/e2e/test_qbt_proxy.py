"""The reverse proxy in front of a real qbittorrent-nox (issue 3, first "Tests" bullet).

qBittorrent keeps its default security settings (Host header validation and CSRF protection on,
reverse-proxy support off unless a test turns it on), requires a login even from localhost
(LocalHostAuth=true), and listens on its own port; the sidecar listens on another one. The client
talks to the sidecar as a browser would: Host, Origin and Referer name the sidecar's address.
"""

import json

import pytest
import requests

from qbt_rig import free_port, make_torrent, wait_for

pytest_plugins = ("qbt_rig",)  # the qbt and sidecar fixtures

TIMEOUT = 10


def describe(r, sc=None):
    """The exact request and response, for assertion messages."""
    req = r.request
    body = req.body
    if isinstance(body, bytes) and len(body) > 300:
        body = body[:300] + b"..."
    text = (
        f"\n>>> {req.method} {req.url}\n>>> headers {dict(req.headers)}\n>>> body {body!r}"
        f"\n<<< {r.status_code} {r.reason}\n<<< headers {dict(r.headers)}\n<<< body {r.content[:500]!r}"
    )
    if sc is not None:
        text += f"\n--- sidecar log:\n{sc.log()[-3000:]}"
    return text


def browser_headers(sc, path="/"):
    """What a browser on the sidecar's origin sends with a same-origin fetch/XHR POST."""
    return {"Origin": sc.origin, "Referer": sc.origin + path, "Sec-Fetch-Site": "same-origin"}


def proxy_login(sc, q):
    """Logs in through the sidecar like the WebUI's login form; returns (session, response)."""
    s = requests.Session()
    r = s.post(
        sc.base_url + "/api/v2/auth/login",
        data={"username": q.username, "password": q.password},
        headers=browser_headers(sc),
        timeout=TIMEOUT,
    )
    return s, r


def assert_logged_in(s, r, sc, q):
    assert q.login_ok(r), describe(r, sc)
    set_cookie = r.headers.get("set-cookie", "")
    assert f"{q.sid_cookie}=" in set_cookie and "HttpOnly" in set_cookie, describe(r, sc)
    assert s.cookies.get(q.sid_cookie), describe(r, sc)


@pytest.fixture(params=[False, True], ids=["qbt-reverse-proxy-off", "qbt-reverse-proxy-on"])
def stack(request, qbt, sidecar):
    """qBittorrent (default security, login required from localhost) and the sidecar in front.

    Parametrized over qBittorrent's reverse-proxy support: off (its default) and on with
    127.0.0.1 (the sidecar) as trusted proxy. With it off the sidecar must leave it off
    (QBIT_TRUST_PROXY=false), else its own default would turn it on.
    """
    q = qbt(local_host_auth=True, reverse_proxy=request.param, trusted_proxies="127.0.0.1")
    prefs = q.preferences()
    assert prefs["web_ui_host_header_validation_enabled"] is True
    assert prefs["web_ui_csrf_protection_enabled"] is True
    assert prefs["bypass_local_auth"] is False
    assert prefs["web_ui_reverse_proxy_enabled"] is request.param
    sc = sidecar(q, QBIT_TRUST_PROXY=str(request.param).lower())
    assert sc.port != q.webui_port
    return q, sc


def test_login_page_served_through_proxy(stack):
    q, sc = stack
    r = requests.get(sc.base_url + "/", timeout=TIMEOUT)
    assert r.status_code == 200, describe(r, sc)
    assert 'id="loginform"' in r.text, describe(r, sc)


def test_login_with_browser_origin_and_referer(stack):
    q, sc = stack
    s, r = proxy_login(sc, q)
    assert_logged_in(s, r, sc, q)
    r = s.get(sc.base_url + "/api/v2/app/version", headers={"Referer": sc.origin + "/"}, timeout=TIMEOUT)
    assert r.status_code == 200, describe(r, sc)
    assert r.text == q.api("GET", "/api/v2/app/version").text, describe(r, sc)


def test_login_with_referer_only(stack):
    """Without Origin, the Referer is what the same-origin check looks at."""
    q, sc = stack
    s = requests.Session()
    r = s.post(
        sc.base_url + "/api/v2/auth/login",
        data={"username": q.username, "password": q.password},
        headers={"Referer": sc.origin + "/"},
        timeout=TIMEOUT,
    )
    assert_logged_in(s, r, sc, q)


def test_wrong_password_through_proxy(stack):
    q, sc = stack
    s = requests.Session()
    r = s.post(
        sc.base_url + "/api/v2/auth/login",
        data={"username": q.username, "password": "not-the-password"},
        headers=browser_headers(sc),
        timeout=TIMEOUT,
    )
    assert q.login_refused(r), describe(r, sc)
    assert q.sid_cookie not in s.cookies, describe(r, sc)


def test_no_session_gets_403(stack):
    q, sc = stack
    r = requests.get(sc.base_url + "/api/v2/app/version", timeout=TIMEOUT)
    assert r.status_code == 403, describe(r, sc)
    r = requests.get(
        sc.base_url + "/api/v2/torrents/info",
        headers={"Referer": sc.origin + "/", "Cookie": f"{q.sid_cookie}=not-a-session"},
        timeout=TIMEOUT,
    )
    assert r.status_code == 403, describe(r, sc)


# Cross-origin requests the proxy must refuse itself: (name, extra headers). The session cookie is
# valid (a CSRF attack rides on the victim's session).
CROSS_ORIGIN = [
    ("evil-origin", lambda sc, q: {"Origin": "http://evil.example", "Referer": "http://evil.example/"}),
    ("evil-origin-good-referer", lambda sc, q: {"Origin": "http://evil.example", "Referer": sc.origin + "/"}),
    ("evil-referer-only", lambda sc, q: {"Referer": "http://evil.example/page"}),
    ("qbt-port-origin", lambda sc, q: {"Origin": q.origin, "Referer": q.origin + "/"}),
    ("other-port-origin", lambda sc, q: {"Origin": f"http://127.0.0.1:{free_port()}"}),
    (
        "evil-origin-spoofed-forwarded-host",
        lambda sc, q: {
            "Origin": "http://evil.example",
            "X-Forwarded-Host": "evil.example",
            "Forwarded": "host=evil.example",
        },
    ),
]


@pytest.mark.parametrize("name,headers", CROSS_ORIGIN, ids=[c[0] for c in CROSS_ORIGIN])
def test_cross_origin_post_refused_before_qbittorrent(stack, name, headers):
    q, sc = stack
    s, r = proxy_login(sc, q)
    assert_logged_in(s, r, sc, q)
    before = q.listen_port()
    target = free_port()
    assert target != before
    since = len(q.log_barrier())
    r = s.post(
        sc.base_url + "/api/v2/app/setPreferences",
        data={"json": json.dumps({"listen_port": target})},
        headers=headers(sc, q),
        timeout=TIMEOUT,
    )
    assert r.status_code == 401, describe(r, sc)
    # It never reached qBittorrent: the port did not change, and qBittorrent logged no refusal of
    # its own (it logs every Host/Origin/Referer mismatch it refuses).
    assert q.listen_port() == before, describe(r, sc)
    logged = q.without_barriers(q.log_barrier()[since:])
    assert "mismatch" not in logged and "Invalid Host" not in logged, describe(r, sc) + "\nqBittorrent log:\n" + logged
    # ... while the same request from the right origin does change it (so the check above means
    # something).
    r = s.post(
        sc.base_url + "/api/v2/app/setPreferences",
        data={"json": json.dumps({"listen_port": target})},
        headers=browser_headers(sc),
        timeout=TIMEOUT,
    )
    assert r.status_code == 200, describe(r, sc)
    q.wait_listen_port(target)


def test_client_forwarding_headers_replaced(stack):
    """A client's own X-Forwarded-For / X-Real-IP / Forwarded never reach qBittorrent: with
    reverse-proxy support on it would take the first global address in X-Forwarded-For as the
    client (and use it for bans, the localhost bypass and its log). qBittorrent must see the
    sidecar's client, 127.0.0.1."""
    q, sc = stack
    since = len(q.log_barrier())
    headers = browser_headers(sc)
    headers.update(
        {
            "X-Forwarded-For": "203.0.113.7",
            "X-Real-IP": "203.0.113.8",
            "Forwarded": "for=203.0.113.9;host=evil.example;proto=https",
            "X-Forwarded-Proto": "https",
        }
    )
    s = requests.Session()
    r = s.post(
        sc.base_url + "/api/v2/auth/login",
        data={"username": q.username, "password": q.password},
        headers=headers,
        timeout=TIMEOUT,
    )
    assert_logged_in(s, r, sc, q)
    # The session works over plain HTTP (from 5.1 on, qBittorrent would mark the cookie Secure if
    # the client's X-Forwarded-Proto: https got through; 4.5 does not, so only the IP is checked).
    r2 = s.get(sc.base_url + "/api/v2/app/version", headers={"Referer": sc.origin + "/"}, timeout=TIMEOUT)
    assert r2.status_code == 200, describe(r2, sc)
    logged = q.without_barriers(q.log_barrier()[since:])
    assert "WebAPI login success. IP: 127.0.0.1" in logged, describe(r, sc) + "\nqBittorrent log:\n" + logged
    assert "203.0.113." not in logged, describe(r, sc) + "\nqBittorrent log:\n" + logged


def test_cross_origin_login_refused(stack):
    q, sc = stack
    s = requests.Session()
    r = s.post(
        sc.base_url + "/api/v2/auth/login",
        data={"username": q.username, "password": q.password},
        headers={"Origin": "http://evil.example", "Referer": "http://evil.example/"},
        timeout=TIMEOUT,
    )
    assert r.status_code == 401, describe(r, sc)
    assert q.sid_cookie not in s.cookies and "set-cookie" not in r.headers, describe(r, sc)


def test_list_add_export_through_proxy(stack, tmp_path):
    q, sc = stack
    s, r = proxy_login(sc, q)
    assert_logged_in(s, r, sc, q)
    ref = {"Referer": sc.origin + "/"}

    r = s.get(sc.base_url + "/api/v2/torrents/info", headers=ref, timeout=TIMEOUT)
    assert r.status_code == 200, describe(r, sc)
    assert r.json() == [], describe(r, sc)

    t = make_torrent()
    save = tmp_path / "save"
    t.write_content(save)  # complete on disk: it seeds, no download
    r = s.post(
        sc.base_url + "/api/v2/torrents/add",
        files={"torrents": (t.name + ".torrent", t.data, "application/x-bittorrent")},
        data={"savepath": str(save)},
        headers=browser_headers(sc),
        timeout=TIMEOUT,
    )
    assert q.torrent_added(r), describe(r, sc)

    def listed():
        resp = s.get(sc.base_url + "/api/v2/torrents/info", headers=ref, timeout=TIMEOUT)
        assert resp.status_code == 200, describe(resp, sc)
        return next((x for x in resp.json() if x["hash"] == t.info_hash), None)

    entry = wait_for(listed, 10.0, interval=0.1, message=f"torrent {t.info_hash} not listed through the proxy")
    assert entry["name"] == t.name
    assert entry["save_path"].rstrip("/") == str(save)
    assert q.wait_torrent(t.info_hash)["name"] == t.name  # qBittorrent itself has it

    r = s.get(sc.base_url + "/api/v2/torrents/export", params={"hash": t.info_hash}, headers=ref, timeout=TIMEOUT)
    assert r.status_code == 200, describe(r, sc)
    assert r.content == t.data, describe(r, sc)
    assert r.content == q.export_torrent(t.info_hash)


def test_logout_through_proxy_ends_session(stack):
    q, sc = stack
    s, r = proxy_login(sc, q)
    assert_logged_in(s, r, sc, q)
    r = s.post(sc.base_url + "/api/v2/auth/logout", headers=browser_headers(sc), timeout=TIMEOUT)
    assert r.status_code == 200, describe(r, sc)
    r = s.get(sc.base_url + "/api/v2/app/version", headers={"Referer": sc.origin + "/"}, timeout=TIMEOUT)
    assert r.status_code == 403, describe(r, sc)
