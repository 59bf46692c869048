"""A short end-to-end smoke of the whole daemon, for a build that cannot run the rest of the suite.

`make arm64-check` runs it (with test_cli.py) against the arm64 cross-build under qemu-user; the
normal suite runs it natively like any other test. One scenario: the daemon starts, /healthz
answers, the forwarded port in the port file reaches a recording upstream that answers the API
as qBittorrent does, a rewrite of the file (inotify) reaches it too, and SIGTERM exits 0.
"""

import json
import threading
import urllib.parse

from conftest import port_file, write_in_place
from proxy_rig import proxy, upstream  # noqa: F401  (fixtures are used by name)
from recording_upstream import Reply

# qemu-user runs the binary some ten times slower than the machine would.
TIMEOUT = 30.0


class PortApi:
    """Answers the daemon's own API calls as qBittorrent does with its localhost bypass (no login)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.listen_port = 6881
        self.sets = []

    def __call__(self, r, conn):
        if r.target.startswith("/api/v2/app/preferences"):
            with self.lock:
                body = json.dumps({"listen_port": self.listen_port}).encode()
            return Reply(200, [("content-type", "application/json")], body)
        if r.target.startswith("/api/v2/app/setPreferences") and r.method == "POST":
            form = dict(urllib.parse.parse_qsl(r.body.decode()))
            with self.lock:
                self.listen_port = json.loads(form["json"])["listen_port"]
                self.sets.append(self.listen_port)
            return Reply(200, [("content-type", "text/plain")], b"")
        return Reply(404, [("content-type", "text/plain")], b"not found")


def test_starts_serves_applies_the_port_and_stops(proxy, upstream, tmp_path):
    api = PortApi()
    upstream.own_handler = api  # the daemon's own API calls (port sync) are answered here
    path = port_file(tmp_path, 40211)
    d = proxy(PORT_FILE=path, QBIT_TRUST_PROXY="false")  # waits for /healthz 200
    assert d.request("GET", "/healthz").status == 200

    assert upstream.wait_for(lambda up: 40211 in api.sets, TIMEOUT), (api.sets, d.log())
    write_in_place(path, "40212")
    assert upstream.wait_for(lambda up: api.sets[-1:] == [40212], TIMEOUT), (api.sets, d.log())
    assert api.sets == [40211, 40212], (api.sets, d.log())

    rc, _ = d.terminate(timeout=TIMEOUT)
    assert rc == 0, d.log()
