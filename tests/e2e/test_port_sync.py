"""Port sync against a real qbittorrent-nox, each build the suite has (qbt_builds.py: the host's
4.5.2 or 5.1.0, Debian sid's 5.3.0): Gluetun's port file -> qBittorrent's listen_port.

One scenario per test. Every qBittorrent has its own profile (the `qbt` fixture of qbt_rig.py),
every sidecar is the real binary ($QGS_BIN) and must exit 0 on SIGTERM at the end (the `sidecar`
fixture checks that). Waits are on conditions with deadlines; the only fixed pauses are part of a
scenario (how long the VPN stays down) and are marked as such.

What qBittorrent logs when its listen port changes (4.5.2 and 5.3.0 alike) (read from its log after a
setPreferences; an unchanged listen_port logs nothing):
    (N) ... - Trying to listen on the following list of IP addresses: "127.0.0.1:40001"
    (I) ... - Successfully listening on IP. IP: "127.0.0.1". Port: "TCP/40001"
    (I) ... - Successfully listening on IP. IP: "127.0.0.1". Port: "UTP/40001"
and for a refused login:
    (W) ... - WebAPI login failure. Reason: invalid credentials, attempt count: 1, IP: 127.0.0.1, ...
"""

import os
import re
import signal
import socket
import subprocess
import threading
import time

import pytest
import requests

from conftest import port_file, write_in_place
from qbt_rig import (  # noqa: F401  (qbt and sidecar are pytest fixtures)
    APPLY_TIMEOUT,
    free_port,
    qbt,
    readyz,
    sidecar,
    sync_call,
    wait_for,
    wait_port,
    wait_ready,
)

# qBittorrent started late or restarted: the sidecar retries after 1, 2, 4, 8 s (+-20 %).
RETRY_TIMEOUT = 15.0

LISTEN_RE = re.compile(r'Trying to listen on the following list of IP addresses: "127\.0\.0\.1:(\d+)"')
LOGIN_FAILURE = "WebAPI login failure"


# --------------------------------------------------------------------------- helpers


def write_atomic(path, text):
    """An atomic write: a temporary file in the same directory, then renamed over the file."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def wait_sidecar_log(sc, needle, timeout=APPLY_TIMEOUT, count=1):
    """Waits until needle occurs at least count times in the sidecar's log."""
    return wait_for(
        lambda: sc.log().count(needle) >= count,
        timeout,
        interval=0.02,
        message=lambda: f"{needle!r} not {count} times in the sidecar's log:\n{sc.log()}",
    )


def listen_ports_logged(q, since):
    """The ports qBittorrent tried to listen on, in order, after character offset since of its log."""
    return [int(p) for p in LISTEN_RE.findall(q.log_text()[since:])]


def start_in_sync(qbt, sidecar, tmp_path, qbt_options=None, **env):
    """A qBittorrent (no login needed from loopback unless qbt_options say otherwise), a port file
    with a fresh port P, a sidecar that has applied it. Returns (q, sc, path, P)."""
    options = {"local_host_auth": False}
    options.update(qbt_options or {})
    q = qbt(**options)
    port = free_port()
    path = port_file(tmp_path, port)
    sc = sidecar(q, PORT_FILE=path, **env)
    wait_port(q, sc, port)
    wait_ready(sc)
    return q, sc, path, port


class SilentServer:
    """A TCP listener that accepts connections and never answers (a hung qBittorrent)."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.stopping = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)

    def close(self):
        self.stopping = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        for c in self.conns:
            c.close()


@pytest.fixture
def silent_server():
    s = SilentServer()
    yield s
    s.close()


def closed_port_addr():
    """A QBIT_ADDR where nothing listens (connections are refused)."""
    return f"http://127.0.0.1:{free_port()}"


# --------------------------------------------------------------------------- start-up and changes


def test_startup_sync_applies_existing_file(qbt, sidecar, tmp_path):
    q = qbt(local_host_auth=False)
    port = free_port()
    assert q.listen_port() != port
    path = port_file(tmp_path, port)  # written before the sidecar starts
    sc = sidecar(q, PORT_FILE=path)
    wait_port(q, sc, port)
    wait_ready(sc)
    status, body, _ = sync_call(sc)
    assert status == 200, body
    assert body["desired_port"] == port and body["qbittorrent_port"] == port, body


def test_file_change_applied_quickly(qbt, sidecar, tmp_path):
    q, sc, path, _ = start_in_sync(qbt, sidecar, tmp_path)
    latencies = []
    for _ in range(5):
        new = free_port()
        start = time.monotonic()
        write_in_place(path, str(new))
        wait_port(q, sc, new, timeout=APPLY_TIMEOUT)
        latencies.append(time.monotonic() - start)
    # Only a sanity bound (polling qBittorrent adds its own delay); bench/ measures the latency.
    assert max(latencies) < 2.0, f"changes took {latencies} s to reach qBittorrent"


def test_in_place_write_like_gluetun(qbt, sidecar, tmp_path):
    q, sc, path, old = start_in_sync(qbt, sidecar, tmp_path)
    new = free_port()
    write_in_place(path, str(new))  # truncate, then write; no trailing newline
    wait_port(q, sc, new)
    wait_ready(sc)
    assert path.read_bytes() == str(new).encode()


def test_multi_port_file_takes_first(qbt, sidecar, tmp_path):
    q, sc, path, _ = start_in_sync(qbt, sidecar, tmp_path)
    p1, p2, p3 = sorted(free_port() for _ in range(3))
    write_in_place(path, f"{p1}\n{p2}\n{p3}")  # ProtonVPN: sorted, joined by \n, no trailing newline
    wait_port(q, sc, p1)
    status, body, _ = sync_call(sc)
    assert status == 200 and body["desired_port"] == p1, body


def test_multi_port_file_at_startup(qbt, sidecar, tmp_path):
    q = qbt(local_host_auth=False)
    p1, p2 = sorted(free_port() for _ in range(2))
    path = port_file(tmp_path)
    write_in_place(path, f"{p1}\n{p2}")
    sc = sidecar(q, PORT_FILE=path)
    wait_port(q, sc, p1)


def test_burst_of_changes_newest_port_wins(qbt, sidecar, tmp_path):
    """Many writes while reconciles are in flight: qBittorrent ends on the last port, and stays."""
    q, sc, path, _ = start_in_sync(qbt, sidecar, tmp_path)
    ports = [free_port() for _ in range(20)]
    for p in ports:
        write_in_place(path, str(p))
    last = ports[-1]
    wait_port(q, sc, last)
    status, body, _ = sync_call(sc)
    assert status == 200 and body["desired_port"] == last and body["qbittorrent_port"] == last, body
    assert q.listen_port() == last


def test_rename_over(qbt, sidecar, tmp_path):
    q, sc, path, _ = start_in_sync(qbt, sidecar, tmp_path)
    new = free_port()
    write_atomic(path, str(new))
    wait_port(q, sc, new)
    newer = free_port()
    write_atomic(path, str(newer))
    wait_port(q, sc, newer)


def test_kubernetes_symlink_swap(qbt, sidecar, tmp_path):
    """A ConfigMap/Secret-style volume: dir/forwarded_port -> ..data/forwarded_port, ..data -> ..TS;
    an update writes a new ..TS2 and renames a new symlink over ..data."""
    q = qbt(local_host_auth=False)
    d = tmp_path / "volume"
    d.mkdir()
    first, second = free_port(), free_port()
    (d / "..2024_01_01_00_00_00.1").mkdir()
    (d / "..2024_01_01_00_00_00.1" / "forwarded_port").write_text(str(first))
    os.symlink("..2024_01_01_00_00_00.1", d / "..data")
    os.symlink("..data/forwarded_port", d / "forwarded_port")
    sc = sidecar(q, PORT_FILE=d / "forwarded_port")
    wait_port(q, sc, first)

    (d / "..2024_01_01_00_05_00.2").mkdir()
    (d / "..2024_01_01_00_05_00.2" / "forwarded_port").write_text(str(second))
    os.symlink("..2024_01_01_00_05_00.2", d / "..data_tmp")
    os.replace(d / "..data_tmp", d / "..data")  # rename(2) of the new symlink over the old one
    (d / "..2024_01_01_00_00_00.1" / "forwarded_port").unlink()
    (d / "..2024_01_01_00_00_00.1").rmdir()
    wait_port(q, sc, second)
    wait_ready(sc)


def test_in_place_rewrite_of_same_port_is_not_a_reconnect(qbt, sidecar, tmp_path):
    """The empty moment inside one truncate-then-write is not a forwarding restart: no re-bind."""
    q, sc, path, port = start_in_sync(qbt, sidecar, tmp_path)
    since = len(q.log_barrier())
    for _ in range(5):
        write_in_place(path, str(port))
    assert_in_sync_not_rebound(q, sc, since, "an in-place rewrite of the same port")


def assert_in_sync_not_rebound(q, sc, since, after):
    """/sync says in sync, and qBittorrent has listened on no other port since the log offset since."""
    status, body, _ = sync_call(sc)
    assert status == 200 and body["outcome"] == "in_sync", body
    q.log_barrier()
    logged = listen_ports_logged(q, since)
    assert logged == [], f"qBittorrent re-bound after {after}: {logged}\n{sc.log()}"
    assert "re-binding" not in sc.log()


def test_a_writer_stalled_between_truncate_and_write_is_not_a_reconnect(qbt, sidecar, tmp_path):
    """A loaded machine can stall Gluetun between its truncate and its write: the sidecar reads the
    empty file meanwhile (and says so), yet the same port back a moment later is still one rewrite,
    not a forwarding restart: no re-bind."""
    q, sc, path, port = start_in_sync(qbt, sidecar, tmp_path)
    since = len(q.log_barrier())
    empties = sc.log().count("port file is empty")
    announced = sc.log().count(f"forwarded port is {port}")
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    try:
        wait_sidecar_log(sc, "port file is empty", count=empties + 1)  # it read the file empty
        os.write(fd, str(port).encode())
    finally:
        os.close(fd)
    wait_sidecar_log(sc, f"forwarded port is {port}", count=announced + 1)
    assert_in_sync_not_rebound(q, sc, since, "a stalled rewrite of the same port")


# --------------------------------------------------------------------------- authentication


def test_no_credentials_with_localhost_bypass(qbt, sidecar, tmp_path):
    q = qbt(local_host_auth=False)
    port = free_port()
    path = port_file(tmp_path, port)
    sc = sidecar(q, PORT_FILE=path, QBIT_USER=None, QBIT_PASS=None)
    wait_port(q, sc, port)
    wait_ready(sc)
    assert "logged in" not in sc.log()


def test_credentials_with_local_host_auth(qbt, sidecar, tmp_path):
    q = qbt(local_host_auth=True)
    # Without a session qBittorrent refuses the API: the login is really needed.
    assert requests.get(q.base_url + "/api/v2/app/preferences", timeout=5).status_code == 403
    port = free_port()
    path = port_file(tmp_path, port)
    sc = sidecar(q, PORT_FILE=path, QBIT_USER=q.username, QBIT_PASS=q.password)
    wait_port(q, sc, port)
    wait_ready(sc)
    new = free_port()
    write_in_place(path, str(new))  # the session is reused
    wait_port(q, sc, new)
    assert sc.log().count("logged in") == 1, sc.log()


def test_login_required_but_no_credentials(qbt, sidecar, tmp_path):
    q = qbt(local_host_auth=True)
    original = q.listen_port()
    path = port_file(tmp_path, free_port())
    sc = sidecar(q, PORT_FILE=path, QBIT_USER=None, QBIT_PASS=None)
    status, body, _ = sync_call(sc)
    assert status == 401, body
    assert "QBIT_USER" in body["message"], body
    assert q.listen_port() == original
    assert readyz(sc)[0] == 503


def test_wrong_password_clear_error_and_no_ban(qbt, sidecar, tmp_path):
    q = qbt(local_host_auth=True, max_auth_fail_count=5)
    original = q.listen_port()
    path = port_file(tmp_path, free_port())
    sc = sidecar(q, PORT_FILE=path, QBIT_USER=q.username, QBIT_PASS="not-the-password")
    wait_sidecar_log(sc, "wrong QBIT_USER or QBIT_PASS")

    status, body, _ = sync_call(sc)
    assert status == 401, body
    assert body["outcome"] == "auth_failed", body
    assert "wrong QBIT_USER or QBIT_PASS" in body["message"], body
    code, text = readyz(sc)
    assert code == 503 and "QBIT_USER" in text, text

    # More triggers, each of which a naive client would answer with another login: /sync (each a
    # second apart, the limit) and file changes. Five failures would ban 127.0.0.1 for an hour.
    for _ in range(4):
        write_in_place(path, str(free_port()))
        status, body, _ = sync_call(sc)
        assert status == 401, body

    log = q.log_barrier()
    failures = log.count(LOGIN_FAILURE)
    assert 1 <= failures <= 2, f"{failures} failed logins in ~5 s: the sidecar retries too fast\n{log}"
    # A correct login through qBittorrent's API still works: 127.0.0.1 is not banned.
    s = q.api_login()
    assert s.get(q.base_url + "/api/v2/app/version", timeout=5).status_code == 200
    assert q.listen_port() == original
    assert sc.log().count("wrong QBIT_USER or QBIT_PASS") == 1, sc.log()


def rotate_api_key(q):
    """A new WebUI API key, made through qBittorrent's own API (5.2+), as a user makes one."""
    if not q.build.at_least(5, 2):
        pytest.skip(f"API keys came with qBittorrent 5.2; this one is {q.build.version_text}")
    r = q.api("POST", "/api/v2/app/rotateAPIKey")
    assert r.status_code == 200, (r.status_code, r.text)
    key = r.json()["apiKey"]
    assert key.startswith("qbt_"), key
    return key


def test_api_key_syncs_without_a_login(qbt, sidecar, tmp_path):
    q = qbt(local_host_auth=True)
    key = rotate_api_key(q)
    since = len(q.log_barrier())
    port = free_port()
    path = port_file(tmp_path, port)
    sc = sidecar(q, PORT_FILE=path, QBIT_API_KEY=key)
    wait_port(q, sc, port)
    wait_ready(sc)
    new = free_port()
    write_in_place(path, str(new))
    wait_port(q, sc, new)
    # The key replaced the login: qBittorrent logged no login attempt at all after the test's own.
    logged = q.without_barriers(q.log_barrier()[since:])
    assert "WebAPI login" not in logged, logged
    assert "logged in" not in sc.log(), sc.log()


def test_wrong_api_key_named_and_nothing_applied(qbt, sidecar, tmp_path):
    q = qbt(local_host_auth=True)
    rotate_api_key(q)  # qBittorrent has a key, just not this one
    original = q.listen_port()
    path = port_file(tmp_path, free_port())
    sc = sidecar(q, PORT_FILE=path, QBIT_API_KEY="qbt_" + "0" * 32)
    wait_sidecar_log(sc, "QBIT_API_KEY")
    status, body, _ = sync_call(sc)
    assert status == 401, body
    assert "QBIT_API_KEY" in body["message"], body
    assert q.listen_port() == original


def test_sync_during_the_first_refused_login_is_answered(qbt, sidecar, tmp_path):
    """A /sync that arrives while the start-up login is in flight (qBittorrent takes ~60 ms to check
    a password: PBKDF2) must be answered when that login is refused, not after the login backoff.

    The sidecar starts its first reconcile as soon as it listens and the fixture returns as soon as
    /healthz answers, so the /sync below lands inside that login almost every time; when it does
    not, the test still checks the plain answer."""
    q = qbt(local_host_auth=True, max_auth_fail_count=5)
    path = port_file(tmp_path, free_port())
    sc = sidecar(q, PORT_FILE=path, QBIT_USER=q.username, QBIT_PASS="not-the-password")
    raced = "wrong QBIT_USER" not in sc.log()
    start = time.monotonic()
    try:
        r = requests.get(sc.base_url + "/sync", timeout=10)
    except requests.Timeout:
        pytest.fail(
            f"/sync sent during the first login (raced={raced}) got no answer in 10 s "
            f"(the next login is minutes away); sidecar log:\n{sc.log()}"
        )
    assert r.status_code == 401, r.text
    assert time.monotonic() - start < 5.0


# --------------------------------------------------------------------------- qBittorrent's life


def test_qbittorrent_started_after_sidecar(qbt, sidecar, tmp_path):
    q = qbt(start=False, local_host_auth=False)
    port = free_port()
    path = port_file(tmp_path, port)
    sc = sidecar(q, PORT_FILE=path)
    code, text = readyz(sc)
    assert code == 503, text
    wait_sidecar_log(sc, "port sync failed")  # it tried and failed at least once
    q.start()
    wait_port(q, sc, port, timeout=RETRY_TIMEOUT)
    wait_ready(sc)


@pytest.mark.parametrize("auth", ["bypass", "login"])
def test_qbittorrent_restarted_with_other_port(qbt, sidecar, tmp_path, auth):
    if auth == "login":
        q = qbt(local_host_auth=True)
        creds = {"QBIT_USER": q.username, "QBIT_PASS": q.password}
    else:
        q = qbt(local_host_auth=False)
        creds = {}
    port = free_port()
    path = port_file(tmp_path, port)
    sc = sidecar(q, PORT_FILE=path, RESYNC_INTERVAL=1, **creds)
    wait_port(q, sc, port)

    q.stop()
    other = free_port()
    q.set_conf("BitTorrent", "Session\\Port", other)
    since = len(q.log_text())
    q.start()
    # qBittorrent came up on the other port (its log), and the sidecar put the forwarded one back.
    q.wait_log(f'"127.0.0.1:{other}"', since=since)
    wait_port(q, sc, port, timeout=RETRY_TIMEOUT)
    wait_for(lambda: listen_ports_logged(q, since)[-1:] == [port], APPLY_TIMEOUT)
    assert listen_ports_logged(q, since)[0] == other
    wait_ready(sc)


def test_readyz_503_while_qbittorrent_is_down(qbt, sidecar, tmp_path):
    q, sc, path, port = start_in_sync(qbt, sidecar, tmp_path, RESYNC_INTERVAL=1)
    q.stop()
    wait_for(lambda: readyz(sc)[0] == 503, APPLY_TIMEOUT, interval=0.05, message=lambda: readyz(sc))
    status, body, _ = sync_call(sc)
    assert status == 502, body
    q.start()
    wait_ready(sc, timeout=RETRY_TIMEOUT)
    assert q.listen_port() == port


def test_port_changed_behind_the_sidecars_back_is_reapplied_by_recheck(qbt, sidecar, tmp_path):
    q, sc, path, port = start_in_sync(qbt, sidecar, tmp_path, RESYNC_INTERVAL=1)
    q.set_prefs({"listen_port": free_port()})  # someone changes it in the WebUI
    wait_port(q, sc, port, timeout=APPLY_TIMEOUT)


# --------------------------------------------------------------------------- bad files


def test_garbage_is_ignored_logged_once_then_valid_port_applied(qbt, sidecar, tmp_path):
    q, sc, path, port = start_in_sync(qbt, sidecar, tmp_path)
    write_in_place(path, "hello")
    wait_sidecar_log(sc, "hello")
    status, body, _ = sync_call(sc)
    assert status == 422, body
    assert body["file"] == "invalid", body
    # The same garbage again: not logged again. Renamed into place, so that no empty moment (a stalled
    # in-place writer) comes between the two, which would rightly make it news again.
    write_atomic(path, "hello")
    status, body, _ = sync_call(sc)
    assert status == 422 and body["file"] == "invalid", body
    assert q.listen_port() == port
    assert sc.log().count("hello") == 1, sc.log()

    new = free_port()
    write_in_place(path, str(new))
    wait_port(q, sc, new)
    wait_ready(sc)


@pytest.mark.parametrize("text", ["00080", "040000", "01"])
def test_leading_zeros_are_refused_whatever_the_length(qbt, sidecar, tmp_path, text):
    """Gluetun writes plain decimal; one rule for every length (00080 was taken as 80, 040000 refused)."""
    q, sc, path, port = start_in_sync(qbt, sidecar, tmp_path)
    write_in_place(path, text)
    wait_sidecar_log(sc, f'"{text}"')
    status, body, _ = sync_call(sc)
    assert status == 422 and body["file"] == "invalid", body
    assert "leading zeros" in body["message"], body
    assert q.listen_port() == port


def test_huge_file_is_ignored(qbt, sidecar, tmp_path):
    q, sc, path, port = start_in_sync(qbt, sidecar, tmp_path)
    write_in_place(path, "7" * (1 << 20))
    status, body, _ = sync_call(sc)
    assert status == 422, body
    assert body["file"] == "invalid", body
    assert q.listen_port() == port
    # the log line is bounded, not 1 MiB of digits
    assert "7" * 100 not in sc.log(), "the whole file was logged"
    new = free_port()
    write_in_place(path, str(new))
    wait_port(q, sc, new)


def test_empty_file_keeps_port(qbt, sidecar, tmp_path):
    q, sc, path, port = start_in_sync(qbt, sidecar, tmp_path)
    write_in_place(path, "")
    wait_sidecar_log(sc, "port file is empty")
    status, body, _ = sync_call(sc)
    assert status == 422, body
    assert body["file"] == "empty", body
    assert q.listen_port() == port
    code, text = readyz(sc)
    assert "empty" in text, text


def test_deleted_file_keeps_port(qbt, sidecar, tmp_path):
    q, sc, path, port = start_in_sync(qbt, sidecar, tmp_path)
    path.unlink()
    wait_sidecar_log(sc, "port file is missing")
    status, body, _ = sync_call(sc)
    assert status == 422, body
    assert body["file"] == "missing", body
    assert q.listen_port() == port
    new = free_port()
    write_atomic(path, str(new))
    wait_port(q, sc, new)


def test_directory_created_late(qbt, sidecar, tmp_path):
    q = qbt(local_host_auth=False)
    path = tmp_path / "late" / "gluetun" / "forwarded_port"
    sc = sidecar(q, PORT_FILE=path)
    # No port file yet and qBittorrent answers: ready (so the WebUI is reachable meanwhile).
    wait_ready(sc)
    status, body, _ = sync_call(sc)
    assert status == 422 and body["file"] == "missing", body
    port = free_port()
    path.parent.mkdir(parents=True)
    write_in_place(path, str(port))
    wait_port(q, sc, port)
    wait_ready(sc)


def test_directory_removed_and_recreated(qbt, sidecar, tmp_path):
    q, sc, path, _ = start_in_sync(qbt, sidecar, tmp_path)
    path.unlink()
    path.parent.rmdir()
    wait_sidecar_log(sc, "port file is missing")
    port = free_port()
    path.parent.mkdir()
    write_in_place(path, str(port))
    wait_port(q, sc, port)


# --------------------------------------------------------------------------- /sync and /readyz


def test_sync_200_in_sync(qbt, sidecar, tmp_path):
    q, sc, path, port = start_in_sync(qbt, sidecar, tmp_path)
    status, body, _ = sync_call(sc)
    assert status == 200, body
    assert body["desired_port"] == port, body
    assert body["qbittorrent_port"] == port, body
    assert body["outcome"] == "in_sync", body
    assert body["file"] == "port", body
    status, body, _ = sync_call(sc, method="POST")
    assert status == 200 and body["outcome"] == "in_sync", body


def test_sync_applies_a_change_it_reads(qbt, sidecar, tmp_path):
    """/sync re-reads the file: its answer already reflects a port written just before."""
    q, sc, path, _ = start_in_sync(qbt, sidecar, tmp_path)
    new = free_port()
    write_in_place(path, str(new))
    status, body, _ = sync_call(sc)
    assert status == 200, body
    assert body["desired_port"] == new and body["qbittorrent_port"] == new, body
    assert q.listen_port() == new


def test_sync_422_file_missing(qbt, sidecar, tmp_path):
    q = qbt(local_host_auth=False)
    original = q.listen_port()
    sc = sidecar(q, PORT_FILE=tmp_path / "nothing-here" / "forwarded_port")
    status, body, _ = sync_call(sc)
    assert status == 422, body
    assert body["file"] == "missing", body
    assert body["desired_port"] is None, body
    assert q.listen_port() == original


def test_sync_502_qbittorrent_unreachable(sidecar, tmp_path):
    path = port_file(tmp_path, free_port())
    sc = sidecar(None, PORT_FILE=path, QBIT_ADDR=closed_port_addr())
    status, body, _ = sync_call(sc)
    assert status == 502, body
    assert body["outcome"] == "unreachable", body
    assert readyz(sc)[0] == 503


def test_sync_504_qbittorrent_not_answering(sidecar, tmp_path, silent_server):
    path = port_file(tmp_path, free_port())
    sc = sidecar(None, PORT_FILE=path, QBIT_ADDR=f"http://127.0.0.1:{silent_server.port}", UPSTREAM_TIMEOUT=1)
    status, body, _ = sync_call(sc)
    assert status == 504, body
    assert body["outcome"] == "timeout", body


def test_sync_429_when_called_twice_within_a_second(qbt, sidecar, tmp_path):
    q, sc, path, port = start_in_sync(qbt, sidecar, tmp_path)
    status, body, _ = sync_call(sc)
    assert status == 200, body
    status, body, _ = sync_call(sc, retry_429=False)
    assert status == 429, body


def test_loopback_outside_the_allow_list_gets_sync_and_probes_only(qbt, sidecar, tmp_path):
    """Gluetun's hooks call /sync from the network namespace it shares with the sidecar, so loopback
    gets /sync (and the probes) whatever ALLOWED_IPS says; the WebUI and /metrics stay behind the list.
    (A client from elsewhere outside the list gets 403 on /sync too: tests/unit/test_request.c.)"""
    q = qbt(local_host_auth=False)
    port = free_port()
    path = port_file(tmp_path, port)
    sc = sidecar(q, PORT_FILE=path, ALLOWED_IPS="10.0.0.0/8")
    wait_port(q, sc, port)
    status, body, _ = sync_call(sc)
    assert status == 200 and body["outcome"] == "in_sync", body
    status, body, _ = sync_call(sc, method="POST")
    assert status == 200, body
    for target in ("/api/v2/app/version", "/metrics", "/"):
        r = requests.get(sc.base_url + target, timeout=10)
        assert r.status_code == 403, (target, r.text)
    wait_ready(sc)  # /readyz answers 200 to 127.0.0.1 though it is not allowed


def test_readyz_503_until_qbittorrent_confirmed(qbt, sidecar, tmp_path):
    q = qbt(start=False, local_host_auth=False)
    port = free_port()
    path = port_file(tmp_path, port)
    sc = sidecar(q, PORT_FILE=path)
    code, text = readyz(sc)
    assert code == 503, text
    q.start()
    wait_ready(sc, timeout=RETRY_TIMEOUT)
    assert q.listen_port() == port


def test_startup_never_waits_for_qbittorrent(sidecar, tmp_path):
    path = port_file(tmp_path, free_port())
    start = time.monotonic()
    sc = sidecar(None, PORT_FILE=path, QBIT_ADDR=closed_port_addr())  # returns once /healthz is 200
    assert time.monotonic() - start < 2.0
    assert requests.get(sc.base_url + "/healthz", timeout=2).status_code == 200
    code, text = readyz(sc)
    assert code == 503, text


def test_startup_never_waits_for_a_hung_qbittorrent(sidecar, tmp_path, silent_server):
    path = port_file(tmp_path, free_port())
    start = time.monotonic()
    sc = sidecar(None, PORT_FILE=path, QBIT_ADDR=f"http://127.0.0.1:{silent_server.port}")
    assert time.monotonic() - start < 2.0
    code, text = readyz(sc)
    assert code == 503, text


# --------------------------------------------------------------------------- re-bind on reconnect


def vpn_reconnect(path, sc, port, down_for=1.5):
    """Gluetun 3.41 on a VPN reconnect: the file is emptied, stays empty, then gets the port again."""
    empties = sc.log().count("port file is empty")
    write_in_place(path, "")
    wait_sidecar_log(sc, "port file is empty", count=empties + 1)
    time.sleep(down_for)  # the VPN is down this long: part of the scenario, not a wait for a condition
    write_in_place(path, str(port))


def test_rebind_on_reconnect(qbt, sidecar, tmp_path):
    q, sc, path, port = start_in_sync(qbt, sidecar, tmp_path)
    since = len(q.log_barrier())
    vpn_reconnect(path, sc, port)

    def rebound():
        ports = listen_ports_logged(q, since)
        return len(ports) >= 2 and ports[-1] == port and any(p != port for p in ports[:-1])

    wait_for(
        rebound,
        APPLY_TIMEOUT,
        interval=0.05,
        message=lambda: f"no re-bind in qBittorrent's log: {listen_ports_logged(q, since)}\n{sc.log()}",
    )
    assert "re-binding" in sc.log()
    wait_port(q, sc, port)
    wait_ready(sc)
    status, body, _ = sync_call(sc)
    assert status == 200 and body["outcome"] == "in_sync", body
    # exactly one detour
    q.log_barrier()
    ports = listen_ports_logged(q, since)
    assert len(ports) == 2 and ports[0] != port and ports[1] == port, ports


def test_rebind_after_file_deleted_and_recreated(qbt, sidecar, tmp_path):
    """Gluetun before 3.41 deleted the file when forwarding stopped."""
    q, sc, path, port = start_in_sync(qbt, sidecar, tmp_path)
    since = len(q.log_barrier())
    path.unlink()
    wait_sidecar_log(sc, "port file is missing")
    time.sleep(1.5)  # the VPN is down this long: part of the scenario
    write_in_place(path, str(port))
    wait_for(
        lambda: listen_ports_logged(q, since)[-1:] == [port] and len(listen_ports_logged(q, since)) >= 2,
        APPLY_TIMEOUT,
        interval=0.05,
        message=lambda: f"no re-bind in qBittorrent's log: {listen_ports_logged(q, since)}\n{sc.log()}",
    )
    assert "re-binding" in sc.log()


def test_no_rebind_when_disabled(qbt, sidecar, tmp_path):
    q, sc, path, port = start_in_sync(qbt, sidecar, tmp_path, REBIND_ON_RECONNECT="false")
    since = len(q.log_barrier())
    announced = sc.log().count(f"forwarded port is {port}")
    vpn_reconnect(path, sc, port)
    wait_sidecar_log(sc, f"forwarded port is {port}", count=announced + 1)  # it saw the port again
    status, body, _ = sync_call(sc)  # answers after a reconcile that started after the re-write
    assert status == 200 and body["outcome"] == "in_sync", body
    q.log_barrier()
    assert listen_ports_logged(q, since) == [], f"qBittorrent re-bound: {listen_ports_logged(q, since)}"
    assert "re-binding" not in sc.log()
    assert q.listen_port() == port


# --------------------------------------------------------------------------- shutdown


def test_sigterm_exits_zero_after_syncing(qbt, sidecar, tmp_path):
    q, sc, path, port = start_in_sync(qbt, sidecar, tmp_path)
    assert sc.stop() == 0


def test_sigterm_exits_zero_while_retrying(sidecar, tmp_path):
    path = port_file(tmp_path, free_port())
    sc = sidecar(None, PORT_FILE=path, QBIT_ADDR=closed_port_addr())
    wait_sidecar_log(sc, "port sync failed")
    start = time.monotonic()
    assert sc.stop() == 0
    assert time.monotonic() - start < 3.0, "a pending retry delayed the exit"


def test_sigterm_with_sync_request_in_flight(sidecar, tmp_path, silent_server):
    """A /sync waiting on a hung qBittorrent must not hold the exit until SHUTDOWN_TIMEOUT: the
    reconcile it waits for is cancelled by the stop, so it is answered 503 at once (sync.h)."""
    path = port_file(tmp_path, free_port())
    sc = sidecar(
        None,
        PORT_FILE=path,
        QBIT_ADDR=f"http://127.0.0.1:{silent_server.port}",
        UPSTREAM_TIMEOUT=60,
        SHUTDOWN_TIMEOUT=10,
    )
    # The start-up reconcile is stuck on the silent qBittorrent.
    wait_for(lambda: len(silent_server.conns) >= 1, 5.0, message="the sidecar never connected to qBittorrent")
    client = socket.create_connection(("127.0.0.1", sc.port), timeout=20)
    try:
        client.sendall(b"GET /sync HTTP/1.1\r\nHost: test\r\n\r\n")
        # Barrier: the loop has answered a request sent after the /sync, so it has read the /sync.
        assert requests.get(sc.base_url + "/healthz", timeout=5).status_code == 200
        start = time.monotonic()
        sc.stopped_by_test = True
        os.kill(sc.pid, signal.SIGTERM)
        try:
            rc = sc.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            sc.proc.kill()
            pytest.fail(f"no exit 15 s after SIGTERM; log:\n{sc.log()}")
        elapsed = time.monotonic() - start
        received = b""
        try:
            while True:
                chunk = client.recv(65536)
                if not chunk:
                    break
                received += chunk
        except OSError:
            pass
    finally:
        client.close()
    assert rc == 0, sc.log()
    assert elapsed < 5.0, (
        f"exit took {elapsed:.1f} s with a /sync in flight (SHUTDOWN_TIMEOUT=10); "
        f"the /sync got {received!r}; log:\n{sc.log()}"
    )
    assert received.startswith(b"HTTP/1.1 503 "), f"the waiting /sync got {received!r}"
    assert b"shutting_down" in received, received
