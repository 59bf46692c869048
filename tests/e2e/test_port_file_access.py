"""A sidecar that cannot read the port file or its directory says so, and recovers by itself.

The sidecar runs as nonroot (uid 65534 here, as in a distroless image) next to files created by
root, which is what happens when Gluetun's directory is mounted with restrictive modes. Needs
root to set that up, and setpriv (util-linux) to drop to the unprivileged user.
"""

import os
import shutil
import subprocess
import tempfile

import pytest

from conftest import base_env, free_port, wait_until

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                                reason="needs root and setpriv to run the sidecar as another user")

NOBODY = 65534


@pytest.fixture
def restricted(qgs_bin, public_copy):
    """Yields (start, dir): start() runs the sidecar as uid 65534 with PORT_FILE in dir."""
    qgs_bin = public_copy(qgs_bin)  # the checkout may not be reachable for uid 65534
    top = tempfile.mkdtemp(prefix="qgs-access-")
    os.chmod(top, 0o755)
    directory = os.path.join(top, "gluetun")
    os.mkdir(directory)
    procs = []

    def start():
        log = open(os.path.join(top, "sidecar.log"), "wb")
        env = base_env(LISTEN_ADDR="127.0.0.1", LISTEN_PORT=free_port(), QBIT_ADDR=f"http://127.0.0.1:{free_port()}",
                       PORT_FILE=os.path.join(directory, "forwarded_port"))
        p = subprocess.Popen(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", str(qgs_bin)],
                             env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        procs.append(p)
        return p, lambda: open(os.path.join(top, "sidecar.log"), errors="replace").read()

    yield start, directory
    for p in procs:
        if p.poll() is None:
            p.terminate()
            assert p.wait(timeout=10) == 0
    shutil.rmtree(top)


def test_unreadable_directory_explained_then_recovered(restricted):
    start, directory = restricted
    with open(os.path.join(directory, "forwarded_port"), "w") as f:
        f.write("41234")
    os.chmod(directory, 0o700)  # root only, as Gluetun's own directory can be
    proc, log = start()
    wait_until(lambda: "uid 65534" in log(), 10, message="no error naming the uid")
    text = log()
    assert directory in text and "PORT_FILE" in text, text
    assert proc.poll() is None, "the sidecar must keep running"
    os.chmod(directory, 0o755)
    wait_until(lambda: "forwarded port is 41234" in log(), 10, message=f"not recovered; log:\n{log()}")


def test_unreadable_file_explained_then_recovered(restricted):
    start, directory = restricted
    path = os.path.join(directory, "forwarded_port")
    with open(path, "w") as f:
        f.write("41235")
    os.chmod(path, 0o600)
    proc, log = start()
    wait_until(lambda: "cannot read PORT_FILE" in log(), 10, message="no error for an unreadable file")
    text = log()
    assert path in text and "uid 65534" in text, text
    os.chmod(path, 0o644)
    wait_until(lambda: "forwarded port is 41235" in log(), 10, message=f"not recovered; log:\n{log()}")
    assert proc.poll() is None
