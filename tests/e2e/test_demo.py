"""The README's first command: scripts/demo.py (what `make demo` runs after building), as root
and as an ordinary user, until it has shown two port changes applied."""

import os
import re
import shutil
import subprocess

import pytest

from conftest import REPO_ROOT, base_env, free_port

DEMO = REPO_ROOT / "scripts" / "demo.py"


def run_demo(qgs_bin, user=None, demo=DEMO):
    env = base_env(QGS_BIN=qgs_bin, DEMO_PORT=free_port(), DEMO_CHANGES=2, DEMO_INTERVAL="0.2",
                   HOME="/tmp", PYTHONDONTWRITEBYTECODE=1)
    cmd = ["/usr/bin/python3", str(demo)]
    if user is not None:
        cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups"] + cmd
    return subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)


def check(result):
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    changes = re.findall(r"change \d+: wrote (\d+) to the port file -> qBittorrent reports (\d+) after \d+ ms", out)
    assert len(changes) == 2 and all(a == b for a, b in changes), out
    assert re.search(r"http://127\.0\.0\.1:\d+/", out) and "password:" in out, out
    work = re.search(r"stopped everything and removed (\S+)", out).group(1)
    assert not os.path.exists(work), f"{work} left behind"


def test_demo_shows_port_changes_applied(qgs_bin):
    check(run_demo(qgs_bin))


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root to become another user")
def test_demo_runs_as_an_ordinary_user(qgs_bin, public_copy):
    # The checkout may sit in a directory only root can enter: give the user copies.
    check(run_demo(public_copy(qgs_bin), user=65534, demo=public_copy(DEMO)))


def test_demo_ctrl_c_stops_everything(qgs_bin):
    import signal
    import time

    env = base_env(QGS_BIN=qgs_bin, DEMO_PORT=free_port(), DEMO_INTERVAL="0.3", HOME="/tmp")
    proc = subprocess.Popen(["/usr/bin/python3", str(DEMO)], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if line.startswith("change 1:"):
                break
        else:
            pytest.fail("".join(lines))
        work = re.search(r"profile in (\S+?)\)", "".join(lines)).group(1)
        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        rest, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = "".join(lines) + rest
    assert proc.returncode == 0, out
    assert "stopped everything" in out and not os.path.exists(work), out
    leftovers = subprocess.run(["pgrep", "-f", work], capture_output=True, text=True).stdout.split()
    assert not leftovers, f"processes of the demo still running: {leftovers}"
