"""QBIT_ADDR=https://...: a real qbittorrent-nox serving its own WebUI over HTTPS (WebUI\\HTTPS\\*
in its profile, certificates made here with openssl), for the port sync and the proxy alike, on
every qBittorrent build the suite has.

The certificate is verified by default (chain and name); QBIT_CA_FILE trusts a given PEM instead,
QBIT_TLS_INSECURE=true trusts anything, with a warning. A certificate that does not verify is
refused before any request is sent, in words that say what to change, in the log and in /sync.
"""

import ssl

import pytest
import requests

from conftest import server_side_connections, skip_unless_localhost_is_ipv4
from proxy_rig import (  # noqa: F401  (proxy is a fixture, used by name)
    SANITIZED,
    BodySink,
    RssSampler,
    connect,
    exchange,
    new_upstream,
    proxy,
    qbittorrent_like,
    read_head,
    req,
    stop_upstream,
    stream_body,
)
from qbt_rig import APPLY_TIMEOUT, readyz, sync_call, wait_for, wait_port, wait_ready
from recording_upstream import PATTERN, Stream, pattern_digest
from tls_rig import Pki, self_signed

pytest_plugins = ("qbt_rig",)  # the qbt and sidecar fixtures

TIMEOUT = 10


@pytest.fixture
def pki(tmp_path):
    return Pki(tmp_path / "pki")


def login_env(q):
    return {"QBIT_USER": q.username, "QBIT_PASS": q.password}


def test_port_sync_over_https_with_qbit_ca_file(qbt, sidecar, pki, tmp_path):
    """The forwarded port reaches a qBittorrent that speaks only HTTPS, its certificate checked against
    QBIT_CA_FILE (the CA that issued it) and the IP address in QBIT_ADDR."""
    q = qbt(https=pki.issue("qbt", sans=["IP:127.0.0.1"]), ca=pki.cert)
    assert q.base_url.startswith("https://")
    sc = sidecar(q, **login_env(q))
    assert sc.env["QBIT_CA_FILE"] == str(pki.cert) and q.verify == str(pki.cert)
    (tmp_path / "sidecar" / "forwarded_port").write_text("40123\n")
    wait_port(q, sc, 40123)
    wait_ready(sc)
    status, body, _ = sync_call(sc)
    assert status == 200 and body["outcome"] in ("in_sync", "applied"), body


def test_port_sync_checks_the_name_with_sni(qbt, sidecar, pki, tmp_path):
    """QBIT_ADDR names a host (localhost): the certificate must be for that name, and the name goes out
    as SNI. qBittorrent listens on 127.0.0.1 only, so the connect also walks past ::1."""
    skip_unless_localhost_is_ipv4()
    q = qbt(https=pki.issue("qbt", sans=["DNS:localhost"]), ca=pki.cert)
    sc = sidecar(q, QBIT_ADDR=f"https://localhost:{q.webui_port}", **login_env(q))
    (tmp_path / "sidecar" / "forwarded_port").write_text("40124\n")
    wait_port(q, sc, 40124)


def test_webui_through_the_proxy_over_https_pooled_and_streamed(qbt, sidecar, pki):
    """Through the proxy to an HTTPS qBittorrent: login, API calls on one pooled TLS connection, and a
    large static file streamed whole."""
    q = qbt(https=pki.issue("qbt", sans=["IP:127.0.0.1"]), ca=pki.cert)
    sc = sidecar(q)
    s = requests.Session()
    origin = {"Origin": sc.origin, "Referer": sc.origin + "/"}
    r = s.post(sc.base_url + "/api/v2/auth/login", data={"username": q.username, "password": q.password},
               headers=origin, timeout=TIMEOUT)
    assert q.login_ok(r), (r.status_code, r.text, sc.log())
    for _ in range(10):
        r = s.get(sc.base_url + "/api/v2/app/version", timeout=TIMEOUT)
        assert r.status_code == 200 and r.text.startswith("v"), (r.status_code, r.text)
    # Sequential requests share one connection to qBittorrent (the one the login used, or one more).
    assert server_side_connections(q.webui_port) <= 2, sc.log()

    direct = requests.get(q.base_url + "/", verify=q.verify, timeout=TIMEOUT)
    proxied = requests.get(sc.base_url + "/", timeout=TIMEOUT)
    assert direct.status_code == proxied.status_code == 200
    assert proxied.content == direct.content and len(proxied.content) > 1000


def failure_of(sc):
    """Waits for /sync to report a failed attempt; returns its message."""
    def failed():
        status, body, _ = sync_call(sc)
        return body if status != 200 and body.get("message") else None
    body = wait_for(failed, APPLY_TIMEOUT, interval=0.2, message=lambda: f"/sync never failed; log:\n{sc.log()}")
    return body["message"]


@pytest.mark.parametrize("case", ["wrong-ca", "self-signed", "wrong-name", "expired"])
def test_a_certificate_that_does_not_verify_is_refused_in_words(qbt, sidecar, pki, tmp_path, case):
    """Nothing is applied to a qBittorrent whose certificate does not verify, and the message says what
    to change, in the log and in /sync; /readyz is 503."""
    other = Pki(tmp_path / "other-pki")
    if case == "wrong-ca":
        q = qbt(https=pki.issue("qbt", sans=["IP:127.0.0.1"]), ca=pki.cert)
        overrides, words = {"QBIT_CA_FILE": other.cert}, "issuer is unknown: set QBIT_CA_FILE"
    elif case == "self-signed":
        q = qbt(https=self_signed(tmp_path, "qbt"))
        overrides, words = {"QBIT_CA_FILE": None}, "self-signed: set QBIT_CA_FILE"
    elif case == "wrong-name":
        q = qbt(https=pki.issue("qbt", sans=["DNS:qbt.example"]), ca=pki.cert)
        overrides, words = {}, 'not for "127.0.0.1"'
    else:
        q = qbt(https=pki.issue("qbt", sans=["IP:127.0.0.1"], expired=True), ca=pki.cert)
        overrides, words = {}, "certificate has expired"
    before = q.listen_port()
    sc = sidecar(q, **login_env(q), **overrides)
    (tmp_path / "sidecar" / "forwarded_port").write_text("40125\n")
    message = failure_of(sc)
    assert words in message and "TLS" in message, message
    assert words in sc.log()
    assert readyz(sc)[0] == 503
    assert q.listen_port() == before


def test_qbit_tls_insecure_works_and_warns(qbt, sidecar, tmp_path):
    """QBIT_TLS_INSECURE=true reaches a self-signed qBittorrent without QBIT_CA_FILE, and says what it
    gives up at start-up and in /readyz."""
    q = qbt(https=self_signed(tmp_path, "qbt"))
    sc = sidecar(q, QBIT_CA_FILE=None, QBIT_TLS_INSECURE="true", **login_env(q))
    (tmp_path / "sidecar" / "forwarded_port").write_text("40126\n")
    wait_port(q, sc, 40126)
    assert "QBIT_TLS_INSECURE=true: qBittorrent's certificate is not checked" in sc.log()
    status, text = wait_for(lambda: (lambda r: r if r[0] == 200 else None)(readyz(sc)), APPLY_TIMEOUT)
    assert "warning: QBIT_TLS_INSECURE=true" in text, text


def test_https_to_a_plain_http_qbittorrent_says_so(qbt, sidecar, tmp_path):
    """An https:// QBIT_ADDR for a WebUI that speaks plain HTTP: the message says it may speak plain
    HTTP, instead of a bare protocol error or timeout. (qBittorrent waits for a request line that a
    ClientHello never completes, so this takes UPSTREAM_CONNECT_TIMEOUT.)"""
    q = qbt()
    sc = sidecar(q, QBIT_ADDR=f"https://127.0.0.1:{q.webui_port}", QBIT_TLS_INSECURE="true",
                 UPSTREAM_CONNECT_TIMEOUT=1, **login_env(q))
    (tmp_path / "sidecar" / "forwarded_port").write_text("40127\n")
    message = failure_of(sc)
    assert "may speak plain HTTP" in message, message


# --------------------------------------------------------------------------- against a recording upstream


@pytest.fixture
def upstream(pki):
    """Overrides proxy_rig's: this module's recording upstream speaks TLS, with a certificate for
    localhost and 127.0.0.1 issued by pki."""
    cert = pki.issue("upstream", sans=["DNS:localhost", "IP:127.0.0.1"])
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert.cert, cert.key)
    up = new_upstream(tls=ctx)
    yield up
    stop_upstream(up)


def test_sni_names_the_host_and_is_left_out_for_an_address(proxy, upstream, pki):
    skip_unless_localhost_is_ipv4()
    by_name = proxy(qbit_addr=f"https://localhost:{upstream.port}", QBIT_CA_FILE=pki.cert)
    assert exchange(by_name, "GET", "/by-name").status == 200
    assert upstream.conn_of("/by-name").sni == "localhost"
    by_address = proxy(qbit_addr=f"https://127.0.0.1:{upstream.port}", QBIT_CA_FILE=pki.cert)
    assert exchange(by_address, "GET", "/by-address").status == 200
    assert upstream.conn_of("/by-address").sni is None


def test_requests_share_one_pooled_tls_connection(proxy, upstream, pki):
    d = proxy(qbit_addr=f"https://127.0.0.1:{upstream.port}", QBIT_CA_FILE=pki.cert)
    for i in range(20):
        assert exchange(d, "GET", f"/pooled/{i}").status == 200
    assert len(upstream.proxied_conns()) == 1, upstream.conns


def test_64mib_both_ways_through_tls_on_both_sides_with_flat_memory(proxy, upstream, pki, tmp_path):
    """TLS at the front door and to the upstream: a large download and upload arrive whole, and the
    daemon's memory stays flat (TLS buffers are per record, not per transfer)."""
    front = self_signed(tmp_path / "front", "front")
    d = proxy(qbit_addr=f"https://127.0.0.1:{upstream.port}", QBIT_CA_FILE=pki.cert,
              TLS_CERT_FILE=front.cert, TLS_KEY_FILE=front.key)
    assert exchange(d, "GET", "/warm").status == 200
    size = 64 * 1024 * 1024
    upstream.queue(Stream(size))
    with RssSampler(d.pid) as rss, connect(d, timeout=60) as c:
        c.send(req("GET", "/big", host=d.authority))
        head = read_head(c)
        sink = BodySink()
        assert stream_body(c, head, sink) == "complete"
        c.send(req("POST", "/up", [("Content-Length", str(size))], host=d.authority))
        mv = memoryview(PATTERN)
        for _ in range(size // len(PATTERN)):
            c.sock.sendall(mv)
        assert c.read_response().status == 200
    assert sink.size == size and sink.hexdigest == pattern_digest(size)
    got = [r for r in upstream.requests() if r.target == "/up"][0]
    assert got.body_size == size and got.body_sha256 == pattern_digest(size)
    print(f"VmRSS {rss.baseline} -> {rss.peak} KiB")
    if not SANITIZED:
        assert rss.growth_kib < 1024, f"VmRSS grew {rss.growth_kib} KiB"


def test_a_tls_failure_on_the_upstream_is_a_502_naming_it(proxy, upstream, tmp_path):
    """Without QBIT_CA_FILE the test CA is unknown: the proxied request gets 502 and the log says why."""
    # Not the qbittorrent_like object itself, so the fixture does not wait for Host settings that the
    # daemon cannot read here.
    upstream.own_handler = lambda r, c: qbittorrent_like(r, c)
    d = proxy(qbit_addr=f"https://127.0.0.1:{upstream.port}")
    r = exchange(d, "GET", "/refused")
    assert r.status == 502, r
    assert "issuer is unknown" in d.log()
    assert not upstream.requests(), "a request was sent to an upstream that did not verify"
