"""A client on another address: a network namespace of the test's own, joined to this one by a
veth pair on a private test range.

    from netns_rig import netns  # noqa: F401  (pytest fixture)

    def test_x(netns):
        ns = netns()                     # skips the test (with the reason) when it cannot be made
        ns.host_addr, ns.ns_addr         # e.g. 10.213.57.1 (here) and 10.213.57.2 (in the namespace)
        ns.cidr                          # 10.213.57.0/30
        results = ns.http("http://10.213.57.1:9090", [{"method": "GET", "path": "/x"}, ...])

Only addresses inside the /30 given to the veth pair are used; nothing else on the machine is
touched. Each namespace has a unique name (pid and a random token) and the third octet is one
that no interface uses yet. Teardown deletes the veth pair and the namespace, also when the test
failed, and checks that both are gone. Needs root and iproute2 (`ip netns`); otherwise the test
is skipped with the reason.
"""

import ipaddress
import json
import os
import re
import secrets
import shutil
import subprocess

import pytest

PYTHON = "/usr/bin/python3"
RANGE = "10.213"  # 10.213.X.0/30 per namespace

# Runs inside the namespace: a requests.Session performs the steps read from stdin, in order,
# and prints one JSON result per step.
CLIENT_SCRIPT = r"""
import json, sys
import requests
spec = json.load(sys.stdin)
s = requests.Session()
out = []
for step in spec["steps"]:
    try:
        r = s.request(step.get("method", "GET"), spec["base"] + step["path"], data=step.get("data"),
                      headers=step.get("headers"), timeout=spec.get("timeout", 10), allow_redirects=False)
        out.append({"status": r.status_code, "text": r.text[:2000], "headers": dict(r.headers),
                    "cookies": s.cookies.get_dict()})
    except requests.RequestException as e:
        out.append({"error": repr(e)})
json.dump(out, sys.stdout)
"""


def _ip(*args, check=True):
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20, check=check)


class Netns:
    def __init__(self, name, host_if, ns_if, octet):
        self.name = name
        self.host_if = host_if
        self.ns_if = ns_if
        self.host_addr = f"{RANGE}.{octet}.1"
        self.ns_addr = f"{RANGE}.{octet}.2"
        self.cidr = f"{RANGE}.{octet}.0/30"

    def run(self, argv, input=None, timeout=60):
        """Runs argv inside the namespace; returns the CompletedProcess (text)."""
        return subprocess.run(["ip", "netns", "exec", self.name, *argv], input=input, capture_output=True,
                              text=True, timeout=timeout)

    def python(self, code, input=None, timeout=60):
        return self.run([PYTHON, "-c", code], input=input, timeout=timeout)

    def http(self, base, steps, timeout=10):
        """Performs steps ({"method", "path", "data", "headers"}) with one requests.Session inside
        the namespace; returns a list of {"status", "text", "headers", "cookies"} (or {"error"})."""
        spec = json.dumps({"base": base, "steps": steps, "timeout": timeout})
        p = self.python(CLIENT_SCRIPT, input=spec, timeout=timeout * len(steps) + 30)
        assert p.returncode == 0, f"client in netns {self.name} failed: {p.stderr}"
        return json.loads(p.stdout)


def _used_octets():
    out = _ip("-o", "-4", "addr", "show", check=False).stdout
    used = set()
    for word in out.split():
        if word.startswith(RANGE + "."):
            try:
                used.add(int(word.split(".")[2]))
            except (IndexError, ValueError):
                pass
    return used


def _setup(name, host_if, ns_if, octet):
    ns = Netns(name, host_if, ns_if, octet)
    steps = [
        ["netns", "add", name],
        ["link", "add", host_if, "type", "veth", "peer", "name", ns_if],
        ["link", "set", ns_if, "netns", name],
        ["addr", "add", f"{ns.host_addr}/30", "dev", host_if],
        ["link", "set", host_if, "up"],
        ["-n", name, "addr", "add", f"{ns.ns_addr}/30", "dev", ns_if],
        ["-n", name, "link", "set", ns_if, "up"],
        ["-n", name, "link", "set", "lo", "up"],
    ]
    for argv in steps:
        p = _ip(*argv, check=False)
        if p.returncode != 0:
            return ns, f"`ip {' '.join(argv)}` failed: {p.stderr.strip()}"
    return ns, None


def _teardown(ns):
    problems = []
    _ip("link", "del", ns.host_if, check=False)  # deletes the peer too
    _ip("netns", "del", ns.name, check=False)
    if _ip("link", "show", ns.host_if, check=False).returncode == 0:
        problems.append(f"interface {ns.host_if} still exists")
    if ns.name in _ip("netns", "list", check=False).stdout.split():
        problems.append(f"network namespace {ns.name} still exists")
    return problems


def remove_stale():
    """Deletes namespaces this rig made in test processes that no longer exist (killed before
    their teardown ran); their veth pairs go with them."""
    for name in _ip("netns", "list", check=False).stdout.split():
        m = re.fullmatch(r"qgs-(\d+)-[0-9a-f]{6}", name)
        if m and not os.path.exists(f"/proc/{m.group(1)}"):
            _ip("netns", "del", name, check=False)


def skip_reason():
    """Why a namespace cannot be made here, or None."""
    if os.geteuid() != 0:
        return "needs root to create a network namespace and a veth pair (ip netns)"
    if shutil.which("ip") is None:
        return "iproute2's `ip` is not installed"
    if not os.path.exists(PYTHON):
        return f"{PYTHON} is missing"
    return None


@pytest.fixture
def netns():
    """Factory: netns() -> Netns, set up; all are deleted when the test ends."""
    made = []

    def make():
        reason = skip_reason()
        if reason:
            pytest.skip(reason)
        remove_stale()
        token = secrets.token_hex(3)
        name = f"qgs-{os.getpid()}-{token}"
        host_if, ns_if = f"qgh{token}", f"qgn{token}"  # at most 15 characters
        free = sorted(set(range(1, 255)) - _used_octets())
        if not free:
            pytest.skip(f"no free {RANGE}.X.0/30 range")
        octet = free[secrets.randbelow(len(free))]
        ns, error = _setup(name, host_if, ns_if, octet)
        made.append(ns)
        if error:
            pytest.skip(f"cannot create a network namespace here: {error}")
        # The namespace reaches this side: a quick check with a socket connect to nothing
        # listening (refused proves the route; a timeout would not).
        p = ns.python(
            "import socket,sys\ns=socket.socket();s.settimeout(5)\n"
            f"try:\n  s.connect(('{ns.host_addr}', 9))\nexcept ConnectionRefusedError:\n  sys.exit(0)\n"
            "except OSError as e:\n  print(e); sys.exit(1)\nsys.exit(2)\n")
        assert p.returncode == 0, f"no route from {ns.name} to {ns.host_addr}: {p.stdout}{p.stderr}"
        assert ipaddress.ip_address(ns.ns_addr) in ipaddress.ip_network(ns.cidr)
        return ns

    yield make

    problems = []
    for ns in made:
        problems += _teardown(ns)
    if problems:
        pytest.fail("netns teardown: " + "; ".join(problems))
