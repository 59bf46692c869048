"""qBittorrent API answers a real qBittorrent does not give on demand, played by the recording
upstream: a login with no usable session cookie, and answers that trickle in one byte at a time.

The sidecar must name what was wrong (in /sync's message and the log), and a trickle must not hold
the reconciler: every API call has a total deadline of UPSTREAM_TIMEOUT, so /sync answers 504 and a
new port is applied once qBittorrent answers properly again.
"""

import json
import threading
import time
import urllib.parse

import pytest
import requests

from conftest import port_file, wait_until, write_in_place
from proxy_rig import proxy, upstream  # noqa: F401  (fixtures are used by name)
from recording_upstream import Action, Reply

TIMEOUT = 30.0


def sync(d, timeout=TIMEOUT):
    """GET /sync, waiting out its once-a-second limit; returns (status, JSON body, seconds taken)."""
    deadline = time.monotonic() + 10
    while True:
        start = time.monotonic()
        r = requests.get(f"http://127.0.0.1:{d.port}/sync", timeout=timeout)
        if r.status_code != 429 or time.monotonic() > deadline:
            return r.status_code, r.json(), time.monotonic() - start
        time.sleep(0.2)


def login_answer(set_cookie):
    """An own_handler: qBittorrent 4.5's "Ok." login with the given Set-Cookie (None: none), a port."""
    def own(r, conn):
        if r.target.startswith("/api/v2/auth/login"):
            headers = [("content-type", "text/plain; charset=UTF-8")]
            if set_cookie is not None:
                headers.append(("set-cookie", set_cookie))
            return Reply(200, headers, b"Ok.")
        if r.target.startswith("/api/v2/app/preferences"):
            return Reply(200, [("content-type", "application/json")], b'{"listen_port":6881}')
        return Reply(200, [], b"")
    return own


@pytest.mark.parametrize("set_cookie,says", [
    (None, "set no session cookie"),
    ("SID=" + "a" * 600 + "; HttpOnly; path=/", "cannot be sent back"),
    ("SID=ab\tcd; HttpOnly; path=/", "cannot be sent back"),
], ids=["no-cookie", "600-byte-cookie", "tab-in-cookie"])
def test_login_without_a_usable_session_cookie_is_named(proxy, upstream, tmp_path, set_cookie, says):
    upstream.own_handler = login_answer(set_cookie)
    d = proxy(PORT_FILE=port_file(tmp_path, 40301), QBIT_USER="admin", QBIT_PASS="secret")
    status, body, _ = sync(d)
    assert status == 502, body
    assert says in body["message"], body
    assert says in d.log(), d.log()


class Trickle(Action):
    """Sends data one byte every interval seconds, until done or the peer goes away."""

    def __init__(self, data, interval=0.5):
        self.data, self.interval = data, interval
        self.gave_up = threading.Event()  # the peer closed the connection before the end

    def run(self, ctx):
        for i in range(len(self.data)):
            try:
                ctx.send(self.data[i:i + 1])
            except OSError:
                self.gave_up.set()
                return False
            if not ctx.sleep(self.interval):
                return False
        return True


class RawThen(Action):
    """Sends data at once, then runs the next action on the same request."""

    def __init__(self, data, then):
        self.data, self.then = data, then

    def run(self, ctx):
        ctx.send(self.data)
        return self.then.run(ctx)


PREFS = b'{"listen_port":6881,"web_ui_host_header_validation_enabled":true,"web_ui_domain_list":"*"}'
PREFS_RESPONSE = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (
    len(PREFS), PREFS)


@pytest.mark.parametrize("where", ["head", "body"])
def test_trickling_answer_times_out_as_a_whole(proxy, upstream, tmp_path, where):
    """One byte every half second (of the head, or of the body after a whole head): every byte is
    progress, yet the call must end at UPSTREAM_TIMEOUT (2 s) all told."""
    trickles = []
    port = {"now": 6881, "trickle": True}

    def own(r, conn):
        if r.target.startswith("/api/v2/app/preferences") and port["trickle"]:
            split = 0 if where == "head" else PREFS_RESPONSE.index(b"\r\n\r\n") + 4
            t = Trickle(PREFS_RESPONSE[split:])
            trickles.append(t)
            if split:
                return RawThen(PREFS_RESPONSE[:split], t)
            return t
        if r.target.startswith("/api/v2/app/preferences"):
            body = PREFS.replace(b"6881", str(port["now"]).encode())
            return Reply(200, [("content-type", "application/json")], body)
        if r.target.startswith("/api/v2/app/setPreferences"):
            form = dict(urllib.parse.parse_qsl(r.body.decode()))
            port["now"] = json.loads(form["json"])["listen_port"]
        return Reply(200, [], b"")

    upstream.own_handler = own
    path = port_file(tmp_path, 40301)
    d = proxy(PORT_FILE=path, UPSTREAM_TIMEOUT=2, RESYNC_INTERVAL=0, QBIT_TRUST_PROXY="false")
    status, body, took = sync(d)
    assert status == 504, body
    assert "did not answer within 2 s" in body["message"], body
    assert took < 15, f"/sync took {took:.1f} s"  # a bound on the wait, not a speed goal
    assert trickles[0].gave_up.wait(10), "the sidecar kept the trickling connection open"
    r = requests.get(f"http://127.0.0.1:{d.port}/readyz", timeout=TIMEOUT)
    assert r.status_code == 503 and "did not answer within 2 s" in r.text, r.text
    # qBittorrent answers properly again: the port is applied (after the retry backoff), and a new one.
    port["trickle"] = False
    wait_until(lambda: port["now"] == 40301, TIMEOUT, message=lambda: f"40301 never applied; log:\n{d.log()}")
    write_in_place(path, "40302")
    wait_until(lambda: port["now"] == 40302, TIMEOUT, message=lambda: f"40302 never applied; log:\n{d.log()}")

