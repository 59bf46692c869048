#!/usr/bin/python3
"""sync-latency.py - how fast a new forwarded port reaches qBittorrent.

Starts a real qbittorrent-nox (throwaway profile, loopback only). First measures qBittorrent's own
set-and-read-back: N times, setPreferences with a new listen_port through its API, then its API
polled until it reports that port (what no sidecar can beat). Then starts the sidecar and changes
the port file N times the way Gluetun does (one open-truncate-write-close, no newline) and
measures, for each change, the time from the write until qBittorrent's API reports the new port.
Prints p50, p90, p99 and max of both, and the ratio. A benchmark that prints figures, not a test.

Usage: bench/sync-latency.py [N]   (default 50; QGS_BIN selects the binary, QGS_BENCH_QBT=sid the
newest qBittorrent Debian ships instead of the host's)
"""

import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "e2e"))
import qbt_builds  # noqa: E402  (the qBittorrent builds the suite knows: host, sid)
import qbt_rig  # noqa: E402  (the test rig starts qBittorrent and the sidecar)


def percentile(sorted_values, p):
    k = max(0, min(len(sorted_values) - 1, int(round(p / 100.0 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


def new_port(previous):
    port = random.randint(20000, 60000)
    while port == previous:
        port = random.randint(20000, 60000)
    return port


def wait_reported(session, q, port, start):
    while True:
        got = session.get(q.base_url + "/api/v2/app/preferences").json()["listen_port"]
        if got == port:
            return (time.perf_counter() - start) * 1000
        if time.perf_counter() - start > 10:
            raise SystemExit(f"port {port} not applied within 10 s")


def summary(values):
    values = sorted(values)
    return (f"p50 {percentile(values, 50):.1f} ms   p90 {percentile(values, 90):.1f} ms   "
            f"p99 {percentile(values, 99):.1f} ms   max {values[-1]:.1f} ms   mean {statistics.mean(values):.1f} ms")


def qbittorrent_own(q, n):
    """qBittorrent's own set-and-read-back through its API, n times."""
    session = q.session()
    port, own = q.listen_port(), []
    for _ in range(n):
        port = new_port(port)
        start = time.perf_counter()
        r = session.post(q.base_url + "/api/v2/app/setPreferences", data={"json": f'{{"listen_port":{port}}}'})
        r.raise_for_status()
        own.append(wait_reported(session, q, port, start))
        time.sleep(0.05)  # pacing between changes, not part of any measurement
    return own


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    work = Path(tempfile.mkdtemp(prefix="qgs-bench-sync-"))
    name = os.environ.get("QGS_BENCH_QBT", "host")
    build = next((b for b in qbt_builds.BUILDS if b.name == name and b.available), None)
    if build is None:
        raise SystemExit(f"no usable qBittorrent build named {name!r}: {[str(b) for b in qbt_builds.BUILDS]}")
    q = qbt_rig.QbtInstance(work / "qbt", build, local_host_auth=True)
    q.start()
    sc = None
    try:
        own = qbittorrent_own(q, n)
        port_file = work / "gluetun" / "forwarded_port"
        port_file.parent.mkdir()
        port_file.write_text("40000")
        sc = qbt_rig.start_sidecar(q, work / "sidecar", QBIT_USER=q.username, QBIT_PASS=q.password,
                                   PORT_FILE=port_file)
        q.wait_listen_port(40000, timeout=10)
        session = q.session()
        latencies = []
        port = 40000
        for _ in range(n):
            port = new_port(port)
            start = time.perf_counter()
            with open(port_file, "w") as f:  # Go's os.WriteFile: open, truncate, write, close
                f.write(str(port))
            latencies.append(wait_reported(session, q, port, start))
            time.sleep(0.05)  # pacing between changes, not part of any measurement
        print(f"port changes: {n} each, qBittorrent {build.version_text}, polled through its API")
        print(f"qBittorrent's own set and read back:      {summary(own)}")
        print(f"file write to qBittorrent reporting it:   {summary(latencies)}")
        ratio = percentile(sorted(latencies), 50) / percentile(sorted(own), 50)
        print(f"ratio at p50: {ratio:.2f}x qBittorrent's own time (goal <= 1.3x; p99 goal < 25 ms)")
    finally:
        if sc:
            sc.stop()
        q.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
