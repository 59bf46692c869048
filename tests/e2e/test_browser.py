"""A real browser (Debian's chromium driven by playwright-core) uses the WebUI through the sidecar.

qBittorrent requires a login (also from localhost) and has one torrent, added directly through its
own API. The browser opens the sidecar's address, logs in with the WebUI's form and must see the
torrent in the list (issue 3, second "Tests" bullet). The node script is
tests/e2e/browser/login-and-list.js; its dependencies come from `npm ci` in tests/e2e/browser.
"""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from qbt_rig import make_torrent
from tls_rig import self_signed, spki_sha256

pytest_plugins = ("qbt_rig",)  # the qbt and sidecar fixtures

BROWSER_DIR = Path(__file__).resolve().parent / "browser"
SCRIPT = BROWSER_DIR / "login-and-list.js"
CHROMIUM = Path("/usr/bin/chromium")
# The script's own deadline, and a harder one for the node process around it. A full run takes
# ~3 s on an idle machine.
SCRIPT_TIMEOUT_MS = 45000
PROCESS_TIMEOUT = 90


def _require_browser():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent (apt-get install chromium)")
    if not (BROWSER_DIR / "node_modules" / "playwright-core").is_dir():
        pytest.skip(f"{BROWSER_DIR}/node_modules/playwright-core is absent (run `npm ci` in {BROWSER_DIR})")
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not on PATH (apt-get install nodejs)")
    return node


def run_browser(url, username, password, expect, screenshot, timeout_ms=SCRIPT_TIMEOUT_MS, trust=None):
    """Runs the node script (trusting the certificate trust, a tls_rig.Cert); returns (parsed JSON
    result, CompletedProcess)."""
    node = _require_browser()
    cmd = [
        node, str(SCRIPT),
        "--url", url,
        "--username", username,
        "--password", password,
        "--expect", expect,
        "--screenshot", str(screenshot),
        "--timeout", str(timeout_ms),
        "--chromium", str(CHROMIUM),
    ]
    if trust is not None:
        cmd += ["--trust-spki", spki_sha256(trust)]
    # The script stops itself at its own deadline (and closes chromium, removes its user-data
    # dir); the process timeout is only a backstop.
    p = subprocess.run(
        cmd, cwd=BROWSER_DIR, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=PROCESS_TIMEOUT
    )
    lines = [line for line in p.stdout.splitlines() if line.startswith("{")]
    assert lines, f"no JSON from the script (exit {p.returncode})\nstdout:\n{p.stdout}\nstderr:\n{p.stderr[-3000:]}"
    return json.loads(lines[-1]), p


@pytest.fixture
def qbt_with_torrent(qbt):
    _require_browser()
    q = qbt(local_host_auth=True)
    t = make_torrent(name="qgs-browser-test-torrent.bin")
    q.add_torrent(t)  # directly through qBittorrent's API, not through the proxy
    return q, t


def test_browser_logs_in_through_proxy_and_sees_torrent(qbt_with_torrent, sidecar, tmp_path):
    q, t = qbt_with_torrent
    sc = sidecar(q)
    shot = tmp_path / "browser-proxy.png"
    result, p = run_browser(sc.base_url + "/", q.username, q.password, t.name, shot)
    detail = f"result: {json.dumps(result, indent=1)}\nscreenshot: {shot}\nstderr:\n{p.stderr[-2000:]}\n" \
             f"sidecar log:\n{sc.log()[-3000:]}"
    assert result["ok"] is True, detail
    assert p.returncode == 0, detail
    assert any(t.name in row for row in result["rows"]), detail
    assert shot.exists() and shot.stat().st_size > 0, detail


def test_browser_through_the_tls_front_door_gets_a_secure_session_cookie(qbt_with_torrent, sidecar, tmp_path):
    """HTTPS at the front door: the same login and list, and the session cookie the browser keeps is
    Secure (whatever this qBittorrent version does with X-Forwarded-Proto)."""
    q, t = qbt_with_torrent
    front = self_signed(tmp_path / "front", "front")
    sc = sidecar(q, TLS_CERT_FILE=front.cert, TLS_KEY_FILE=front.key)
    shot = tmp_path / "browser-tls.png"
    result, p = run_browser(sc.base_url + "/", q.username, q.password, t.name, shot, trust=front)
    detail = f"result: {json.dumps(result, indent=1)}\nstderr:\n{p.stderr[-2000:]}\nsidecar log:\n{sc.log()[-3000:]}"
    assert result["ok"] is True and p.returncode == 0, detail
    assert sc.base_url.startswith("https://") and result["finalUrl"].startswith("https://"), detail
    assert any(t.name in row for row in result["rows"]), detail
    sid = [c for c in result["cookies"] if c["name"] == q.sid_cookie]
    assert sid and sid[0]["secure"] and sid[0]["httpOnly"], detail


def test_browser_script_against_qbittorrent_directly(qbt_with_torrent, tmp_path):
    """Self-check of the script on qBittorrent's own port: if this fails, the script is at fault,
    not the proxy."""
    q, t = qbt_with_torrent
    shot = tmp_path / "browser-direct.png"
    result, p = run_browser(q.base_url + "/", q.username, q.password, t.name, shot)
    detail = f"result: {json.dumps(result, indent=1)}\nstderr:\n{p.stderr[-2000:]}"
    assert result["ok"] is True and p.returncode == 0, detail
    assert any(t.name in row for row in result["rows"]), detail


def test_browser_script_fails_with_wrong_password(qbt_with_torrent, tmp_path):
    """Self-check: the script reports failure (exit 1) when the login does not work."""
    q, t = qbt_with_torrent
    shot = tmp_path / "browser-wrong.png"
    result, p = run_browser(q.base_url + "/", q.username, "wrong-password", t.name, shot, timeout_ms=6000)
    assert result["ok"] is False and p.returncode == 1, result
