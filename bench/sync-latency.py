#!/usr/bin/python3
"""sync-latency.py - how fast a new forwarded port reaches qBittorrent.

Starts a real qbittorrent-nox (throwaway profile, loopback only) and the sidecar, then changes
the port file N times the way Gluetun does (truncate, write, no newline) and measures, for each
change, the time from the write until qBittorrent's own API reports the new port. Prints p50,
p90, p99 and max. A benchmark that prints figures, not a test.

Usage: bench/sync-latency.py [N]   (default 50; QGS_BIN selects the binary)
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
import qbt_rig  # noqa: E402  (the test rig starts qBittorrent and the sidecar)


def percentile(sorted_values, p):
    k = max(0, min(len(sorted_values) - 1, int(round(p / 100.0 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    work = Path(tempfile.mkdtemp(prefix="qgs-bench-sync-"))
    q = qbt_rig.QbtInstance(work / "qbt", local_host_auth=True)
    q.start()
    sc = None
    try:
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
            previous, port = port, random.randint(20000, 60000)
            while port == previous:
                port = random.randint(20000, 60000)
            start = time.perf_counter()
            with open(port_file, "w") as f:  # Go's os.WriteFile: truncate, then write
                f.write(str(port))
            while True:
                got = session.get(q.base_url + "/api/v2/app/preferences").json()["listen_port"]
                if got == port:
                    break
                if time.perf_counter() - start > 10:
                    raise SystemExit(f"port {port} not applied within 10 s")
            latencies.append((time.perf_counter() - start) * 1000)
            time.sleep(0.05)  # pacing between changes, not part of any measurement
        latencies.sort()
        print(f"port changes: {n}  (file write -> qBittorrent reports the port; polled via its API)")
        print(f"p50 {percentile(latencies, 50):.1f} ms   p90 {percentile(latencies, 90):.1f} ms   "
              f"p99 {percentile(latencies, 99):.1f} ms   max {latencies[-1]:.1f} ms   "
              f"mean {statistics.mean(latencies):.1f} ms")
    finally:
        if sc:
            sc.stop()
        q.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
