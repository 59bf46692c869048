"""Resource budgets a single allowed client must not be able to exceed."""

import resource
import socket
import subprocess

from conftest import base_env, free_port, wait_until
from proxy_rig import proxy, upstream  # noqa: F401  (pytest fixtures)
from test_hostile_requests import server_rx_queue


def chunked_head(d):
    return (f"POST /upload HTTP/1.1\r\nHost: {d.authority}\r\nTransfer-Encoding: chunked\r\n\r\n").encode()


def test_collected_chunked_bodies_share_one_budget(proxy, upstream):
    # Two unfinished chunked uploads of 600 KiB each against a 1 MiB budget: the second is refused
    # with 503 while the first holds the room, instead of memory growing per connection.
    d = proxy(MAX_BUFFERED_BODY=1024 * 1024)
    piece = b"x" * (600 * 1024)
    first = socket.create_connection(("127.0.0.1", d.port), timeout=10)
    second = socket.create_connection(("127.0.0.1", d.port), timeout=10)
    try:
        first.sendall(chunked_head(d) + b"%x\r\n" % len(piece) + piece + b"\r\n")
        # The daemon must hold the first body before the second arrives.
        wait_until(lambda: server_rx_queue(d.port, first.getsockname()[1]) == 0, 5,
                   message="the daemon did not read the first upload")
        assert not [r for r in upstream.requests() if r.target == "/upload"]  # held, not forwarded yet
        second.sendall(chunked_head(d) + b"%x\r\n" % len(piece) + piece + b"\r\n")
        answer = second.recv(4096)
        assert answer.startswith(b"HTTP/1.1 503 "), answer
        first.sendall(b"0\r\n\r\n")  # the first one completes and is forwarded whole
        reply = first.recv(4096)
        assert reply.startswith(b"HTTP/1.1 200 "), reply
    finally:
        first.close()
        second.close()
    uploads = [r for r in upstream.requests() if r.target == "/upload"]
    assert len(uploads) == 1 and uploads[0].body_size == len(piece), uploads


def test_descriptor_limit_too_low_is_reported(qgs_bin, tmp_path):
    port = free_port()
    env = base_env(LISTEN_ADDR="127.0.0.1", LISTEN_PORT=port, MAX_CONNECTIONS=1000,
                   QBIT_ADDR=f"http://127.0.0.1:{free_port()}", PORT_FILE=tmp_path / "pf")
    log = tmp_path / "log"

    def low_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))

    with open(log, "wb") as f:
        proc = subprocess.Popen([str(qgs_bin)], env=env, stdin=subprocess.DEVNULL, stdout=f, stderr=f,
                                preexec_fn=low_limit)
    try:
        wait_until(lambda: "file descriptors" in log.read_text(), 10, message="no warning about the fd limit")
        assert "MAX_CONNECTIONS=1000" in log.read_text()
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
