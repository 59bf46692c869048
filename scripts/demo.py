#!/usr/bin/python3
"""demo.py - a real qBittorrent, the sidecar in front of it, and a stand-in for Gluetun.

Starts qbittorrent-nox with a throwaway profile on loopback, starts qbit-gluetun-sync on
127.0.0.1:9090 in front of it, then plays Gluetun: writes a new forwarded port every few
seconds (or when you press Enter) and prints, per change, the port written, the port
qBittorrent reports and how long that took. Ctrl-C stops everything it started and removes
the temporary files.

Environment: DEMO_PORT (9090), DEMO_INTERVAL (seconds between changes, 4), DEMO_CHANGES
(stop after this many changes; default: run until Ctrl-C), QGS_BIN (the sidecar binary).
"""

import base64
import hashlib
import http.client
import json
import os
import random
import secrets
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("QGS_BIN", os.path.join(REPO, "build", "release", "qbit-gluetun-sync"))
DEMO_PORT = int(os.environ.get("DEMO_PORT", "9090"))
INTERVAL = float(os.environ.get("DEMO_INTERVAL", "4"))
CHANGES = int(os.environ.get("DEMO_CHANGES", "0"))
USER = "admin"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_in_use(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return False
        except OSError:
            return True


def pbkdf2(password):
    salt = secrets.token_bytes(16)
    key = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, 100000, 64)
    return "@ByteArray(%s:%s)" % (base64.b64encode(salt).decode(), base64.b64encode(key).decode())


def write_qbt_config(profile, webui_port, password):
    conf_dir = os.path.join(profile, "qBittorrent", "config")
    os.makedirs(conf_dir)
    # Loopback only and quiet: no DHT, LSD, PeX or UPnP, so the demo touches no network.
    with open(os.path.join(conf_dir, "qBittorrent.conf"), "w") as f:
        f.write(
            "[LegalNotice]\nAccepted=true\n\n"
            "[BitTorrent]\n"
            "Session\\Port=%d\nSession\\Interface=lo\nSession\\InterfaceName=lo\n"
            "Session\\InterfaceAddress=127.0.0.1\nSession\\DHTEnabled=false\n"
            "Session\\LSDEnabled=false\nSession\\PeXEnabled=false\n\n"
            "[Network]\nPortForwardingEnabled=false\n\n"
            "[Preferences]\nConnection\\ResolvePeerCountries=false\n"
            "WebUI\\Address=127.0.0.1\nWebUI\\Port=%d\nWebUI\\Username=%s\n"
            "WebUI\\Password_PBKDF2=\"%s\"\nWebUI\\LocalHostAuth=true\n"
            "WebUI\\MaxAuthenticationFailCount=0\n" % (free_port(), webui_port, USER, pbkdf2(password))
        )


class Qbt:
    """Talks to qBittorrent's own WebUI directly, to see what it reports."""

    def __init__(self, port, password):
        self.port, self.password, self.cookie = port, password, None

    def request(self, method, path, body=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        headers = {"Content-Type": "application/x-www-form-urlencoded"} if body else {}
        if self.cookie:
            headers["Cookie"] = self.cookie
        conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        data = r.read()
        conn.close()
        return r, data

    def login(self):
        r, data = self.request("POST", "/api/v2/auth/login",
                               urllib.parse.urlencode({"username": USER, "password": self.password}))
        # "200 Ok." up to qBittorrent 5.1, "204" (empty body) from 5.2 on.
        if not (r.status == 204 or (r.status == 200 and data == b"Ok.")):
            raise RuntimeError("login to qBittorrent failed: %d %r" % (r.status, data))
        self.cookie = r.getheader("Set-Cookie").split(";")[0]

    def listen_port(self):
        r, data = self.request("GET", "/api/v2/app/preferences")
        if r.status == 403:
            self.login()
            r, data = self.request("GET", "/api/v2/app/preferences")
        return json.loads(data)["listen_port"]


def wait_until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except (OSError, ValueError, RuntimeError, KeyError):
            pass
        time.sleep(0.005)
    raise RuntimeError("timed out waiting for " + what)


def gluetun_write(path, port):
    # Like Gluetun (Go's os.WriteFile): truncate in place, then write, no trailing newline.
    with open(path, "w") as f:
        f.write(str(port))


def tail(path, stop):
    """Echoes the sidecar's log as it grows."""
    with open(path, "rb") as f:
        while not stop.is_set():
            line = f.readline()
            if line:
                text = line.decode("utf-8", "replace").rstrip("\n")
                dim, reset = ("\033[2m", "\033[0m") if sys.stdout.isatty() else ("", "")
                sys.stdout.write("    %ssidecar | %s%s\n" % (dim, text, reset))
                sys.stdout.flush()
            else:
                time.sleep(0.05)


def stop_process(proc, name):
    if proc and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            print("%s did not stop on SIGTERM; killing it" % name)
            proc.kill()
            proc.wait()


def main():
    if not os.path.exists(BIN):
        sys.exit("demo: %s is missing; run `make demo`" % BIN)
    if port_in_use(DEMO_PORT):
        sys.exit("demo: port %d is in use on 127.0.0.1; free it or set DEMO_PORT" % DEMO_PORT)
    work = tempfile.mkdtemp(prefix="qgs-demo-")
    password = secrets.token_urlsafe(9)
    webui_port = free_port()
    port_file = os.path.join(work, "gluetun", "forwarded_port")
    os.makedirs(os.path.dirname(port_file))
    write_qbt_config(os.path.join(work, "profile"), webui_port, password)
    qbt_proc = sidecar = None
    stop_tail = threading.Event()
    # Ctrl-C (SIGINT) and SIGTERM both end the demo through the finally below. SIGINT's handler is
    # set explicitly: Python leaves SIGINT ignored when it starts with it ignored (a background job
    # of a non-interactive shell), and then Ctrl-C would not stop the demo.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        print("demo: starting qbittorrent-nox (WebUI on 127.0.0.1:%d, profile in %s)" % (webui_port, work))
        qbt_log = open(os.path.join(work, "qbittorrent.out"), "wb")
        qbt_proc = subprocess.Popen(["qbittorrent-nox", "--profile=" + os.path.join(work, "profile")],
                                    stdin=subprocess.DEVNULL, stdout=qbt_log, stderr=qbt_log,
                                    start_new_session=True)
        qbt = Qbt(webui_port, password)
        wait_until(lambda: qbt.login() is None, 20, "qBittorrent's WebUI")

        first = random.randint(20000, 60000)
        gluetun_write(port_file, first)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "QBIT_ADDR": "http://127.0.0.1:%d" % webui_port,
            "QBIT_USER": USER,
            "QBIT_PASS": password,
            "PORT_FILE": port_file,
            "LISTEN_ADDR": "127.0.0.1",
            "LISTEN_PORT": str(DEMO_PORT),
            "ALLOWED_IPS": "127.0.0.1,::1",
        }
        log_path = os.path.join(work, "sidecar.log")
        print("demo: starting qbit-gluetun-sync on 127.0.0.1:%d" % DEMO_PORT)
        sidecar = subprocess.Popen([BIN], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=open(log_path, "wb"))
        threading.Thread(target=tail, args=(log_path, stop_tail), daemon=True).start()
        wait_until(lambda: qbt.listen_port() == first, 10, "the first port to be applied")
        print("\n  Open the WebUI through the sidecar: http://127.0.0.1:%d/" % DEMO_PORT)
        print("  user: %s   password: %s\n" % (USER, password))
        print("demo: playing Gluetun: a new forwarded port every %g s%s; Ctrl-C to stop\n"
              % (INTERVAL, " (or press Enter)" if sys.stdin.isatty() else ""))

        port, changes = first, 0
        while CHANGES == 0 or changes < CHANGES:
            if sys.stdin.isatty():
                ready, _, _ = select.select([sys.stdin], [], [], INTERVAL)
                if ready:
                    sys.stdin.readline()
            else:
                time.sleep(INTERVAL)
            previous, port = port, random.randint(20000, 60000)
            while port == previous:
                port = random.randint(20000, 60000)
            start = time.monotonic()
            gluetun_write(port_file, port)
            wait_until(lambda: qbt.listen_port() == port, 10, "qBittorrent to take port %d" % port)
            took = (time.monotonic() - start) * 1000
            changes += 1
            print("change %d: wrote %d to the port file -> qBittorrent reports %d after %.0f ms"
                  % (changes, port, qbt.listen_port(), took))
        print("demo: done")
    except KeyboardInterrupt:
        print("\ndemo: stopping")
    except RuntimeError as e:
        print("demo: %s" % e)
        return 1
    finally:
        stop_tail.set()
        stop_process(sidecar, "qbit-gluetun-sync")
        stop_process(qbt_proc, "qbittorrent-nox")
        shutil.rmtree(work, ignore_errors=True)
        print("demo: stopped everything and removed %s" % work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
