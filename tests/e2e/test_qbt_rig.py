"""Self-check of the real-qBittorrent rig (qbt_rig.py), by direct calls to qBittorrent's WebUI.

If these fail, the proxy and port-sync tests that use the rig cannot be trusted either.
"""

import hashlib

import pytest
import requests

from qbt_rig import bencode, free_port, make_torrent

pytest_plugins = ("qbt_rig",)  # the qbt and sidecar fixtures


def test_bencode_and_info_hash():
    assert bencode({"b": 1, "a": [b"x", "yz"]}) == b"d1:al1:x2:yze1:bi1ee"
    t = make_torrent(name="a.bin", content=b"hello")
    start = t.data.index(b"4:infod") + len(b"4:info")
    assert t.data[start:].startswith(b"d6:lengthi5e4:name5:a.bin12:piece lengthi16384e6:pieces20:")
    info = t.data[start:-1]
    assert info.endswith(hashlib.sha1(b"hello").digest() + b"e")
    assert hashlib.sha1(info).hexdigest() == t.info_hash


def test_starts_loopback_only_with_config(qbt):
    q = qbt()
    r = requests.get(q.base_url + "/api/v2/app/version", timeout=5)
    assert r.status_code == 403, "LocalHostAuth=true must require a login from loopback"
    prefs = q.preferences()
    assert prefs["listen_port"] == q.initial_listen_port
    assert prefs["web_ui_port"] == q.webui_port
    assert prefs["web_ui_address"] == "127.0.0.1"
    assert prefs["dht"] is False and prefs["lsd"] is False and prefs["pex"] is False
    assert prefs["upnp"] is False
    assert prefs["bypass_local_auth"] is False
    assert prefs["web_ui_max_auth_fail_count"] == 0
    # qBittorrent's defaults that the proxy tests rely on
    assert prefs["web_ui_host_header_validation_enabled"] is True
    assert prefs["web_ui_csrf_protection_enabled"] is True
    assert prefs["web_ui_reverse_proxy_enabled"] is False
    # "Web UI: Now listening ..." up to 4.x, "WebUI: Now listening ..." from 5.0.
    log = q.wait_log("UI: Now listening on IP: 127.0.0.1, port: %d" % q.webui_port)
    assert log
    assert f'"127.0.0.1:{q.initial_listen_port}"' in q.log_text()


def test_login_wrong_password_and_no_ban(qbt):
    q = qbt()
    for _ in range(7):
        r = requests.post(q.base_url + "/api/v2/auth/login", data={"username": q.username, "password": "wrong"}, timeout=5)
        assert q.login_refused(r), (r.status_code, r.text)
    s = q.api_login()
    assert s.get(q.base_url + "/api/v2/app/version", timeout=5).text == "v" + q.build.version_text


def test_local_host_auth_off_needs_no_login(qbt):
    q = qbt(local_host_auth=False)
    r = requests.get(q.base_url + "/api/v2/app/version", timeout=5)
    assert r.status_code == 200 and r.text.startswith("v")


def test_set_prefs_listen_port_and_restart_keeps_it(qbt):
    q = qbt()
    new = free_port()
    q.set_prefs({"listen_port": new})
    q.wait_listen_port(new)
    q.wait_log(f'"127.0.0.1:{new}"')
    rc = q.restart().proc.returncode
    assert rc is None  # running again
    assert q.listen_port() == new
    assert q.stop() == 0


def test_stopped_config_edit_applies_on_start(qbt):
    q = qbt()
    q.stop()
    new = free_port()
    q.set_conf("BitTorrent", "Session\\Port", new)
    q.start()
    assert q.listen_port() == new


def test_reverse_proxy_settings_written(qbt):
    q = qbt(reverse_proxy=True)
    prefs = q.preferences()
    assert prefs["web_ui_reverse_proxy_enabled"] is True
    assert prefs["web_ui_reverse_proxies_list"] == "127.0.0.1"


def test_reverse_proxy_pref_keys_as_saved(qbt):
    """The config keys the rig writes are the ones qBittorrent itself reads and saves for these prefs
    (where a newer version moved them, webui_key() finds them)."""
    q = qbt()
    q.set_prefs({"web_ui_reverse_proxy_enabled": True, "web_ui_reverse_proxies_list": "127.0.0.1"})
    q.stop()
    assert q.webui_conf("ReverseProxySupportEnabled") == "true"
    assert q.webui_conf("TrustedReverseProxiesList") == "127.0.0.1"
    assert q.webui_conf("Port") == str(q.webui_port)  # what the rig wrote survived a version's migration
    q.set_webui_conf("TrustedReverseProxiesList", "127.0.0.2")
    q.start()
    assert q.preferences()["web_ui_reverse_proxies_list"] == "127.0.0.2"


def test_add_list_export_roundtrip(qbt, tmp_path):
    q = qbt()
    t = make_torrent()
    save = tmp_path / "save"
    entry = q.add_torrent(t, save_dir=save)
    assert entry["name"] == t.name
    assert entry["save_path"].rstrip("/") == str(save)
    assert q.export_torrent(t.info_hash) == t.data


def test_log_barrier(qbt):
    q = qbt()
    since = len(q.log_barrier())
    r = requests.get(q.base_url + "/api/v2/app/version", headers={"Origin": "http://csrf.example"}, timeout=5)
    assert r.status_code == 401
    text = q.log_barrier()[since:]
    assert "Origin header & Target origin mismatch" in text and "csrf.example" in text, text
    assert "log-barrier-" not in q.without_barriers(text)
