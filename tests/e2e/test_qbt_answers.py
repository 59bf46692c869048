"""qBittorrent API answers a real qBittorrent does not give on demand, played by the recording
upstream: a login with no usable session cookie, answers that trickle in one byte at a time, an
answer too large to keep, and a kept-alive connection that qBittorrent closes just as it is reused.

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
from recording_upstream import Action, CloseNoAnswer, Reply, Stream

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

    def trickle(r, conn):
        if r.target.startswith("/api/v2/app/preferences") and port["trickle"]:
            split = 0 if where == "head" else PREFS_RESPONSE.index(b"\r\n\r\n") + 4
            t = Trickle(PREFS_RESPONSE[split:])
            trickles.append(t)
            if split:
                return RawThen(PREFS_RESPONSE[:split], t)
            return t
        return None

    upstream.own_handler = answers_prefs(port, trickle)
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



def answers_prefs(port, extra=None):
    """An own_handler for a qBittorrent whose listen_port is port["now"] (set by setPreferences);
    extra(r, conn) may answer a request first (a non-None Action)."""
    def own(r, conn):
        if extra:
            action = extra(r, conn)
            if action is not None:
                return action
        if r.target.startswith("/api/v2/app/preferences"):
            body = PREFS.replace(b"6881", str(port["now"]).encode())
            return Reply(200, [("content-type", "application/json")], body)
        if r.target.startswith("/api/v2/app/setPreferences"):
            form = dict(urllib.parse.parse_qsl(r.body.decode()))
            port["now"] = json.loads(form["json"])["listen_port"]
        return Reply(200, [], b"")
    return own


def test_an_answer_over_4_mib_is_refused_by_name_and_the_sync_goes_on(proxy, upstream, tmp_path):
    """Preferences are a few KiB; 5 MiB is not kept in memory to find out. The call fails naming the
    limit, and once qBittorrent answers properly the port is applied."""
    port = {"now": 6881, "huge": True}

    def huge(r, conn):
        if r.target.startswith("/api/v2/app/preferences") and port["huge"]:
            return Stream(5 * 1024 * 1024, headers=[("Content-Type", "application/json")])
        return None

    upstream.own_handler = answers_prefs(port, huge)
    d = proxy(PORT_FILE=port_file(tmp_path, 40301), RESYNC_INTERVAL=0, QBIT_TRUST_PROXY="false")
    status, body, _ = sync(d)
    assert status == 502, body
    assert "larger than 4 MiB" in body["message"], body
    assert "larger than 4 MiB" in d.log()
    port["huge"] = False
    wait_until(lambda: port["now"] == 40301, TIMEOUT, message=lambda: f"40301 never applied; log:\n{d.log()}")


def test_a_call_on_a_kept_alive_connection_qbittorrent_closed_goes_out_again_once(proxy, upstream, tmp_path):
    """qBittorrent closes idle keep-alive connections; one may close just as the sidecar reuses it,
    before any answer. A read or a set is then sent again at once on a new connection (once), so
    the sync never fails for it."""
    seen = []  # (connection, position on it, method, path) of every API call, in order
    port = {"now": 6881}

    def close_reused(r, conn):
        seen.append((conn.index, r.index, r.method, r.target.split("?")[0]))
        return CloseNoAnswer() if r.index > 0 else None

    upstream.own_handler = answers_prefs(port, close_reused)
    path = port_file(tmp_path, 40301)
    d = proxy(PORT_FILE=path, RESYNC_INTERVAL=0, QBIT_TRUST_PROXY="false")
    wait_until(lambda: port["now"] == 40301, TIMEOUT, message=lambda: f"40301 never applied; log:\n{d.log()}")
    status, body, _ = sync(d)
    assert status == 200, body
    write_in_place(path, "40302")
    wait_until(lambda: port["now"] == 40302, TIMEOUT, message=lambda: f"40302 never applied; log:\n{d.log()}")
    calls = list(seen)
    closed = [i for i, c in enumerate(calls) if c[1] > 0]
    assert closed, f"no call was made on a reused connection: {calls}"
    for i in closed[:-1] if closed[-1] == len(calls) - 1 else closed:
        conn, _, method, target = calls[i]
        again = calls[i + 1]
        assert again[1] == 0 and again[0] != conn and again[2:] == (method, target), \
            f"call {i} {calls[i]} not sent again at once on a new connection: {calls}"
    assert "port sync failed" not in d.log(), d.log()


def test_a_login_on_a_kept_alive_connection_qbittorrent_closed_is_not_sent_again(proxy, upstream, tmp_path):
    """A login that met a closed connection may still have reached qBittorrent, and a wrong password
    counts toward its ban: it is not sent again within the call, which fails saying so."""
    state = {"expired": False}
    logins = []  # (connection, position on it, when)

    def own(r, conn):
        if r.target.startswith("/api/v2/auth/login"):
            logins.append((conn.index, r.index, time.monotonic()))
            if r.index > 0:
                return CloseNoAnswer()
            return Reply(200, [("set-cookie", "SID=abc; HttpOnly; path=/")], b"Ok.")
        if r.target.startswith("/api/v2/app/preferences"):
            if state["expired"]:
                state["expired"] = False  # the session is gone (qBittorrent restarted): log in again
                return Reply(403, [], b"Forbidden")
            return Reply(200, [("content-type", "application/json")], PREFS.replace(b"6881", b"40301"))
        return Reply(200, [], b"")

    upstream.own_handler = own
    d = proxy(PORT_FILE=port_file(tmp_path, 40301), QBIT_USER="admin", QBIT_PASS="secret", RESYNC_INTERVAL=0,
              QBIT_TRUST_PROXY="false")
    status, body, _ = sync(d)
    assert status == 200, body
    assert len(logins) == 1 and logins[0][1] == 0, logins
    state["expired"] = True
    status, body, _ = sync(d)
    answered = time.monotonic()
    in_call = [x for x in logins if x[2] < answered]
    assert len(in_call) == 2 and in_call[1][1] > 0, f"logins: {logins}"
    assert status == 502, body
    assert "qBittorrent at 127.0.0.1" in body["message"], body
