"""Start-up and shutdown: SIGTERM, the log, and what the binary links."""

import os
import re
import shutil
import signal
import subprocess

import pytest

from conftest import connection_refused, request_bytes, wait_until

# SIGTERM with nothing in flight should end the process at once, not after SHUTDOWN_TIMEOUT.
PROMPT_EXIT = 3.0


def test_sigterm_idle_exits_0(daemon):
    d = daemon()
    rc, elapsed = d.terminate()
    assert rc == 0, d.log()
    assert elapsed < PROMPT_EXIT, elapsed


def test_sigterm_with_idle_keep_alive_connection_exits_0_promptly(daemon):
    d = daemon(SHUTDOWN_TIMEOUT="10", IDLE_TIMEOUT="60")
    with d.connect() as c:
        c.send(request_bytes("GET", "/healthz"))
        assert c.read_response().status == 200
        rc, elapsed = d.terminate()
        assert rc == 0, d.log()
        assert elapsed < PROMPT_EXIT, elapsed
        assert c.is_closed_by_server(timeout=1.0)


def test_port_refuses_after_sigterm(daemon):
    d = daemon()
    rc, _ = d.terminate()
    assert rc == 0, d.log()
    assert connection_refused(d.host, d.port)


def test_log_says_listening(daemon):
    d = daemon()
    wait_until(lambda: "listening" in d.log(), 5.0, message="no 'listening' line in the log")
    line = next(line for line in d.log().splitlines() if "listening" in line)
    assert str(d.port) in line, line


def test_denied_request_logged_with_client_address(daemon):
    d = daemon(ALLOWED_IPS="")
    wait_until(lambda: "listening" in d.log(), 5.0)
    before = len(d.log())
    assert d.request("GET", "/secret").status == 403

    def logged():
        return [line for line in d.log()[before:].splitlines() if "127.0.0.1" in line]

    wait_until(logged, 5.0, message=f"no log line with the client address:\n{d.log()}")


LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z (debug|info|warn|error) +\S")


def test_log_lines_are_one_event_each(daemon):
    # Every line is "time level message": no blank or continuation lines, whatever happened.
    d = daemon(ALLOWED_IPS="127.0.0.1", LOG_LEVEL="debug")
    d.request("GET", "/healthz")
    d.request("GET", "/proxied")
    with d.connect() as c:
        c.send(b"GARBAGE\r\n\r\n")
        c.read_until_closed()
    rc, _ = d.terminate()
    assert rc == 0, d.log()
    bad = [line for line in d.log().split("\n")[:-1] if not LOG_LINE.match(line)]
    assert not bad, f"malformed log lines {bad!r} in:\n{d.log()}"
    assert d.log().endswith("\n")


def test_password_never_logged(daemon, tmp_path):
    secret = "hunter2-Zq9"
    pass_file = tmp_path / "pass"
    pass_file.write_text(secret + "\n")
    d = daemon(QBIT_USER="admin", QBIT_PASS_FILE=pass_file, LOG_LEVEL="debug", ALLOWED_IPS="127.0.0.1")
    d.request("GET", "/healthz")
    d.request("GET", "/x")
    d.request("GET", "/x", {"Authorization": "Basic x"})
    with d.connect() as c:
        c.send(b"GARBAGE\r\n\r\n")
        c.read_until_closed()
    rc, _ = d.terminate()
    assert rc == 0, d.log()
    assert secret not in d.log()
    assert secret not in d.stdout()


def test_password_from_env_never_logged(daemon):
    secret = "hunter2-Env7"
    d = daemon(QBIT_USER="admin", QBIT_PASS=secret, LOG_LEVEL="debug", ALLOWED_IPS="")
    d.request("GET", "/healthz")
    d.request("GET", "/x")
    rc, _ = d.terminate()
    assert rc == 0, d.log()
    assert secret not in d.log()
    assert secret not in d.stdout()


# Libraries that are part of glibc; anything else must be linked statically.
GLIBC_LIBS = re.compile(r"^(linux-vdso\.so|linux-gate\.so|libc\.so|libm\.so|ld-linux[-\w.]*\.so"
                        r"|libpthread\.so|libdl\.so|librt\.so)")


@pytest.mark.skipif(
    os.environ.get("QGS_SANITIZED") == "1", reason="the sanitizer build links libasan/libubsan"
)
def test_release_binary_links_only_glibc(qgs_bin):
    r = subprocess.run(["ldd", str(qgs_bin)], capture_output=True, text=True, timeout=10)
    if "not a dynamic executable" in (r.stdout + r.stderr) or "statically linked" in r.stdout:
        return
    assert r.returncode == 0, r.stderr
    libs = [line.split()[0] for line in r.stdout.splitlines() if line.strip()]
    # ld-linux appears with its full path.
    names = [os.path.basename(lib) for lib in libs]
    others = [n for n in names if not GLIBC_LIBS.match(n)]
    assert not others, f"dynamically linked beyond glibc: {others}\n{r.stdout}"
    for forbidden in ("libuv", "libjansson", "libllhttp", "libcmocka"):
        assert not any(forbidden in n for n in names), r.stdout


def _children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except FileNotFoundError:
        return []


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root for a PID namespace")
def test_sigterm_as_pid_1_exits_0(qgs_bin, tmp_path):
    # In a container the daemon is PID 1, and the kernel drops signals PID 1 has no handler for.
    from conftest import base_env, free_port

    port = free_port()
    env = base_env(LISTEN_ADDR="127.0.0.1", LISTEN_PORT=str(port), PORT_FILE=str(tmp_path / "pf"),
                   QBIT_ADDR=f"http://127.0.0.1:{free_port()}")
    log = open(tmp_path / "pid1.log", "wb")
    outer = subprocess.Popen(["unshare", "--pid", "--fork", str(qgs_bin)], env=env,
                             stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    try:
        wait_until(lambda: _children(outer.pid), 5, message="the daemon to start in its PID namespace")
        inner = _children(outer.pid)[0]
        with open(f"/proc/{inner}/status") as f:
            nspid = [line.split()[-1] for line in f if line.startswith("NSpid:")][0]
        assert nspid == "1", f"the daemon is not PID 1 in its namespace (NSpid {nspid})"
        wait_until(lambda: not connection_refused("127.0.0.1", port), 5, message="the daemon to listen")
        os.kill(inner, signal.SIGTERM)
        rc = outer.wait(timeout=10)
        assert rc == 0, (rc, (tmp_path / "pid1.log").read_text())
    finally:
        if outer.poll() is None:
            for child in _children(outer.pid):
                os.kill(child, signal.SIGKILL)
            outer.kill()
            outer.wait()


def test_repeated_denials_summarised_not_flooded(daemon):
    # A scanner must not be able to fill a disk: a burst of denials is logged a few times, then counted.
    d = daemon(ALLOWED_IPS="")
    for i in range(40):
        assert d.request("GET", f"/probe{i}").status == 403
    rc, _ = d.terminate()
    assert rc == 0
    denied = [line for line in d.log().splitlines() if "denied 127.0.0.1" in line]
    assert 1 <= len(denied) <= 5, denied
    assert re.search(r"\b35 more denied requests not logged", d.log()), d.log()
