"""Fixtures for the end-to-end tests: the real daemon on free loopback ports.

The binary is $QGS_BIN, or build/release/qbit-gluetun-sync in this repository.
Each daemon gets a controlled environment (PATH and the sanitizer options only,
plus what the test sets), its stderr in a file the test can read, and is stopped
by PID when the test ends: SIGTERM, then SIGKILL after a deadline. A daemon the
test did not stop itself must exit 0 on that SIGTERM.
"""

import os
import re
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

# The rigs' asserts report values: rewritten like the tests', so registered before any imports them.
pytest.register_assert_rewrite("qbt_rig", "proxy_rig", "recording_upstream", "netns_rig", "prom_exposition")

import qbt_builds  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_BIN = REPO_ROOT / "build" / "release" / "qbit-gluetun-sync"

# How long the daemon may take to start listening, and to exit after SIGTERM.
# Generous, because the sanitizer build is slow and CI machines are busy.
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0

PASSTHROUGH_ENV = ("PATH", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS")


def pytest_configure(config):
    # A qBittorrent certificate for another address than 127.0.0.1, or an expired one, is not checked
    # by the harness (qbt_rig.QbtInstance.verify): the sidecar is what checks it.
    config.addinivalue_line("filterwarnings", "ignore::urllib3.exceptions.InsecureRequestWarning")


def pytest_report_header(config):
    return "qBittorrent builds: " + "; ".join(b.describe() for b in qbt_builds.BUILDS)


def pytest_generate_tests(metafunc):
    """Every test that needs a real qBittorrent (the qbt fixture) runs once per build, named by version."""
    if "qbt_build" in metafunc.fixturenames:
        metafunc.parametrize("qbt_build", [
            pytest.param(b, id=b.id, marks=() if b.available else pytest.mark.skip(reason=f"qBittorrent {b.describe()}"))
            for b in qbt_builds.BUILDS])


def bin_path():
    return Path(os.environ.get("QGS_BIN") or DEFAULT_BIN)


def binary_llhttp_version():
    """(major, minor, patch) of the llhttp the daemon was built with, from its --version.

    llhttp 8.1 (Debian 12) and 9 (Debian 13) differ in a few valid forms they accept; the tests
    of those expect what the binary's own llhttp does. (0, 0, 0) when there is no binary yet (a
    test that runs it fails then, naming the path)."""
    try:
        out = subprocess.run([str(bin_path()), "--version"], capture_output=True, text=True, timeout=30).stdout
    except OSError:
        return (0, 0, 0)
    m = re.search(r"^llhttp (\d+)\.(\d+)\.(\d+)", out, re.M)
    assert m, f"{bin_path()} --version names no llhttp version: {out!r}"
    return tuple(int(x) for x in m.groups())


def base_env(**extra):
    """An environment with nothing of ours in it: PATH and sanitizer options, plus extra."""
    env = {k: os.environ[k] for k in PASSTHROUGH_ENV if k in os.environ}
    env.setdefault("PATH", "/usr/bin:/bin")
    env.update({k: str(v) for k, v in extra.items()})
    return env


def wait_until(predicate, timeout, interval=0.02, message=None):
    """Polls predicate until it returns a true value (returned), or fails after timeout seconds with
    message (a string, or a callable that makes one then, to show the state at the time)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            msg = message() if callable(message) else message
            pytest.fail(msg or f"condition not met within {timeout} s: {predicate!r}")
        time.sleep(interval)


def has_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def write_in_place(path, data):
    """Like Gluetun's os.WriteFile: open with O_TRUNC (the file is empty now), then write.
    A str is written one byte per character (latin-1), so "\xff" is the byte 0xff."""
    data = data.encode("latin-1") if isinstance(data, str) else data
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
    finally:
        os.close(fd)


def port_file(tmp_path, port=None, name="gluetun"):
    """PORT_FILE in a directory of its own, created; with port, the file holds it (Gluetun's way)."""
    d = tmp_path / name
    d.mkdir(parents=True, exist_ok=True)
    path = d / "forwarded_port"
    if port is not None:
        write_in_place(path, str(port))
    return path


_handed_out = set()


def free_port():
    """A TCP port free on every local address (IPv4 and IPv6 where there is IPv6) at the time of the
    call, and never handed out before in this run: two servers a test starts cannot get the same."""
    for _ in range(100):
        if has_ipv6_loopback():
            with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
                s.bind(("::", 0))
                port = s.getsockname()[1]
        else:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise RuntimeError("no free port found")


def family_of(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def can_connect(host, port, timeout=0.5):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def localhost_families():
    """The address families "localhost" resolves to here (empty where it does not resolve at all: a
    debootstrapped root has no /etc/hosts until something writes one)."""
    try:
        return {ai[0] for ai in socket.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM)}
    except socket.gaierror:
        return set()


def skip_unless_localhost_is_ipv4():
    """Skips the test where "localhost" does not resolve to 127.0.0.1."""
    if socket.AF_INET not in localhost_families():
        pytest.skip("localhost does not resolve to 127.0.0.1 here")


def connection_refused(host, port):
    """True when a connect to host:port is actively refused (nothing listens)."""
    s = socket.socket(family_of(host), socket.SOCK_STREAM)
    s.settimeout(2.0)
    try:
        s.connect((host, port))
    except ConnectionRefusedError:
        return True
    except OSError:
        return False
    finally:
        s.close()
    return False


def tcp_sockets():
    """This network namespace's TCP sockets, from /proc/net/tcp{,6}: (local port, remote port,
    state as the kernel writes it ("01" ESTABLISHED, "08" CLOSE_WAIT, ...), receive queue bytes)."""
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    yield (int(fields[1].rsplit(":", 1)[1], 16), int(fields[2].rsplit(":", 1)[1], 16),
                           fields[3], int(fields[4].split(":")[1], 16))
        except FileNotFoundError:
            pass


def server_side_connections(port):
    """Connections whose local port is port and that the server has not closed yet:
    ESTABLISHED (01) and CLOSE_WAIT (08), the latter being connections the client closed
    and the server still holds."""
    return sum(1 for local, _, state, _ in tcp_sockets() if local == port and state in ("01", "08"))


def wait_no_client_connections(port, timeout=5.0):
    """Waits until the server on port holds no client connection (e.g. the readiness probe)."""
    wait_until(lambda: server_side_connections(port) == 0, timeout,
               message=f"the server on port {port} still holds client connections")


class Response:
    def __init__(self, version, status, reason, headers, body):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers  # list of (lower-case name, value)
        self.body = body

    def header(self, name):
        """The value of the single header called name, None when absent; fails when repeated."""
        values = [v for k, v in self.headers if k == name.lower()]
        assert len(values) <= 1, f"header {name} repeated: {values}"
        return values[0] if values else None

    def __repr__(self):
        return f"<Response {self.version} {self.status} {self.reason!r} {self.headers} {self.body!r}>"


def tls_client_context(verify):
    """An ssl.SSLContext for a test client: trusting the PEM file verify (names checked), or, when
    verify is False, checking nothing."""
    if verify is False:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    return ssl.create_default_context(cafile=str(verify))


class RawConn:
    """A client socket with a read buffer, for tests that need exact bytes on the wire; over TLS when
    given an ssl.SSLContext (the handshake is done when the constructor returns)."""

    def __init__(self, host, port, timeout=5.0, tls=None):
        self.sock = socket.socket(family_of(host), socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        if tls is not None:
            self.sock = tls.wrap_socket(self.sock, server_hostname=host)
        self.buf = b""

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError(f"connection closed by the server; unread: {self.buf!r}")
        self.buf += chunk

    def _read_line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _read_exact(self, n):
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_response(self, head=False):
        """Reads one response; the body by Content-Length or chunked, or to EOF when neither."""
        status_line = self._read_line().decode("latin-1")
        version, status, *reason = status_line.split(" ", 2)
        assert version in ("HTTP/1.0", "HTTP/1.1"), f"bad status line {status_line!r}"
        headers = []
        while True:
            line = self._read_line()
            if not line:
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers.append((name.strip().lower(), value.strip()))
        resp = Response(version, int(status), reason[0] if reason else "", headers, b"")
        code = resp.status
        if head or code in (204, 304) or 100 <= code < 200:
            return resp
        te = resp.header("transfer-encoding")
        cl = resp.header("content-length")
        if te is not None and "chunked" in te.lower():
            body = b""
            while True:
                size = int(self._read_line().split(b";")[0], 16)
                if size == 0:
                    while self._read_line():
                        pass
                    break
                body += self._read_exact(size)
                assert self._read_line() == b""
            resp.body = body
        elif cl is not None:
            resp.body = self._read_exact(int(cl))
        else:
            resp.body = self.read_until_closed()
        return resp

    def read_until_closed(self, timeout=None):
        """Reads until the server closes the connection; returns what arrived after the buffer.

        A reset (ECONNRESET) counts as closed too. A timeout fails the test.
        """
        if timeout is not None:
            self.sock.settimeout(timeout)
        data, self.buf = self.buf, b""
        while True:
            try:
                chunk = self.sock.recv(65536)
            except (ConnectionResetError, ssl.SSLEOFError):
                return data
            except socket.timeout:
                pytest.fail(f"the server did not close the connection; received {data!r}")
            if not chunk:
                return data
            data += chunk

    def is_closed_by_server(self, timeout=5.0):
        """True when the server closes with nothing more to say, within timeout."""
        return self.read_until_closed(timeout) == b""


def request_bytes(method, path, headers=None, body=b"", version="HTTP/1.1", host="test"):
    lines = [f"{method} {path} {version}", f"Host: {host}"]
    for k, v in (headers or {}).items():
        lines.append(f"{k}: {v}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def http_request(host, port, method, path, headers=None, body=b"", tls=None):
    """One request on a fresh connection (over TLS with the ssl.SSLContext tls) with Connection: close;
    returns the Response. Its Host is the address connected to, as a browser sends it when given that
    address (headers may set another)."""
    hdrs = {"Connection": "close"}
    hdrs.update(headers or {})
    if body:
        hdrs["Content-Length"] = str(len(body))
    authority = hdrs.pop("Host", f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
    with RawConn(host, port, tls=tls) as c:
        c.send(request_bytes(method, path, hdrs, body, host=authority))
        return c.read_response(head=(method == "HEAD"))


class Daemon:
    """One running qbit-gluetun-sync, started by the daemon fixture."""

    def __init__(self, proc, env, log_path, out_path, port, host):
        self.proc = proc
        self.env = env
        self.log_path = log_path
        self.out_path = out_path
        self.port = port
        self.host = host  # where to connect: LISTEN_ADDR, or 127.0.0.1 when unset
        self.expect_clean_exit = True  # a test that expects otherwise sets it False
        self.stopped_by_test = False
        # Over TLS when TLS_CERT_FILE is set; clients trust that certificate itself (self-signed in
        # most tests) unless the test sets verify to its CA's file, or False.
        self.tls = "TLS_CERT_FILE" in env
        self.verify = str(env["TLS_CERT_FILE"]) if self.tls else True

    @property
    def pid(self):
        return self.proc.pid

    @property
    def stopped(self):
        return self.stopped_by_test

    @property
    def scheme(self):
        return "https" if self.tls else "http"

    @property
    def base_url(self):
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    def tls_context(self):
        """The client context for this daemon's port, None when it speaks plain HTTP."""
        return tls_client_context(self.verify) if self.tls else None

    @property
    def origin(self):
        return self.base_url

    def log(self):
        try:
            return self.log_path.read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def stdout(self):
        return self.out_path.read_bytes().decode("utf-8", "replace")

    def request(self, method, path, headers=None, body=b"", host=None):
        return http_request(host or self.host, self.port, method, path, headers, body, tls=self.tls_context())

    def connect(self, host=None, timeout=5.0):
        return RawConn(host or self.host, self.port, timeout, tls=self.tls_context())

    def terminate(self, timeout=STOP_TIMEOUT):
        """Sends SIGTERM and waits for the exit; returns the exit status and the seconds it took.

        Kills with SIGKILL (and fails the test) when it does not exit in time.
        """
        self.stopped_by_test = True
        rc, elapsed, killed = self.stop_by_pid(timeout)
        if killed:
            pytest.fail(f"daemon pid {self.pid} ignored SIGTERM for {timeout} s; log:\n{self.log()}")
        return rc, elapsed

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM by PID; fails unless it exits 0 within timeout (SIGKILL as a last resort)."""
        rc, _ = self.terminate(timeout)
        assert rc == 0, f"daemon pid {self.pid} exited {rc} on SIGTERM; log:\n{self.log()}"
        return rc

    def stop_by_pid(self, timeout):
        """SIGTERM by PID, then SIGKILL after timeout; returns (status, seconds, killed)."""
        if self.proc.poll() is not None:
            return self.proc.returncode, 0.0, False
        start = time.monotonic()
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout), time.monotonic() - start, False
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            return self.proc.wait(), time.monotonic() - start, True


@pytest.fixture
def qgs_bin():
    path = bin_path()
    if not path.exists():
        pytest.fail(f"{path} does not exist: run `make` in {REPO_ROOT} or set QGS_BIN")
    return path


@pytest.fixture
def run_cli(qgs_bin):
    """Runs the binary to completion with args and a controlled env; returns CompletedProcess."""

    def run(*args, timeout=10, **env):
        return subprocess.run(
            [str(qgs_bin), *args],
            env=base_env(**env),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run


def start_daemon(qgs_bin, work_dir, n, ready=None, **overrides):
    """Starts the daemon with a controlled environment and waits until ready(d) holds (default:
    its port accepts). Defaults: LISTEN_ADDR=127.0.0.1, a free LISTEN_PORT, a PORT_FILE in
    work_dir and a QBIT_ADDR where nothing listens; an override of None removes a variable."""
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    if not Path(qgs_bin).exists():
        pytest.fail(f"{qgs_bin} does not exist: run `make` in {REPO_ROOT} or set QGS_BIN")
    env = {
        "LISTEN_ADDR": "127.0.0.1",
        "LISTEN_PORT": free_port(),
        "PORT_FILE": work_dir / "forwarded_port",
        "QBIT_ADDR": f"http://127.0.0.1:{free_port()}",
    }
    env.update(overrides)
    env = {k: v for k, v in env.items() if v is not None}
    port = int(env["LISTEN_PORT"])
    host = env.get("LISTEN_ADDR", "127.0.0.1")
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1" if host == "0.0.0.0" else "::1"
    log_path = work_dir / f"daemon{n}.stderr"
    out_path = work_dir / f"daemon{n}.stdout"
    with open(log_path, "wb") as err, open(out_path, "wb") as out:
        proc = subprocess.Popen([str(qgs_bin)], env=base_env(**env), stdin=subprocess.DEVNULL, stdout=out, stderr=err)
    d = Daemon(proc, env, log_path, out_path, port, host)

    def started():
        if proc.poll() is not None:
            pytest.fail(f"daemon exited with {proc.returncode} before it was ready; log:\n{d.log()}")
        try:
            return ready(d) if ready else can_connect(host, port)
        except (OSError, EOFError, ValueError):
            return False

    try:
        wait_until(started, START_TIMEOUT, message=lambda: f"daemon on {host}:{port} not ready; log:\n{d.log()}")
    except BaseException:
        d.stop_by_pid(STOP_TIMEOUT)
        raise
    return d


def stop_daemons(started):
    """Stops, by PID, every daemon the test did not stop itself; each must exit 0 on SIGTERM."""
    problems = []
    for d in started:
        if d.stopped_by_test:
            continue
        if d.proc.poll() is not None:
            problems.append(f"pid {d.pid} exited on its own with {d.proc.returncode}; log:\n{d.log()}")
            continue
        rc, _, killed = d.stop_by_pid(STOP_TIMEOUT)
        if killed:
            problems.append(f"pid {d.pid} ignored SIGTERM for {STOP_TIMEOUT} s; log:\n{d.log()}")
        elif d.expect_clean_exit and rc != 0:
            problems.append(f"pid {d.pid} exited {rc} on SIGTERM; log:\n{d.log()}")
    if problems:
        pytest.fail("\n".join(problems))


@pytest.fixture
def daemon(qgs_bin, tmp_path):
    """A factory: daemon(**env) starts the daemon (start_daemon) and waits until its port accepts.
    Every daemon the test did not stop itself is stopped at the end and must exit 0."""
    started = []

    def start(**overrides):
        d = start_daemon(qgs_bin, tmp_path, len(started), **overrides)
        started.append(d)
        return d

    yield start
    stop_daemons(started)


@pytest.fixture
def public_copy():
    """Factory: public_copy(path) copies a file into a fresh world-readable directory and returns
    the copy's path, for runs as another user (the checkout itself may sit in a 0700 directory)."""
    import shutil
    import tempfile

    top = tempfile.mkdtemp(prefix="qgs-public-")
    os.chmod(top, 0o755)

    def copy(path):
        dest = os.path.join(top, os.path.basename(str(path)))
        shutil.copy2(str(path), dest)
        os.chmod(dest, 0o755)
        return Path(dest)

    yield copy
    shutil.rmtree(top, ignore_errors=True)
