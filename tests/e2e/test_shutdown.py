"""Graceful shutdown with a request in flight: SIGTERM during a slow upload through the proxy.

The README's contract: SIGTERM stops accepting, lets requests in flight finish within
SHUTDOWN_TIMEOUT, and exits 0; at the deadline whatever is left is closed (still exit 0); a
second signal closes everything at once.
"""

import hashlib
import os
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import connection_refused, wait_until
from proxy_rig import (  # noqa: F401  (fixtures are used by name)
    SANITIZED,
    connect,
    proxy,
    req,
    upstream,
)
from recording_upstream import pattern_bytes

EARLY = 0.25
LATE = 1.5 if SANITIZED else 1.0
MIB = 1024 * 1024


class SlowUpload(threading.Thread):
    """POSTs size bytes (Content-Length) through the proxy in pieces spread over duration s,
    then reads the response and waits for the close. Never raises: outcomes are attributes."""

    def __init__(self, d, size, pieces, duration):
        super().__init__(name="slow-upload", daemon=True)
        self.d = d
        self.size = size
        self.pieces = pieces
        self.duration = duration
        self.body = pattern_bytes(0, size)
        self.sent = 0
        self.started_body = threading.Event()
        self.quarter_sent = threading.Event()
        self.send_error = None
        self.response = None
        self.read_error = None
        self.after = None
        self.received = b""
        self.finished_at = None
        self._halt = threading.Event()

    def run(self):
        c = connect(self.d, timeout=15)
        try:
            c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            c.send(req("POST", "/upload", [("Content-Type", "application/octet-stream"),
                                            ("Content-Length", str(self.size))], host=self.d.authority))
            step = -(-self.size // self.pieces)
            t0 = time.monotonic()
            for k in range(self.pieces):
                # Pacing, not waiting on a condition: piece k leaves at t0 + k * duration / pieces.
                self._halt.wait(max(0.0, t0 + k * self.duration / self.pieces - time.monotonic()))
                if self._halt.is_set():
                    return
                piece = self.body[k * step:(k + 1) * step]
                try:
                    c.send(piece)
                except OSError as e:
                    self.send_error = e
                    break
                self.sent += len(piece)
                self.started_body.set()
                if self.sent * 4 >= self.size:
                    self.quarter_sent.set()
            try:
                self.response = c.read_response()
                self.after = c.read_until_closed(10)
            except (OSError, EOFError) as e:
                self.read_error = e
                self.received = c.buf
        except BaseException as e:  # noqa: BLE001 (pytest.fail in a thread: keep it as an outcome)
            self.read_error = e
        finally:
            self.finished_at = time.monotonic()
            c.close()

    def cancel(self):
        self._halt.set()


def sigterm(d):
    d.stopped_by_test = True  # the fixture must not send its own SIGTERM and judge the exit
    t = time.monotonic()
    os.kill(d.pid, signal.SIGTERM)
    return t


def wait_exit(d, timeout):
    """Waits for the daemon to exit; returns (status, monotonic time of exit). Kills it and fails
    when it does not exit within timeout."""
    try:
        rc = d.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.kill(d.pid, signal.SIGKILL)
        d.proc.wait()
        pytest.fail(f"daemon still running {timeout} s after SIGTERM; log:\n{d.log()[-3000:]}")
    return rc, time.monotonic()


def start_upload(d, upstream, size, pieces, duration):
    up = SlowUpload(d, size, pieces, duration)
    up.start()
    assert up.quarter_sent.wait(duration + 5), "the upload did not get going"
    assert upstream.wait_requests(1, timeout=5, complete=False), "the upstream never saw the upload's head"
    return up


def test_sigterm_during_slow_upload_lets_it_finish_and_exits_0(proxy, upstream):
    d = proxy(SHUTDOWN_TIMEOUT=10)
    up = start_upload(d, upstream, 2 * MIB, 32, 2.0)
    try:
        sent_before = up.sent
        t_sig = sigterm(d)
        assert sent_before < up.size, "the upload finished before SIGTERM: no test"
        up.join(15)
        assert not up.is_alive(), "the upload never finished"
        assert up.send_error is None and up.read_error is None, (up.send_error, up.read_error, up.received)
        assert up.response.status == 200, up.response
        assert "close" in (up.response.header("connection") or "").lower(), up.response
        assert up.after == b""
        (got,) = upstream.wait_requests(1, timeout=5)
        assert got.complete and got.body_size == 2 * MIB, got
        assert got.body_sha256 == hashlib.sha256(up.body).hexdigest(), got
        rc, t_exit = wait_exit(d, 10)
    finally:
        up.cancel()
    assert rc == 0, d.log()
    assert t_exit - t_sig < 10, f"exit {t_exit - t_sig:.2f} s after SIGTERM"
    assert t_exit - up.finished_at < LATE, (
        f"exit {t_exit - up.finished_at:.2f} s after the last request finished; it should be prompt")


def test_sigterm_during_slow_upload_refuses_new_connections(proxy, upstream):
    d = proxy(SHUTDOWN_TIMEOUT=10)
    up = start_upload(d, upstream, 2 * MIB, 32, 2.0)
    try:
        sigterm(d)
        wait_until(lambda: connection_refused(d.host, d.port), 1.0, interval=0.01,
                   message="the port still accepts connections after SIGTERM")
        assert up.is_alive(), "the upload finished before the check: no test"
        up.join(15)
        assert up.response is not None and up.response.status == 200, (up.response, up.read_error)
        rc, _ = wait_exit(d, 10)
    finally:
        up.cancel()
    assert rc == 0, d.log()


def test_shutdown_deadline_cuts_long_upload_and_exits_0(proxy, upstream):
    d = proxy(SHUTDOWN_TIMEOUT=1)
    up = start_upload(d, upstream, 2 * MIB, 80, 5.0)
    try:
        t_sig = sigterm(d)
        rc, t_exit = wait_exit(d, 1 + LATE + 5)
        up.join(10)
        assert not up.is_alive(), "the client never saw the connection end"
    finally:
        up.cancel()
    assert rc == 0, d.log()
    assert 1 - EARLY <= t_exit - t_sig <= 1 + LATE, f"exit {t_exit - t_sig:.2f} s after SIGTERM"
    assert up.sent < up.size, "the upload finished anyway: no test"
    # The client saw the connection end (send failed, or EOF/reset on read), never a success.
    assert up.response is None or up.response.status >= 500, up.response
    assert up.finished_at - t_sig <= 1 + LATE, f"client still connected {up.finished_at - t_sig:.2f} s in"
    (got,) = upstream.requests()
    assert not got.complete and got.body_size < 2 * MIB, got


def test_second_sigterm_closes_at_once(proxy, upstream):
    d = proxy(SHUTDOWN_TIMEOUT=30)
    up = start_upload(d, upstream, 2 * MIB, 80, 5.0)
    try:
        sigterm(d)
        wait_until(lambda: connection_refused(d.host, d.port), 1.0, interval=0.01)
        t_second = time.monotonic()
        os.kill(d.pid, signal.SIGTERM)
        rc, t_exit = wait_exit(d, 5)
        up.join(10)
    finally:
        up.cancel()
    assert rc == 0, d.log()
    assert t_exit - t_second < LATE, f"exit {t_exit - t_second:.2f} s after the second SIGTERM"
    assert up.sent < up.size and (up.response is None or up.response.status >= 500), up.response
