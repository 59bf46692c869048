"""The TLS paths under valgrind's memcheck (the ASan+UBSan build runs the rest of the suite): one
daemon with HTTPS at the front door and to its upstream goes through good requests, the clients
that misbehave (plain HTTP, garbage, a stalled and a broken-off handshake), a certificate renewal
and a broken one, then SIGTERM. valgrind must report no error and no definite or indirect leak."""

import os
import re
import shutil
import socket
import ssl

import pytest

from conftest import RawConn, http_request, request_bytes, start_daemon, stop_daemons, tls_client_context, wait_until
from proxy_rig import new_upstream, stop_upstream
from tls_rig import Pki

pytestmark = [
    pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed"),
    pytest.mark.skipif(os.environ.get("QGS_SANITIZED") == "1", reason="the sanitizer build cannot run under valgrind"),
]

TIMEOUT = 60  # valgrind is some 20 times slower


def test_tls_front_door_and_upstream_are_valgrind_clean(qgs_bin, tmp_path):
    pki = Pki(tmp_path / "pki")
    up_cert = pki.issue("upstream", sans=["IP:127.0.0.1"])
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(up_cert.cert, up_cert.key)
    up = new_upstream(tls=server)
    front_dir = tmp_path / "front"
    front_dir.mkdir()
    first = pki.issue("front0")
    shutil.copy(first.cert, front_dir / "tls.crt")
    shutil.copy(first.key, front_dir / "tls.key")

    log = tmp_path / "valgrind.log"
    wrapper = tmp_path / "under-valgrind"
    wrapper.write_text(f"#!/bin/sh\nexec valgrind --leak-check=full --errors-for-leak-kinds=definite,indirect "
                       f"--error-exitcode=99 --log-file={log} {qgs_bin} \"$@\"\n")
    wrapper.chmod(0o755)
    started = []
    try:
        d = start_daemon(wrapper, tmp_path / "d", 0,
                         ready=lambda d: http_request(d.host, d.port, "GET", "/healthz",
                                                      tls=tls_client_context(False)).status == 200,
                         ALLOWED_IPS="127.0.0.1", QBIT_ADDR=f"https://127.0.0.1:{up.port}", QBIT_CA_FILE=pki.cert,
                         TLS_CERT_FILE=front_dir / "tls.crt", TLS_KEY_FILE=front_dir / "tls.key", HEADER_TIMEOUT=2)
        started.append(d)
        d.verify = pki.cert
        authority = f"127.0.0.1:{d.port}"
        for i in range(3):
            assert d.request("GET", f"/api/v2/app/version?{i}").status == 200
        # Plain HTTP, garbage, a handshake broken off, one stalled until HEADER_TIMEOUT.
        with RawConn(d.host, d.port, timeout=TIMEOUT) as c:
            c.send(request_bytes("GET", "/", host=authority))
            assert c.read_response().status == 400
        with RawConn(d.host, d.port, timeout=TIMEOUT) as c:
            c.send(b"\x16\x03\x01\x00\x05garbage" + b"\x00" * 40)
            c.read_until_closed(timeout=TIMEOUT)
        s = socket.create_connection((d.host, d.port))
        s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
        s.close()
        with RawConn(d.host, d.port, timeout=TIMEOUT) as stalled:
            assert stalled.is_closed_by_server(timeout=TIMEOUT)
        # A renewal, then a broken pair (the old certificate stays).
        new = pki.issue("front1")
        for src, name in ((new.cert, "tls.crt"), (new.key, "tls.key")):
            shutil.copy(src, front_dir / f".{name}")
            os.replace(front_dir / f".{name}", front_dir / name)
        wait_until(lambda: "TLS certificate renewed" in d.log(), TIMEOUT, message=d.log)
        (front_dir / ".tls.crt").write_text("broken\n")
        os.replace(front_dir / ".tls.crt", front_dir / "tls.crt")
        wait_until(lambda: "cannot be used" in d.log(), TIMEOUT, message=d.log)
        assert d.request("GET", "/api/v2/app/version?after").status == 200
        rc, _ = d.terminate(timeout=TIMEOUT)
    finally:
        stop_daemons(started)
        stop_upstream(up)
    report = log.read_text()
    summary = re.search(r"ERROR SUMMARY: (\d+) errors", report)
    assert summary and summary.group(1) == "0", report[-4000:]
    for kind in ("definitely lost", "indirectly lost"):
        m = re.search(rf"{kind}: ([\d,]+) bytes", report)
        assert m is None or m.group(1) == "0", report[-4000:]
    assert rc == 0, report[-4000:]
