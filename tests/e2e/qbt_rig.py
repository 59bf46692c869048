"""A real qbittorrent-nox on loopback for end-to-end tests, and the sidecar in front of it.

Usage in a test module (the fixtures must be imported into the module that uses them):

    from qbt_rig import qbt, sidecar  # noqa: F401  (pytest fixtures)

    def test_something(qbt, sidecar):      # runs once per qBittorrent build (qbt_builds.py)
        q = qbt(local_host_auth=True)          # started, API answering
        s = sidecar(q, QBIT_USER=q.username, QBIT_PASS=q.password)   # /healthz answers 200
        ...

`qbt(**kwargs)` creates a QbtInstance in its own throwaway profile dir (under tmp_path), writes a
quiet, loopback-only config (no DHT/LSD/PeX/UPnP, legal notice accepted, WebUI and torrent port on
free loopback ports), starts `qbittorrent-nox --profile=DIR` in its own session (setsid) and waits
until its API answers. `qbt(start=False, ...)` only prepares it. Every qBittorrent and every sidecar
started through the fixtures is stopped by PID when the test ends: SIGTERM, a deadline, SIGKILL as
a last resort (which fails the test); a sidecar must exit 0 on that SIGTERM.

Facts this relies on were checked against qbittorrent-nox 4.5.2 (WebAPI 2.8.19), 5.1.0 and 5.3.0,
see shared/notes/test-rig.md:
- config file DIR/qBittorrent/config/qBittorrent.conf, log DIR/qBittorrent/data/logs/qbittorrent.log;
- the API preferences web_ui_reverse_proxy_enabled / web_ui_reverse_proxies_list are saved as
  [Preferences] WebUI\\ReverseProxySupportEnabled / WebUI\\TrustedReverseProxiesList (read from the
  .conf 4.5.2 wrote after setPreferences and a clean stop);
- password hash: PBKDF2-HMAC-SHA512, 100000 iterations, 16-byte salt, 64-byte key,
  stored as @ByteArray(BASE64SALT:BASE64KEY);
- login: up to 5.1 `200 Ok.` (wrong password `200 Fails.`) and cookie SID; from 5.2 `204` (wrong
  password `401`) and cookie QBT_SID_<webui port>. QbtInstance.login_ok / login_refused /
  sid_cookie say which, so a test reads the same on every version.
"""

import base64
import configparser
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

from conftest import bin_path, free_port, start_daemon, stop_daemons
from conftest import wait_until as wait_for
from qbt_builds import QbtBuild


# qBittorrent answers ~0.1 s after start and exits ~1 s after SIGTERM on an idle machine; the
# deadlines are generous because the sanitizer build and busy CI machines are slow.
QBT_START_TIMEOUT = 20.0
QBT_STOP_TIMEOUT = 20.0


# --------------------------------------------------------------------------- small helpers


def pbkdf2_password(password, salt=None):
    """qBittorrent's WebUI\\Password_PBKDF2 value for password."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    key = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, 100000, dklen=64)
    return "@ByteArray({}:{})".format(base64.b64encode(salt).decode(), base64.b64encode(key).decode())


def bencode(value):
    """Bencodes int, bytes, str, list and dict (keys sorted as raw bytes)."""
    if isinstance(value, bool):
        raise TypeError("bencode has no booleans")
    if isinstance(value, int):
        return b"i%de" % value
    if isinstance(value, str):
        value = value.encode("utf-8")
    if isinstance(value, (bytes, bytearray)):
        return b"%d:" % len(value) + bytes(value)
    if isinstance(value, (list, tuple)):
        return b"l" + b"".join(bencode(v) for v in value) + b"e"
    if isinstance(value, dict):
        items = sorted(((k.encode("utf-8") if isinstance(k, str) else k), v) for k, v in value.items())
        return b"d" + b"".join(bencode(k) + bencode(v) for k, v in items) + b"e"
    raise TypeError(f"cannot bencode {type(value).__name__}")


class Torrent:
    """A tiny single-file trackerless torrent: .data (the .torrent bytes), .info_hash (v1, hex)."""

    def __init__(self, name, content, data, info_hash):
        self.name = name
        self.content = content
        self.data = data
        self.info_hash = info_hash

    def write_content(self, save_dir):
        """Writes the payload file into save_dir, so qBittorrent finds it complete and seeds."""
        path = Path(save_dir) / self.name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.content)
        return path


def make_torrent(name=None, content=None, piece_length=16384, announce=None):
    """Builds a single-file v1 .torrent, trackerless unless announce (a tracker URL) is given;
    returns a Torrent (bytes + info-hash).

    Contains only what qBittorrent 4.5's /api/v2/torrents/export writes back (info, creation
    date, created by), so an exported copy of a trackerless one is byte-identical to it."""
    name = name or f"qgs-test-{secrets.token_hex(4)}.bin"
    content = content if content is not None else secrets.token_bytes(40000)
    pieces = b"".join(
        hashlib.sha1(content[i : i + piece_length]).digest() for i in range(0, max(len(content), 1), piece_length)
    )
    info = {"length": len(content), "name": name, "piece length": piece_length, "pieces": pieces}
    info_hash = hashlib.sha1(bencode(info)).hexdigest()
    # qBittorrent's export (libtorrent's create_torrent) always writes a "creation date" (now,
    # when the torrent has none); with one in the file the export is byte-identical to it.
    meta = {"info": info, "creation date": int(time.time()), "created by": "qbit-gluetun-sync tests"}
    if announce:
        meta["announce"] = announce
    return Torrent(name, content, bencode(meta), info_hash)


def _status_text(r):
    """(status, body text) of a requests.Response or of a {"status", "text"} dict."""
    if isinstance(r, dict):
        return r.get("status"), r.get("text")
    return r.status_code, r.text


def _stop_pid(proc, timeout):
    """SIGTERM by PID, wait up to timeout, SIGKILL fallback; returns (status, seconds, killed)."""
    if proc.poll() is not None:
        return proc.returncode, 0.0, False
    start = time.monotonic()
    os.kill(proc.pid, signal.SIGTERM)
    try:
        return proc.wait(timeout=timeout), time.monotonic() - start, False
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        return proc.wait(timeout=timeout), time.monotonic() - start, True


# --------------------------------------------------------------------------- qBittorrent


class QbtInstance:
    """One qbittorrent-nox (of a QbtBuild) with its own profile dir, WebUI on 127.0.0.1:webui_port.

    Config options (written before the first start; change a stopped instance's config with
    set_conf()):
      username/password: WebUI credentials (password stored as PBKDF2);
      local_host_auth: WebUI\\LocalHostAuth (True = login required from loopback too);
      max_auth_fail_count: WebUI\\MaxAuthenticationFailCount (0 = never ban);
      reverse_proxy: turn on reverse-proxy support with trusted_proxies as the trusted list;
      listen_port / webui_port: fixed ports (default: free ones);
      extra_conf: {(section, key): value} written as well, e.g. {("Preferences",
      "WebUI\\HostHeaderValidation"): "false"};
      https: a tls_rig.Cert to serve the WebUI over HTTPS with (WebUI\\HTTPS\\*), and ca: the PEM
      file the harness trusts for it (its issuer, or the certificate itself when self-signed).
    """

    def __init__(
        self,
        profile_dir,
        build,
        username="admin",
        password="qgs-test-pass",
        local_host_auth=True,
        max_auth_fail_count=0,
        reverse_proxy=False,
        trusted_proxies="127.0.0.1",
        listen_port=None,
        webui_port=None,
        extra_conf=None,
        https=None,
        ca=None,
    ):
        assert isinstance(build, QbtBuild) and build.available, build
        self.profile_dir = Path(profile_dir).resolve()
        self.build = build
        self.username = username
        self.password = password
        self.local_host_auth = local_host_auth
        self.max_auth_fail_count = max_auth_fail_count
        self.reverse_proxy = reverse_proxy
        self.trusted_proxies = trusted_proxies
        self.initial_listen_port = listen_port or free_port()
        self.webui_port = webui_port or free_port()
        self.extra_conf = dict(extra_conf or {})
        self.https = https
        self.ca_file = str(ca or https.cert) if https else None  # what the sidecar's QBIT_CA_FILE trusts
        # The harness reaches the WebUI at 127.0.0.1 and checks the certificate where it is valid for
        # that address; a test that gives qBittorrent another one checks nothing here (the sidecar does).
        self.verify = True
        if https:
            self.verify = self.ca_file if "IP:127.0.0.1" in https.sans and not https.expired else False
        self.proc = None
        self.stdout_path = self.profile_dir / "qbittorrent-nox.out"
        self.starts = 0
        self.save_dir = self.profile_dir / "downloads"
        self._session = None
        self.write_config()

    # -- paths and config

    @property
    def conf_path(self):
        return self.profile_dir / "qBittorrent" / "config" / "qBittorrent.conf"

    @property
    def log_path(self):
        return self.profile_dir / "qBittorrent" / "data" / "logs" / "qbittorrent.log"

    @property
    def base_url(self):
        return f"{'https' if self.https else 'http'}://127.0.0.1:{self.webui_port}"

    @property
    def origin(self):
        return self.base_url

    def write_config(self):
        """Writes a fresh qBittorrent.conf from the options (the instance must be stopped)."""
        assert not self.running(), "write_config on a running qBittorrent"
        self.conf_path.parent.mkdir(parents=True, exist_ok=True)
        self.save_dir.mkdir(parents=True, exist_ok=True)
        conf = {
            "LegalNotice": {"Accepted": "true"},
            "BitTorrent": {
                "Session\\Port": str(self.initial_listen_port),
                "Session\\Interface": "lo",
                "Session\\InterfaceName": "lo",
                "Session\\InterfaceAddress": "127.0.0.1",
                "Session\\DHTEnabled": "false",
                "Session\\LSDEnabled": "false",
                "Session\\PeXEnabled": "false",
                "Session\\DefaultSavePath": str(self.save_dir),
            },
            "Network": {"PortForwardingEnabled": "false"},
            "Preferences": {
                "Connection\\ResolvePeerCountries": "false",
                "WebUI\\Address": "127.0.0.1",
                "WebUI\\Port": str(self.webui_port),
                "WebUI\\UseUPnP": "false",
                "WebUI\\Username": self.username,
                "WebUI\\Password_PBKDF2": pbkdf2_password(self.password),
                "WebUI\\LocalHostAuth": "true" if self.local_host_auth else "false",
                "WebUI\\MaxAuthenticationFailCount": str(self.max_auth_fail_count),
                "WebUI\\ReverseProxySupportEnabled": "true" if self.reverse_proxy else "false",
                "WebUI\\TrustedReverseProxiesList": self.trusted_proxies if self.reverse_proxy else "",
            },
        }
        if self.https:
            # Copies inside the profile: a build in its own root sees only that directory.
            tls_dir = self.profile_dir / "webui-tls"
            tls_dir.mkdir(exist_ok=True)
            shutil.copy(self.https.cert, tls_dir / "cert.pem")
            shutil.copy(self.https.key, tls_dir / "key.pem")
            conf["Preferences"].update({
                "WebUI\\HTTPS\\Enabled": "true",
                "WebUI\\HTTPS\\CertificatePath": str(tls_dir / "cert.pem"),
                "WebUI\\HTTPS\\KeyPath": str(tls_dir / "key.pem"),
            })
        for (section, key), value in self.extra_conf.items():
            conf.setdefault(section, {})[key] = str(value)
        parser = self._parser()
        for section, values in conf.items():
            parser[section] = values
        with open(self.conf_path, "w") as f:
            parser.write(f, space_around_delimiters=False)

    @staticmethod
    def _parser():
        parser = configparser.RawConfigParser(strict=False, delimiters=("=",))
        parser.optionxform = str  # keys are case-sensitive for Qt
        return parser

    def read_conf(self):
        """The qBittorrent.conf as {section: {key: value}} (what qBittorrent last saved)."""
        parser = self._parser()
        parser.read(self.conf_path)
        return {s: dict(parser[s]) for s in parser.sections()}

    def webui_key(self, name):
        """(section, key) of the WebUI setting name in the saved config file: [Preferences]
        WebUI\\name as the rig writes it and qBittorrent up to 5.1 keeps it, or [WebUI] name once
        a newer one (5.3 seen) has migrated the file on its first start."""
        if "WebUI" in self.read_conf():
            return "WebUI", name
        return "Preferences", "WebUI\\" + name

    def webui_conf(self, name):
        """The saved value of the WebUI setting name, wherever this version keeps it (or None)."""
        section, key = self.webui_key(name)
        return self.read_conf().get(section, {}).get(key)

    def set_webui_conf(self, name, value):
        """Changes the WebUI setting name of a stopped instance where this version reads it."""
        self.set_conf(*self.webui_key(name), value)

    def set_conf(self, section, key, value):
        """Changes one key of a stopped instance's config file (qBittorrent rewrites it on exit)."""
        assert not self.running(), "set_conf on a running qBittorrent: stop() it first"
        parser = self._parser()
        parser.read(self.conf_path)
        if not parser.has_section(section):
            parser.add_section(section)
        parser[section][key] = str(value)
        with open(self.conf_path, "w") as f:
            parser.write(f, space_around_delimiters=False)

    # -- process

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self, wait=True, timeout=QBT_START_TIMEOUT):
        """Starts qbittorrent-nox in its own session (setsid), stdin /dev/null, output to a file."""
        assert not self.running(), f"qBittorrent pid {self.pid} is already running"
        self.starts += 1
        with open(self.stdout_path, "ab") as out:
            out.write(f"---- start #{self.starts}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                self.build.command(self.profile_dir),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # setsid(): its own session and process group
                env={**os.environ, "HOME": str(self.profile_dir)},
            )
        self._session = None
        if wait:
            self.wait_ready(timeout)
        return self

    def stop(self, timeout=QBT_STOP_TIMEOUT):
        """SIGTERM by PID, waits up to timeout, SIGKILL as a last resort; asserts it exited.

        Returns the exit status. Fails the test when SIGKILL was needed.
        """
        if self.proc is None:
            return None
        rc, _, killed = _stop_pid(self.proc, timeout)
        self._session = None
        assert self.proc.poll() is not None, f"qBittorrent pid {self.pid} still running"
        if killed:
            pytest.fail(f"qBittorrent pid {self.pid} ignored SIGTERM for {timeout} s\n{self.diagnostics()}")
        return rc

    def restart(self, timeout=QBT_START_TIMEOUT):
        self.stop()
        return self.start(timeout=timeout)

    def wait_ready(self, timeout=QBT_START_TIMEOUT):
        """Polls GET /api/v2/app/version until the WebUI answers (200, or 403 when login is needed)."""

        def answered():
            if self.proc.poll() is not None:
                pytest.fail(f"qBittorrent exited with {self.proc.returncode} before answering\n{self.diagnostics()}")
            try:
                r = requests.get(self.base_url + "/api/v2/app/version", timeout=1.0, verify=self.verify)
            except requests.RequestException:
                return False
            return r.status_code in (200, 403)

        wait_for(answered, timeout, interval=0.05, message=lambda: f"qBittorrent not answering\n{self.diagnostics()}")
        return self

    # -- what this version answers

    @property
    def version(self):
        return self.build.version

    @property
    def sid_cookie(self):
        """The session cookie's name: SID up to 5.1, QBT_SID_<webui port> from 5.2."""
        return f"QBT_SID_{self.webui_port}" if self.build.at_least(5, 2) else "SID"

    def login_ok(self, r):
        """True when r (a requests.Response, or a {"status", "text"} dict) is this version's answer
        to a successful login."""
        status, text = _status_text(r)
        if self.build.at_least(5, 2):
            return status == 204
        return (status, text) == (200, "Ok.")

    def login_refused(self, r):
        """True when r is this version's answer to wrong credentials (not a ban: that is 403)."""
        status, text = _status_text(r)
        if self.build.at_least(5, 2):
            return status == 401
        return (status, text) == (200, "Fails.")

    def torrent_added(self, r):
        """True when r is this version's answer to a torrents/add that added one torrent: "Ok." up to
        5.1, a JSON summary from 5.2 on."""
        status, text = _status_text(r)
        if status != 200:
            return False
        if text == "Ok.":
            return True
        try:
            return json.loads(text).get("success_count") == 1
        except (ValueError, AttributeError):
            return False

    # -- API

    def session(self):
        """A requests.Session logged in when a login is needed (cached until restart)."""
        if self._session is None:
            self._session = self.api_login()
        return self._session

    def api_login(self, username=None, password=None):
        """Logs in through POST /api/v2/auth/login; returns the requests.Session holding the SID."""
        s = requests.Session()
        s.verify = self.verify
        r = s.post(
            self.base_url + "/api/v2/auth/login",
            data={"username": username or self.username, "password": password or self.password},
            timeout=10,
            verify=self.verify,
        )
        assert self.login_ok(r), f"login failed: {r.status_code} {r.text!r}"
        assert self.sid_cookie in s.cookies, f"no {self.sid_cookie} cookie after login: {r.headers}"
        return s

    def api(self, method, path, **kwargs):
        """A request to the WebUI with the logged-in session; returns the requests.Response."""
        kwargs.setdefault("timeout", 10)
        kwargs.setdefault("verify", self.verify)  # per request: REQUESTS_CA_BUNDLE beats a session's
        return self.session().request(method, self.base_url + path, **kwargs)

    def preferences(self):
        r = self.api("GET", "/api/v2/app/preferences")
        assert r.status_code == 200, f"preferences: {r.status_code} {r.text!r}"
        return r.json()

    def get_pref(self, name):
        return self.preferences()[name]

    def set_prefs(self, prefs):
        r = self.api("POST", "/api/v2/app/setPreferences", data={"json": json.dumps(prefs)})
        assert r.status_code == 200, f"setPreferences {prefs}: {r.status_code} {r.text!r}"

    def listen_port(self):
        return self.get_pref("listen_port")

    def wait_listen_port(self, port, timeout=10.0):
        """Waits until qBittorrent reports listen_port == port."""
        return wait_for(
            lambda: self.listen_port() == port,
            timeout,
            interval=0.05,
            message=lambda: f"listen_port is {self.listen_port()}, expected {port}",
        )

    def torrents(self):
        r = self.api("GET", "/api/v2/torrents/info")
        assert r.status_code == 200, f"torrents/info: {r.status_code} {r.text!r}"
        return r.json()

    def add_torrent(self, torrent, save_dir=None, write_content=True, timeout=10.0):
        """Adds a Torrent by multipart upload and waits until it is in the list; returns its entry."""
        save_dir = Path(save_dir or self.save_dir)
        if write_content:
            torrent.write_content(save_dir)
        r = self.api(
            "POST",
            "/api/v2/torrents/add",
            files={"torrents": (torrent.name + ".torrent", torrent.data, "application/x-bittorrent")},
            data={"savepath": str(save_dir)},
        )
        assert self.torrent_added(r), f"torrents/add: {r.status_code} {r.text!r}"
        return self.wait_torrent(torrent.info_hash, timeout)

    def wait_torrent(self, info_hash, timeout=10.0):
        def found():
            return next((t for t in self.torrents() if t["hash"] == info_hash), None)

        return wait_for(found, timeout, interval=0.05, message=f"torrent {info_hash} not listed")

    def export_torrent(self, info_hash):
        r = self.api("GET", "/api/v2/torrents/export", params={"hash": info_hash})
        assert r.status_code == 200, f"torrents/export: {r.status_code} {r.text!r}"
        return r.content

    # -- logs

    def log_text(self):
        """qBittorrent's own log file (empty string before it was created)."""
        try:
            return self.log_path.read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def stdout_text(self):
        try:
            return self.stdout_path.read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def wait_log(self, needle, timeout=10.0, since=0):
        """Waits until needle appears in the log after character offset since; returns the line."""

        def found():
            text = self.log_text()[since:]
            return next((line for line in text.splitlines() if needle in line), None)

        return wait_for(found, timeout, interval=0.05, message=lambda: f"{needle!r} not in log:\n{self.log_text()}")

    def log_barrier(self, timeout=10.0):
        """Makes qBittorrent log a unique line and waits for it; returns the whole log text.

        Everything qBittorrent logged before the barrier is then in the file, so a test can
        assert that something was NOT logged. The line comes from a direct request with a
        mismatching Referer (qBittorrent 4.5 logs "Referer header & Target origin mismatch!"
        and answers 401, whether or not a login is needed)."""
        token = f"log-barrier-{secrets.token_hex(8)}.invalid"
        r = requests.get(self.base_url + "/api/v2/app/version", headers={"Referer": f"http://{token}/"}, timeout=5,
                         verify=self.verify)
        assert r.status_code == 401, f"log barrier request: {r.status_code} {r.text!r}"
        self.wait_log(token, timeout)
        return self.log_text()

    @staticmethod
    def without_barriers(text):
        """text minus the lines log_barrier() caused."""
        return "\n".join(line for line in text.splitlines() if "log-barrier-" not in line)

    def diagnostics(self):
        return (
            f"profile {self.profile_dir}, WebUI {self.base_url}, pid {self.pid}\n"
            f"--- stdout/stderr:\n{self.stdout_text()[-4000:]}\n--- log:\n{self.log_text()[-4000:]}"
        )


# --------------------------------------------------------------------------- the sidecar


def start_sidecar(qbt_instance, work_dir, n=0, **overrides):
    """Starts the sidecar (conftest.start_daemon) in front of qbt_instance (or None: QBIT_ADDR left to
    overrides), allowed in from loopback, and waits until GET /healthz answers 200."""
    env = {"ALLOWED_IPS": "127.0.0.1,::1", "PORT_FILE": Path(work_dir) / "forwarded_port"}
    if qbt_instance is not None:
        env["QBIT_ADDR"] = qbt_instance.base_url
        if qbt_instance.https:
            env["QBIT_CA_FILE"] = qbt_instance.ca_file
    env.update(overrides)
    return start_daemon(bin_path(), work_dir, n,
                        ready=lambda d: requests.get(d.base_url + "/healthz", timeout=1.0,
                                                     verify=d.verify).status_code == 200,
                        **env)


# --- what the port-sync suites ask of a sidecar and its qBittorrent

APPLY_TIMEOUT = 5.0  # a file change reaching qBittorrent; the goal is far lower (bench/sync-latency.py)


def sync_call(sc, method="GET", timeout=30.0, retry_429=True):
    """Calls /sync; returns (status, parsed JSON body, seconds taken). Waits out the once-a-second
    limit (polling until the call is no longer answered 429) unless retry_429 is False."""

    def call():
        t0 = time.monotonic()
        r = requests.request(method, sc.base_url + "/sync", timeout=timeout, verify=sc.verify)
        if r.status_code == 429 and retry_429:
            return None
        return [r, time.monotonic() - t0]  # a list: a Response with a 4xx/5xx status is falsy

    r, took = wait_for(call, 5.0, interval=0.1, message="/sync answered 429 for 5 s") if retry_429 else call()
    assert r.headers.get("content-type", "").startswith("application/json"), f"/sync: {r.headers} {r.text!r}"
    try:
        return r.status_code, r.json(), took
    except ValueError:
        pytest.fail(f"/sync answered {r.status_code} with a body that is not JSON: {r.text!r}")


def readyz(sc):
    r = requests.get(sc.base_url + "/readyz", timeout=10, verify=sc.verify)
    return r.status_code, r.text


def wait_ready(sc, timeout=APPLY_TIMEOUT):
    return wait_for(lambda: readyz(sc)[0] == 200, timeout, interval=0.05,
                    message=lambda: f"/readyz still {readyz(sc)}; sidecar log:\n{sc.log()}")


def wait_port(q, sc, port, timeout=APPLY_TIMEOUT):
    """Waits until qBittorrent reports listen_port == port; on failure shows the sidecar's log."""
    return wait_for(lambda: q.listen_port() == port, timeout, interval=0.02,
                    message=lambda: f"listen_port is {q.listen_port()}, expected {port}; sidecar log:\n{sc.log()}")


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def qbt(tmp_path, qbt_build):
    """Factory: qbt(start=True, **QbtInstance options) -> QbtInstance, started and answering.

    Each call gets its own profile dir; all run the test's qBittorrent build (qbt_build, one per
    parametrized run). All are stopped by PID at the end of the test.
    """
    instances = []

    def make(start=True, **options):
        q = QbtInstance(tmp_path / f"qbt{len(instances)}", qbt_build, **options)
        instances.append(q)
        if start:
            q.start()
        return q

    yield make

    problems = []
    for q in instances:
        if not q.running():
            continue
        rc, _, killed = _stop_pid(q.proc, QBT_STOP_TIMEOUT)
        if killed:
            problems.append(f"qBittorrent pid {q.pid} ignored SIGTERM\n{q.diagnostics()}")
    if problems:
        pytest.fail("\n".join(problems))


@pytest.fixture
def sidecar(tmp_path):
    """Factory: sidecar(qbt_instance, **env overrides) -> a conftest.Daemon with /healthz answering 200.

    Each sidecar the test did not stop itself is stopped at the end with SIGTERM and must exit 0.
    """
    started = []

    def make(qbt_instance, **overrides):
        sc = start_sidecar(qbt_instance, tmp_path / "sidecar", len(started), **overrides)
        started.append(sc)
        return sc

    yield make
    stop_daemons(started)
