"""Port sync against qBittorrent 5.2's login and API-key behaviour, played by a small fake.

5.2 changed what the sidecar sees: login answers 204 (success) or 401 (wrong credentials), the
session cookie is named QBT_SID_<webui port>, and API keys (Authorization: Bearer) replace the
login. The real 5.3.0 (Debian sid, qbt_builds.py) runs the port-sync, proxy and browser suites;
this fake stays for what a real binary here cannot show on demand: 5.2.0 exactly, a session that
expires while qBittorrent keeps running, and every request the sidecar sent, as recorded. It
follows the 5.2 sources for these answers.
"""

import http.server
import json
import threading
import urllib.parse

import pytest

from conftest import free_port, http_request, wait_until

USER, PASSWORD, API_KEY = "admin", "s3cret pass&word", "qbt_0123456789abcdef"


class Fake52(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        self.port = free_port()
        self.cookie_name = f"QBT_SID_{self.port}"
        self.listen_port = 6881
        self.logins = []        # (status, form) of each login attempt
        self.sets = []          # listen_port values set
        self.auth_headers = []  # Authorization headers seen on API calls
        self.sessions = set()
        super().__init__(("127.0.0.1", self.port), Handler)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def authorized(self):
        fake = self.server
        auth = self.headers.get("Authorization")
        if auth is not None:
            fake.auth_headers.append(auth)
            return auth == f"Bearer {API_KEY}"
        cookies = dict(c.strip().split("=", 1) for c in self.headers.get("Cookie", "").split(";") if "=" in c)
        return cookies.get(fake.cookie_name) in fake.sessions

    def do_GET(self):
        if self.path == "/api/v2/app/preferences":
            if not self.authorized():
                return self.reply(403, b"Forbidden")
            return self.reply(200, json.dumps({"listen_port": self.server.listen_port}).encode(),
                              [("Content-Type", "application/json")])
        self.reply(404)

    def do_POST(self):
        fake = self.server
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        form = dict(urllib.parse.parse_qsl(body))
        if self.path == "/api/v2/auth/login":
            if self.headers.get("Authorization"):
                return self.reply(403)  # 5.2 refuses auth/* with an API key
            ok = form.get("username") == USER and form.get("password") == PASSWORD
            fake.logins.append((204 if ok else 401, form))
            if not ok:
                return self.reply(401)
            sid = f"sid{len(fake.logins)}"
            fake.sessions.add(sid)
            return self.reply(204, headers=[("Set-Cookie", f"{fake.cookie_name}={sid}; HttpOnly; SameSite=Strict; path=/")])
        if self.path == "/api/v2/app/setPreferences":
            if not self.authorized():
                return self.reply(403, b"Forbidden")
            fake.listen_port = json.loads(form["json"])["listen_port"]
            fake.sets.append(fake.listen_port)
            return self.reply(200)
        self.reply(404)


@pytest.fixture
def fake52():
    server = Fake52()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


def start(daemon, fake, tmp_path, port, **env):
    (tmp_path / "forwarded_port").write_text(str(port))
    return daemon(QBIT_ADDR=f"http://127.0.0.1:{fake.port}", ALLOWED_IPS="127.0.0.1", **env)


def test_login_204_and_qbt_sid_cookie_are_used(daemon, fake52, tmp_path):
    start(daemon, fake52, tmp_path, 40100, QBIT_USER=USER, QBIT_PASS=PASSWORD)
    wait_until(lambda: fake52.listen_port == 40100, 10, message="port not applied through a 5.2 login")
    assert [s for s, _ in fake52.logins] == [204]
    assert fake52.logins[0][1] == {"username": USER, "password": PASSWORD}  # form-encoded correctly


def test_session_expiry_logs_in_again_once(daemon, fake52, tmp_path):
    d = start(daemon, fake52, tmp_path, 40101, QBIT_USER=USER, QBIT_PASS=PASSWORD)
    wait_until(lambda: fake52.listen_port == 40101, 10)
    fake52.sessions.clear()  # qBittorrent restarted: the cookie is no longer valid
    (tmp_path / "forwarded_port").write_text("40102")
    wait_until(lambda: fake52.listen_port == 40102, 10, message="no re-login after the session expired")
    assert [s for s, _ in fake52.logins] == [204, 204]
    assert "logged in" in d.log()


def test_wrong_credentials_401_reported_and_not_retried_fast(daemon, fake52, tmp_path):
    d = start(daemon, fake52, tmp_path, 40103, QBIT_USER=USER, QBIT_PASS="wrong")
    wait_until(lambda: "wrong QBIT_USER or QBIT_PASS" in d.log(), 10, message="no clear error for a 401 login")
    r = http_request("127.0.0.1", d.port, "GET", "/sync")
    assert r.status == 401, r
    assert json.loads(r.body)["outcome"] == "auth_failed", r
    # File changes during the backoff must not cause more login attempts.
    for p in (40104, 40105, 40106):
        (tmp_path / "forwarded_port").write_text(str(p))
    wait_until(lambda: "forwarded port is 40106" in d.log(), 5)
    assert len(fake52.logins) == 1, fake52.logins


def test_api_key_sent_as_bearer_without_login(daemon, fake52, tmp_path):
    start(daemon, fake52, tmp_path, 40107, QBIT_API_KEY=API_KEY)
    wait_until(lambda: fake52.listen_port == 40107, 10, message="port not applied with an API key")
    assert fake52.logins == []
    assert fake52.auth_headers and set(fake52.auth_headers) == {f"Bearer {API_KEY}"}


def test_api_key_from_file(daemon, fake52, tmp_path):
    key_file = tmp_path / "api_key"
    key_file.write_text(API_KEY + "\n")
    start(daemon, fake52, tmp_path, 40108, QBIT_API_KEY_FILE=key_file)
    wait_until(lambda: fake52.listen_port == 40108, 10)
    assert set(fake52.auth_headers) == {f"Bearer {API_KEY}"}


def test_wrong_api_key_reported(daemon, fake52, tmp_path):
    d = start(daemon, fake52, tmp_path, 40109, QBIT_API_KEY="qbt_wrong")
    wait_until(lambda: "QBIT_API_KEY" in d.log(), 10, message="no clear error for a refused API key")
    assert fake52.sets == []
