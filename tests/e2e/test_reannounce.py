"""Trackers told at once (REANNOUNCE_ON_CHANGE): after a changed port is applied and verified, the
sidecar asks qBittorrent to re-announce every torrent, so peers learn the new port now instead of at
the tracker's next interval (30 minutes and more). A real qBittorrent seeds one torrent whose
announce URL is a recording HTTP tracker on loopback."""

import http.server
import threading
import time
import urllib.parse

import pytest

from conftest import free_port, port_file, write_in_place
from qbt_rig import APPLY_TIMEOUT, bencode, make_torrent, sync_call, wait_for, wait_port, wait_ready

pytest_plugins = ("qbt_rig",)  # the qbt and sidecar fixtures

ANNOUNCE_WITHIN = 5.0  # seconds from the file change to an announce carrying the new port


class Tracker(http.server.ThreadingHTTPServer):
    """Answers every /announce with no peers and a 30-minute interval, and records its query."""

    daemon_threads = True

    def __init__(self):
        self.announces = []  # (monotonic time, {param: value})
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", free_port()), TrackerHandler)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}/announce"

    def ports(self, since=0.0):
        with self.lock:
            return [int(q["port"]) for t, q in self.announces if t >= since and "port" in q]

    def stop(self):
        self.shutdown()
        self.server_close()


class TrackerHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query, keep_blank_values=True))
        with self.server.lock:
            self.server.announces.append((time.monotonic(), query))
        body = bencode({"interval": 1800, "peers": b""})
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def tracker():
    t = Tracker()
    yield t
    t.stop()


def seeding_with_tracker(qbt, tracker):
    """A qBittorrent seeding one torrent announced to tracker; returns it once the first announce came."""
    q = qbt(local_host_auth=True)
    q.add_torrent(make_torrent(announce=tracker.url))
    first = wait_for(lambda: tracker.ports(), 20, message="qBittorrent never announced to the tracker")
    assert first[0] == q.listen_port()
    return q


def test_a_changed_port_reaches_the_tracker_at_once(qbt, sidecar, tracker, tmp_path):
    q = seeding_with_tracker(qbt, tracker)
    p0, p1 = free_port(), free_port()
    path = port_file(tmp_path, p0)
    sc = sidecar(q, PORT_FILE=path, QBIT_USER=q.username, QBIT_PASS=q.password)
    wait_port(q, sc, p0)
    wait_for(lambda: p0 in tracker.ports(), ANNOUNCE_WITHIN, message=lambda: f"{tracker.ports()}\n{sc.log()}")
    changed = time.monotonic()
    write_in_place(path, str(p1))
    wait_for(lambda: p1 in tracker.ports(changed), ANNOUNCE_WITHIN,
             message=lambda: f"no announce with port={p1} within {ANNOUNCE_WITHIN} s: {tracker.ports(changed)}\n"
                             f"{sc.log()}")
    assert "asked qBittorrent to re-announce every torrent on port" in sc.log()


def test_no_reannounce_after_a_check_that_changed_nothing(qbt, sidecar, tracker, tmp_path):
    q = seeding_with_tracker(qbt, tracker)
    p0 = free_port()
    sc = sidecar(q, PORT_FILE=port_file(tmp_path, p0), QBIT_USER=q.username, QBIT_PASS=q.password)
    wait_port(q, sc, p0)
    wait_ready(sc)
    asked = sc.log().count("asked qBittorrent to re-announce")
    assert asked == 1, sc.log()
    for _ in range(2):
        status, body, _ = sync_call(sc)
        assert status == 200 and body["outcome"] == "in_sync", body
    assert sc.log().count("asked qBittorrent to re-announce") == asked, sc.log()


def test_without_reannounce_qbittorrent_keeps_the_old_port_at_its_tracker(qbt, sidecar, tracker, tmp_path):
    """REANNOUNCE_ON_CHANGE=false shows what qBittorrent does by itself: on the versions here it does not
    tell the tracker within the same 5 s (the reason for the feature)."""
    q = seeding_with_tracker(qbt, tracker)
    p0, p1 = free_port(), free_port()
    path = port_file(tmp_path, p0)
    sc = sidecar(q, PORT_FILE=path, QBIT_USER=q.username, QBIT_PASS=q.password, REANNOUNCE_ON_CHANGE="false")
    wait_port(q, sc, p0)
    changed = time.monotonic()
    write_in_place(path, str(p1))
    wait_port(q, sc, p1, timeout=APPLY_TIMEOUT)
    time.sleep(max(0.0, ANNOUNCE_WITHIN - (time.monotonic() - changed)))  # the window the other test gets
    assert p1 not in tracker.ports(changed), (
        f"qBittorrent {q.version} announced the new port by itself within {ANNOUNCE_WITHIN} s: "
        f"{tracker.ports(changed)}")
    assert "re-announce" not in sc.log()
