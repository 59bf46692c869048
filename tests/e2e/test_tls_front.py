"""The front door over TLS (TLS_CERT_FILE, TLS_KEY_FILE): HTTPS only, TLS 1.2 and 1.3, ALPN
http/1.1; what qBittorrent is told (X-Forwarded-Proto, Secure cookies, https:// origins); clients
that do not speak TLS, stall or break off; and certificates renewed without a restart."""

import os
import socket
import ssl
import time

import pytest

from conftest import RawConn, http_request, request_bytes, tls_client_context, wait_no_client_connections, wait_until
from proxy_rig import exchange, proxy, upstream  # noqa: F401  (fixtures)
from recording_upstream import Reply
from tls_rig import Pki, self_signed

TIMEOUT = 10


@pytest.fixture
def front(tmp_path):
    """A self-signed certificate for localhost, 127.0.0.1 and ::1."""
    return self_signed(tmp_path / "front", "front")


def tls_env(cert):
    return {"TLS_CERT_FILE": cert.cert, "TLS_KEY_FILE": cert.key}


def client_hello():
    """The bytes of a real ClientHello (Python's), from a handshake over memory."""
    ctx = tls_client_context(False)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def served(d):
    """True when the daemon answers /healthz over TLS at once."""
    return http_request(d.host, d.port, "GET", "/healthz", tls=d.tls_context()).status == 200


# --------------------------------------------------------------------------- speaking HTTPS


def test_https_front_door_serves_its_endpoints_and_proxies(daemon, proxy, upstream, front):
    d = proxy(**tls_env(front))
    assert d.base_url.startswith("https://")
    with d.connect() as c:
        assert c.sock.version() in ("TLSv1.2", "TLSv1.3")
        c.send(request_bytes("GET", "/healthz", host=d.authority))
        assert c.read_response().status == 200
        c.send(request_bytes("GET", "/api/v2/app/version", host=d.authority))  # keep-alive, proxied
        assert c.read_response().status == 200
    r = upstream.requests()[-1]
    assert r.target == "/api/v2/app/version"
    assert r.values("x-forwarded-proto") == ["https"], r


def test_plain_http_on_the_tls_port_gets_a_plain_400_then_a_close(daemon, proxy, upstream, front):
    d = proxy(**tls_env(front))
    with RawConn(d.host, d.port) as c:
        c.send(request_bytes("GET", "/api/v2/app/version", host=d.authority))
        r = c.read_response()
        assert r.status == 400, r
        assert b"https://" in r.body, r
        assert c.is_closed_by_server(), "the connection stayed open after the 400"
    assert served(d)
    assert not upstream.requests(), "the plain request went through"


@pytest.mark.parametrize("version", ["TLSv1_2", "TLSv1_3"])
def test_tls_1_2_and_1_3_are_spoken(daemon, front, version):
    d = daemon(**tls_env(front))
    ctx = tls_client_context(front.cert)
    ctx.minimum_version = ctx.maximum_version = getattr(ssl.TLSVersion, version)
    with RawConn(d.host, d.port, tls=ctx) as c:
        assert c.sock.version() == version.replace("_", ".")
        c.send(request_bytes("GET", "/healthz"))
        assert c.read_response().status == 200


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated")
def test_tls_1_1_is_refused(daemon, front):
    d = daemon(**tls_env(front))
    ctx = tls_client_context(False)
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises(ssl.SSLError):
        RawConn(d.host, d.port, tls=ctx)
    assert served(d)


@pytest.mark.parametrize("offered,chosen", [(["h2", "http/1.1"], "http/1.1"), (["h2"], None), (None, None)])
def test_alpn_chooses_http_1_1_or_nothing(daemon, front, offered, chosen):
    d = daemon(**tls_env(front))
    ctx = tls_client_context(front.cert)
    if offered:
        ctx.set_alpn_protocols(offered)
    with RawConn(d.host, d.port, tls=ctx) as c:
        assert c.sock.selected_alpn_protocol() == chosen


def test_the_certificate_is_checked_by_name_and_chain(daemon, front):
    """A client that verifies (as a browser does) accepts the configured certificate for 127.0.0.1."""
    d = daemon(**tls_env(front))
    with RawConn(d.host, d.port, tls=tls_client_context(front.cert)) as c:
        # OpenSSL prints the serial in whole bytes (a leading 0 when its digit count is odd).
        assert int(c.sock.getpeercert()["serialNumber"], 16) == front.serial


# --------------------------------------------------------------------------- what qBittorrent is told


def test_cookies_are_secure_over_tls_and_not_over_plain_http(daemon, proxy, upstream, front, tmp_path):
    """qBittorrent 4.5 (or 5.x without reverse-proxy support) leaves Secure out; an HTTPS qBittorrent
    puts it in. The client gets what its own scheme needs either way."""
    upstream.handler = lambda req, conn: Reply(200, [("Set-Cookie", "SID=abc; HttpOnly; path=/"),
                                                      ("Set-Cookie", "other=1; Secure; HttpOnly")], b"ok")
    tls = proxy(**tls_env(front))
    r = exchange(tls, "GET", "/api/v2/auth/login")
    assert [v for k, v in r.headers if k == "set-cookie"] == ["SID=abc; HttpOnly; path=/; Secure",
                                                              "other=1; Secure; HttpOnly"], r
    plain = proxy()
    r = exchange(plain, "GET", "/api/v2/auth/login")
    assert [v for k, v in r.headers if k == "set-cookie"] == ["SID=abc; HttpOnly; path=/",
                                                              "other=1; HttpOnly"], r


@pytest.mark.parametrize("origin,status", [("https://{a}", 200), ("http://{a}", 401)])
def test_same_origin_check_compares_https_origins(daemon, proxy, upstream, front, origin, status):
    d = proxy(**tls_env(front))
    r = exchange(d, "POST", "/api/v2/torrents/pause", [("Origin", origin.format(a=d.authority)),
                                                      ("Content-Length", "0")])
    assert r.status == status, r


# --------------------------------------------------------------------------- clients that misbehave


def test_a_stalled_handshake_is_cut_off_at_header_timeout_without_delaying_others(daemon, front):
    d = daemon(HEADER_TIMEOUT=1, **tls_env(front))
    hello = client_hello()
    with RawConn(d.host, d.port) as silent, RawConn(d.host, d.port) as partial:
        partial.send(hello[:20])
        t0 = time.monotonic()
        assert served(d), "another client waited behind the stalled ones"
        assert time.monotonic() - t0 < 0.9
        assert silent.is_closed_by_server(timeout=5) and partial.is_closed_by_server(timeout=5)
        assert time.monotonic() - t0 >= 0.5, "cut off before HEADER_TIMEOUT"


@pytest.mark.parametrize("garbage", [b"\x16\x03\x01\x00\x05hello, not a handshake at all" + b"\x00" * 64,
                                     b"\x00\x01\x02\x03\xff" * 20, b"\x16\x04" + b"x" * 100],
                         ids=["bad-handshake-record", "binary", "bad-version"])
def test_garbage_instead_of_a_client_hello_is_closed(daemon, front, garbage):
    d = daemon(HEADER_TIMEOUT=30, **tls_env(front))
    with RawConn(d.host, d.port) as c:
        c.send(garbage)
        t0 = time.monotonic()
        c.read_until_closed(timeout=5)  # an alert, or nothing, then the close
        assert time.monotonic() - t0 < 5
    assert served(d)


def test_a_client_that_closes_mid_handshake_leaves_the_daemon_serving(daemon, front):
    d = daemon(**tls_env(front))
    hello = client_hello()
    for cut in (len(hello) // 2, len(hello)):
        with RawConn(d.host, d.port) as c:
            c.send(hello[:cut])
    s = socket.create_connection((d.host, d.port))
    s.sendall(hello)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST on close
    s.close()
    wait_until(lambda: served(d), TIMEOUT)
    assert not [line for line in d.log().splitlines() if " error " in line and "port sync" not in line], d.log()


def test_over_max_connections_a_tls_client_is_closed_at_once(daemon, front):
    d = daemon(MAX_CONNECTIONS=1, **tls_env(front))
    wait_no_client_connections(d.port)  # the start-up probe's
    with d.connect():
        with RawConn(d.host, d.port) as extra:
            try:
                extra.send(client_hello())
            except ConnectionResetError:
                return  # closed (with a reset) before the hello was even sent
            assert extra.is_closed_by_server(timeout=5)


# --------------------------------------------------------------------------- configuration and tools


def test_a_key_that_does_not_match_names_both_files(run_cli, tmp_path):
    a, b = self_signed(tmp_path / "a", "a"), self_signed(tmp_path / "b", "b")
    r = run_cli("--check-config", TLS_CERT_FILE=str(a.cert), TLS_KEY_FILE=str(b.key))
    assert r.returncode == 2, r
    assert str(a.cert) in r.stderr and str(b.key) in r.stderr and "not the key" in r.stderr, r.stderr


@pytest.mark.parametrize("which", ["cert", "key"])
def test_an_unreadable_or_non_pem_file_is_named(run_cli, tmp_path, front, which):
    junk = tmp_path / "junk.pem"
    junk.write_text("not PEM\n")
    env = {"TLS_CERT_FILE": str(front.cert), "TLS_KEY_FILE": str(front.key)}
    var = "TLS_CERT_FILE" if which == "cert" else "TLS_KEY_FILE"
    env[var] = str(junk)
    r = run_cli(**env)
    assert r.returncode == 2 and f'{var}="{junk}"' in r.stderr, r.stderr
    env[var] = str(tmp_path / "missing.pem")
    r = run_cli(**env)
    assert r.returncode == 2 and f'{var}="{tmp_path / "missing.pem"}"' in r.stderr, r.stderr


def test_check_config_describes_the_certificate(run_cli, front):
    r = run_cli("--check-config", **{k: str(v) for k, v in tls_env(front).items()})
    assert r.returncode == 0, r
    line = [x for x in r.stdout.splitlines() if x.startswith("front door certificate: serial ")]
    assert line and "valid until" in line[0], r.stdout
    assert int(line[0].split()[4].rstrip(","), 16) == front.serial, line


def test_healthcheck_speaks_tls_when_the_front_door_does(daemon, run_cli, front):
    d = daemon(**tls_env(front))
    env = {"LISTEN_ADDR": "127.0.0.1", "LISTEN_PORT": str(d.port), **{k: str(v) for k, v in tls_env(front).items()}}
    r = run_cli("healthcheck", **env)
    assert r.returncode == 0, r
    plain = daemon()
    env["LISTEN_PORT"] = str(plain.port)
    r = run_cli("healthcheck", **env)
    assert r.returncode == 1 and "TLS" in r.stderr, r


def test_openssl_is_not_loaded_without_tls(daemon, front):
    """Without TLS configured the daemon never maps OpenSSL (its memory is not paid); with it, it does."""
    def maps_openssl(d):
        return "libssl.so" in open(f"/proc/{d.pid}/maps").read()
    assert not maps_openssl(daemon())
    assert maps_openssl(daemon(**tls_env(front)))


# --------------------------------------------------------------------------- renewal


class Rotation:
    """A CA and the front door's pair in a directory, replaced the ways deployments replace it."""

    def __init__(self, tmp_path, layout):
        self.pki = Pki(tmp_path / "pki")
        self.dir = tmp_path / "tls"
        self.dir.mkdir()
        self.layout = layout
        self.n = 0
        self.install(self.pki.issue("front0"))

    @property
    def env(self):
        return {"TLS_CERT_FILE": self.dir / "tls.crt", "TLS_KEY_FILE": self.dir / "tls.key"}

    def install(self, cert, delay=0.0):
        """Puts cert in place: two renames, or a Kubernetes-style ..data swap (both files at once)."""
        self.n += 1
        if self.layout == "rename":
            for src, name in ((cert.cert, "tls.crt"), (cert.key, "tls.key")):
                tmp = self.dir / f".{name}.tmp"
                tmp.write_bytes(src.read_bytes())
                os.replace(tmp, self.dir / name)
                time.sleep(delay)
            return cert
        version = self.dir / f"..2026_12_01_{self.n:04d}"
        version.mkdir()
        (version / "tls.crt").write_bytes(cert.cert.read_bytes())
        (version / "tls.key").write_bytes(cert.key.read_bytes())
        os.symlink(version.name, self.dir / "..data_tmp")
        os.replace(self.dir / "..data_tmp", self.dir / "..data")
        for name in ("tls.crt", "tls.key"):
            if not (self.dir / name).is_symlink():
                os.symlink(f"..data/{name}", self.dir / name)
        return cert

    def serial_now(self, d):
        with RawConn(d.host, d.port, tls=tls_client_context(self.pki.cert)) as c:
            return int(c.sock.getpeercert()["serialNumber"], 16)


@pytest.mark.parametrize("layout", ["rename", "data-swap"])
def test_a_renewed_certificate_serves_new_connections_while_open_ones_carry_on(daemon, tmp_path, layout):
    rot = Rotation(tmp_path, layout)
    d = daemon(**rot.env)
    d.verify = rot.pki.cert
    first = int(open(rot.dir / "tls.crt").read() and rot.serial_now(d))
    with d.connect() as before:
        before.send(request_bytes("GET", "/healthz"))
        assert before.read_response().status == 200
        new = rot.install(rot.pki.issue("front1"), delay=0.3)  # the key 0.3 s after the certificate
        wait_until(lambda: rot.serial_now(d) == new.serial, TIMEOUT,
                   message=lambda: f"still serial {rot.serial_now(d)}; log:\n{d.log()}")
        assert new.serial != first
        before.send(request_bytes("GET", "/healthz"))
        assert before.read_response().status == 200, "a connection opened before the renewal broke"
        assert int(before.sock.getpeercert()["serialNumber"], 16) == first
    assert f"TLS certificate renewed from {rot.dir / 'tls.crt'}: serial {new.serial:X}," in d.log()
    assert "cannot be used" not in d.log(), "a renewal in two steps was taken for a broken pair"


@pytest.mark.parametrize("layout", ["rename", "data-swap"])
def test_a_broken_new_pair_is_logged_and_the_old_one_kept(daemon, tmp_path, layout):
    rot = Rotation(tmp_path, layout)
    d = daemon(**rot.env)
    d.verify = rot.pki.cert
    old = rot.serial_now(d)
    a, b = rot.pki.issue("a"), rot.pki.issue("b")
    broken = type(a)(a.cert, b.key, a.serial, a.sans)  # a's certificate with b's key
    rot.install(broken)
    wait_until(lambda: "the renewed TLS certificate cannot be used" in d.log(), TIMEOUT,
               message=lambda: f"no error for a broken pair; log:\n{d.log()}")
    assert "is not the key of the certificate" in d.log()
    assert rot.serial_now(d) == old
    good = rot.install(rot.pki.issue("c"))
    wait_until(lambda: rot.serial_now(d) == good.serial, TIMEOUT, message=lambda: d.log())
