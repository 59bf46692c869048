"""The qbittorrent-nox builds the end-to-end suite runs against: the host's own and Debian sid's.

The host's is Debian's package (4.5.2 on Debian 12, 5.1.0 on Debian 13). The newest Debian ships
(sid's, 5.3.0 when this was written) lives in a small Debian root that scripts/qbt-root.sh builds
once with debootstrap and caches outside the checkout ($QGS_CACHE_DIR, default
~/.cache/qbit-gluetun-sync/qbt-sid; `scripts/qbt-root.sh --rebuild` rebuilds it). It runs
chrooted in a private mount namespace and shares the host's loopback, so tests reach it at
127.0.0.1 like the host's.

Every test that takes the `qbt` fixture runs once per build (conftest.py parametrizes
`qbt_build`), with the version in its id, e.g. test_x[qbt4.5.2] and test_x[qbt5.3.0]. A build
that is not there (sid's root could not be built: the archive could not give the package, or the
suite does not run as root) is skipped with the reason. QGS_QBT_BUILDS=host (or sid) limits a
run to one.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

CACHE_DIR = Path(
    os.environ.get("QGS_CACHE_DIR")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "qbit-gluetun-sync"
)
SID_DIR = CACHE_DIR / "qbt-sid"

# Runs the command chrooted in root, in the private mount namespace unshare made: /proc and /dev
# bound, a fresh /tmp, and the profile directory bound at its own path, so qBittorrent sees the
# same paths as the test. Every step execs, so the PID the test holds is qbittorrent-nox's, and
# the mounts go away with it.
CHROOT_SCRIPT = r"""
set -e
root=$1; profile=$2; shift 2
mount --bind /proc "$root/proc"
mount --rbind /dev "$root/dev"
mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"
mkdir -p "$root$profile"
mount --bind "$profile" "$root$profile"
exec chroot "$root" "$@"
"""


def parse_version(text):
    """(major, minor, patch) from qbittorrent-nox --version ("qBittorrent v4.5.2"), or None."""
    m = re.search(r"\bv(\d+)\.(\d+)\.(\d+)", text or "")
    return tuple(int(x) for x in m.groups()) if m else None


class QbtBuild:
    """One qbittorrent-nox: where it is, its version, and the command that starts it."""

    def __init__(self, name, version=None, root=None, unavailable=None):
        self.name = name                # "host" or "sid"
        self.version = version          # (major, minor, patch) or None
        self.root = root                # the Debian root it runs in, or None for the host's
        self.unavailable = unavailable  # why it cannot run, or None

    @property
    def available(self):
        return self.unavailable is None

    @property
    def version_text(self):
        return ".".join(map(str, self.version)) if self.version else "?"

    @property
    def id(self):
        return f"qbt{self.version_text}" if self.version else f"qbt-{self.name}"

    def at_least(self, *version):
        return self.version is not None and self.version >= tuple(version)

    def command(self, profile_dir):
        """argv that runs this qbittorrent-nox with profile_dir (an absolute path)."""
        argv = ["qbittorrent-nox", f"--profile={profile_dir}"]
        if self.root is None:
            return argv
        return ["unshare", "-m", "--propagation", "private", "--", "sh", "-c", CHROOT_SCRIPT, "sh",
                str(self.root), str(profile_dir)] + argv

    def describe(self):
        where = "the host's package" if self.root is None else f"Debian sid, in {self.root}"
        if not self.available:
            return f"{self.name}: not available ({self.unavailable})"
        return f"{self.version_text} ({where})"


def _host_build():
    exe = shutil.which("qbittorrent-nox")
    if exe is None:
        return QbtBuild("host", unavailable="qbittorrent-nox is not installed (scripts/install-deps.sh installs it)")
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    version = parse_version(out.stdout + out.stderr)
    if version is None:
        return QbtBuild("host", unavailable=f"{exe} --version printed no version: {out.stdout!r} {out.stderr!r}")
    return QbtBuild("host", version)


def _sid_build(host):
    root = SID_DIR / "root"
    try:
        version = parse_version("v" + (SID_DIR / "version").read_text().strip())
    except OSError:
        version = None
    if version is None:
        try:
            why = (SID_DIR / "failed").read_text().strip()
        except OSError:
            why = f"not built yet: run scripts/qbt-root.sh (make test does) to build it in {SID_DIR}"
        return QbtBuild("sid", unavailable=why)
    if os.geteuid() != 0:
        return QbtBuild("sid", version, root, unavailable="running it chrooted needs root")
    if host.version == version:
        return QbtBuild("sid", version, root, unavailable=f"the host's qbittorrent-nox is {host.version_text} too")
    return QbtBuild("sid", version, root)


def discover():
    host = _host_build()
    builds = [host, _sid_build(host)]
    wanted = os.environ.get("QGS_QBT_BUILDS")
    if wanted:
        names = {w.strip() for w in wanted.split(",")}
        for b in builds:
            if b.name not in names and b.available:
                b.unavailable = f"left out by QGS_QBT_BUILDS={wanted}"
    return builds


BUILDS = discover()
