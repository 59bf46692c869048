"""The shipping contract: image recipe, deployment files, the healthcheck subcommand, and the
binary running in an empty, read-only root as the distroless nonroot user (no Docker engine
here, so the runtime is rebuilt from exactly what `ldd` lists)."""

import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import REPO_ROOT, base_env, free_port, http_request, wait_until

DEPLOY = REPO_ROOT / "deploy"


def known_variables(qgs_bin):
    """The environment variables the daemon documents in --help."""
    out = subprocess.run([str(qgs_bin), "--help"], capture_output=True, text=True, check=True).stdout
    return set(re.findall(r"^\s+([A-Z][A-Z0-9_]+)\s", out, re.M)) | {"QBIT_PASS_FILE", "QBIT_API_KEY_FILE"}


def dockerfile_stages():
    stages = []
    for line in (REPO_ROOT / "Dockerfile").read_text().replace("\\\n", " ").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        if word.upper() == "FROM":
            stages.append({"from": rest.strip(), "lines": []})
        else:
            stages[-1]["lines"].append((word.upper(), rest.strip()))
    return stages


# Debian releases by codename and number: the build stage names one, distroless the other.
DEBIAN_RELEASES = {"bookworm": "12", "trixie": "13"}


def test_dockerfile_builds_on_debian_and_runs_distroless_nonroot():
    stages = dockerfile_stages()
    assert len(stages) == 2, stages
    build, run = stages
    m = re.fullmatch(r"debian:([a-z]+)\S* AS build", build["from"], re.I)
    assert m and m.group(1) in DEBIAN_RELEASES, build["from"]
    runs = " ".join(rest for word, rest in build["lines"] if word == "RUN")
    assert "scripts/install-deps.sh build" in runs and "make build" in runs, runs
    assert "strip" in runs, runs
    # The binary links glibc dynamically: the runtime must be the build's Debian release.
    assert run["from"] == f"gcr.io/distroless/base-debian{DEBIAN_RELEASES[m.group(1)]}:nonroot", run["from"]
    words = dict(run["lines"])
    assert words.get("USER") in ("nonroot", "65532"), run["lines"]
    assert words.get("EXPOSE") == "9090"
    assert "healthcheck" in words.get("HEALTHCHECK", ""), words
    assert any(w == "COPY" and r.startswith("--from=build") and r.endswith("/usr/local/bin/qbit-gluetun-sync")
               for w, r in run["lines"])
    assert any(w == "LABEL" and "org.opencontainers.image." in r for w, r in run["lines"])


def test_dockerfile_and_makefile_name_no_architecture():
    """docker buildx --platform linux/amd64,linux/arm64 builds each platform natively: nothing in the
    image recipe or the build may assume the machine it was written on (its triplet, its library
    directory, its compiler flags). The arm64 cross-build check names its own target, and only it."""
    native = re.compile(r"x86_64|amd64|i[3-6]86|-march=|-mtune=|-m64\b", re.I)
    for name in ("Dockerfile", "Makefile", "mk/deps.mk", "fuzz/Makefile"):
        for line in (REPO_ROOT / name).read_text().splitlines():
            if not line.lstrip().startswith("#"):
                assert not native.search(line), f"{name}: {line}"
    for line in (REPO_ROOT / "Dockerfile").read_text().splitlines():
        if not line.lstrip().startswith("#"):
            assert not re.search(r"aarch64|arm64", line, re.I), f"Dockerfile: {line}"


def test_dockerfile_bakes_in_no_secrets():
    for stage in dockerfile_stages():
        for word, rest in stage["lines"]:
            if word in ("ENV", "ARG"):
                assert not re.search(r"PASS|KEY|TOKEN|SECRET", rest, re.I), (word, rest)
    ignored = (REPO_ROOT / ".dockerignore").read_text().split()
    assert "build/" in ignored and ".git/" in ignored


def yaml_documents():
    files = sorted(DEPLOY.rglob("*.yaml"))
    assert files, "no YAML under deploy/"
    for path in files:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                yield path, doc


def sidecar_env_names():
    """(file, variable) for every variable given to the sidecar in compose and Kubernetes files."""
    for path, doc in yaml_documents():
        for name, service in (doc.get("services") or {}).items():
            if "qbit-gluetun-sync" in name:
                for item in service.get("environment", []):
                    yield path, item.split("=", 1)[0]
        spec = ((doc.get("spec") or {}).get("template") or {}).get("spec") or {}
        for container in spec.get("containers", []):
            if container["name"] == "qbit-gluetun-sync":
                for item in container.get("env", []):
                    yield path, item["name"]


def test_every_yaml_file_parses():
    kinds = [doc.get("kind") for _, doc in yaml_documents()]
    assert {"Deployment", "Service", "Kustomization"} <= set(kinds), kinds


def test_deployment_files_use_only_known_variables(qgs_bin):
    known = known_variables(qgs_bin)
    found = list(sidecar_env_names())
    assert len({p.name for p, _ in found}) == 2, "both compose.yaml and the Deployment configure the sidecar"
    unknown = [(str(p), v) for p, v in found if v not in known]
    assert not unknown, f"variables the daemon does not know: {unknown}"
    env_example = DEPLOY / "systemd" / "qbit-gluetun-sync.env.example"
    names = re.findall(r"^([A-Z_]+)=", env_example.read_text(), re.M)
    assert names and set(names) <= known, set(names) - known


def test_kubernetes_pod_is_locked_down():
    deployment = next(doc for _, doc in yaml_documents() if doc.get("kind") == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    sidecar = next(c for c in pod["containers"] if c["name"] == "qbit-gluetun-sync")
    sc = sidecar["securityContext"]
    assert sc["runAsNonRoot"] and sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"]
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert sidecar["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert sidecar["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert sidecar["resources"]["requests"]["memory"] and sidecar["resources"]["limits"]["memory"]
    env = {e["name"]: e.get("value") for e in sidecar["env"]}
    assert "QBIT_PASS_FILE" in env and "QBIT_PASS" not in env, env
    mounts = {m["mountPath"]: m for m in sidecar["volumeMounts"]}
    assert mounts["/tmp/gluetun"]["readOnly"] is True
    service = next(doc for _, doc in yaml_documents() if doc.get("kind") == "Service")
    assert [p["port"] for p in service["spec"]["ports"]] == [9090]


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
def test_systemd_unit_verifies(qgs_bin, tmp_path):
    unit = (DEPLOY / "systemd" / "qbit-gluetun-sync.service").read_text()
    assert "DynamicUser=yes" in unit and "ProtectSystem=strict" in unit and "NoNewPrivileges=yes" in unit
    env_file = tmp_path / "qbit-gluetun-sync.env"
    shutil.copy(DEPLOY / "systemd" / "qbit-gluetun-sync.env.example", env_file)
    local = tmp_path / "qbit-gluetun-sync.service"
    local.write_text(unit.replace("/usr/local/bin/qbit-gluetun-sync", str(qgs_bin))
                     .replace("/etc/qbit-gluetun-sync.env", str(env_file)))
    r = subprocess.run(["systemd-analyze", "verify", str(local)], capture_output=True, text=True)
    problems = [line for line in (r.stdout + r.stderr).splitlines() if "qbit-gluetun-sync" in line]
    assert r.returncode == 0 and not problems, r.stdout + r.stderr


def test_healthcheck_subcommand(daemon, qgs_bin):
    d = daemon()
    ok = subprocess.run([str(qgs_bin), "healthcheck"], env=base_env(LISTEN_PORT=d.port, LISTEN_ADDR="127.0.0.1"),
                        capture_output=True, text=True, timeout=10)
    assert ok.returncode == 0, ok.stderr
    down = subprocess.run([str(qgs_bin), "healthcheck"], env=base_env(LISTEN_PORT=free_port()),
                          capture_output=True, text=True, timeout=10)
    assert down.returncode == 1 and "cannot connect" in down.stderr, down


def ldd_libraries(binary):
    out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=True).stdout
    return sorted(set(re.findall(r"(/\S+)", out)))


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root for chroot and mounts")
@pytest.mark.skipif(os.environ.get("QGS_SANITIZED") == "1", reason="checks the release binary's runtime contract")
def test_runs_in_empty_read_only_root_as_nonroot(qgs_bin, tmp_path):
    root = tmp_path / "root"
    (root / "usr/local/bin").mkdir(parents=True)
    shutil.copy(qgs_bin, root / "usr/local/bin/qbit-gluetun-sync")
    for lib in ldd_libraries(qgs_bin):
        dest = root / lib.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(os.path.realpath(lib), dest)
    (root / "tmp/gluetun").mkdir(parents=True)
    (root / "tmp/gluetun/forwarded_port").write_text("45678")
    for p in [root, *root.rglob("*")]:
        os.chmod(p, 0o755)  # readable and executable by nonroot; nothing will be writable anyway
    port = free_port()
    env = base_env(LISTEN_ADDR="127.0.0.1", LISTEN_PORT=port, ALLOWED_IPS="127.0.0.1",
                   QBIT_ADDR=f"http://127.0.0.1:{free_port()}")
    # A private mount namespace makes the root read-only; chroot drops to distroless' nonroot (65532).
    script = f'mount --bind "{root}" "{root}" && mount -o remount,bind,ro "{root}" && ' \
             f'exec chroot --userspec=65532:65532 "{root}" /usr/local/bin/qbit-gluetun-sync'
    log = open(tmp_path / "log", "wb")
    proc = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                            env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    try:
        def answered():
            assert proc.poll() is None, (tmp_path / "log").read_text()
            try:
                return http_request("127.0.0.1", port, "GET", "/healthz").status == 200
            except OSError:
                return False
        wait_until(answered, 10, message="no /healthz from the daemon in the empty root")
        r = http_request("127.0.0.1", port, "GET", "/sync")
        assert json.loads(r.body)["desired_port"] == 45678, r  # it read the port file
        inner = proc.pid  # unshare and sh exec into chroot, which execs the daemon: one process
        status = open(f"/proc/{inner}/status").read()
        assert re.search(r"^Uid:\s+65532\s", status, re.M), status
        os.kill(inner, signal.SIGTERM)
        assert proc.wait(timeout=10) == 0, (tmp_path / "log").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
