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

from conftest import REPO_ROOT, base_env, free_port, http_request, tls_client_context, wait_until
from tls_rig import self_signed

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
    names = {p.name for p, _ in found}
    assert {"compose.yaml", "deployment.yaml"} <= names, f"compose.yaml and the Deployment configure the sidecar: {names}"
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


def test_tls_variants_serve_https_from_a_renewable_mount():
    """The Kubernetes overlay and the compose override: both TLS variables, HTTPS probes, and the
    certificate mounted as a directory (a subPath mount would never see a renewal)."""
    tls_dir = DEPLOY / "kubernetes" / "tls"
    kustomization = yaml.safe_load((tls_dir / "kustomization.yaml").read_text())
    assert ".." in kustomization["resources"]
    for entry in kustomization["resources"][1:] + [p["path"] for p in kustomization["patches"]]:
        assert (tls_dir / entry).exists(), entry
    patch = yaml.safe_load((tls_dir / "deployment-tls.yaml").read_text())
    pod = patch["spec"]["template"]["spec"]
    sidecar = next(c for c in pod["containers"] if c["name"] == "qbit-gluetun-sync")
    env = {e["name"]: e["value"] for e in sidecar["env"]}
    mount = next(m for m in sidecar["volumeMounts"] if m["name"] == "tls")
    assert "subPath" not in mount and mount["readOnly"] is True
    assert env["TLS_CERT_FILE"].startswith(mount["mountPath"] + "/") and env["TLS_KEY_FILE"].startswith(mount["mountPath"] + "/")
    assert sidecar["livenessProbe"]["httpGet"]["scheme"] == "HTTPS" == sidecar["readinessProbe"]["httpGet"]["scheme"]
    cert = yaml.safe_load((tls_dir / "certificate.yaml").read_text())
    volume = next(v for v in pod["volumes"] if v["name"] == "tls")
    assert cert["kind"] == "Certificate" and cert["spec"]["secretName"] == volume["secret"]["secretName"]
    compose = yaml.safe_load((DEPLOY / "compose.tls.yaml").read_text())["services"]["qbit-gluetun-sync"]
    compose_env = dict(item.split("=", 1) for item in compose["environment"])
    assert {"TLS_CERT_FILE", "TLS_KEY_FILE"} <= set(compose_env)
    assert any(v.endswith(":/tls:ro") for v in compose["volumes"])


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


def openssl_libraries():
    """libssl and libcrypto as the dynamic loader finds them, with what they need in turn: what the
    daemon dlopen()s once TLS is configured (gcr.io/distroless/base has them)."""
    out = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, check=True).stdout
    libs = set()
    for name in ("libssl.so.3", "libcrypto.so.3"):
        found = re.findall(rf"^\s+{re.escape(name)} \(([^)]*)\) => (\S+)", out, re.M)
        native = [path for flavour, path in found if os.uname().machine.replace("_", "-") in flavour]
        paths = native or [path for _, path in found]
        assert paths, f"{name} not found by ldconfig -p:\n{out}"
        libs.add(paths[0])
        libs.update(ldd_libraries(paths[0]))
    return sorted(libs)


def run_in_empty_root(qgs_bin, tmp_path, libs, files=(), **env):
    """Starts the release binary as distroless' nonroot in a read-only root holding only it, libs and
    files ((path inside, bytes)); returns the process and its log's path."""
    root = tmp_path / "root"
    (root / "usr/local/bin").mkdir(parents=True)
    shutil.copy(qgs_bin, root / "usr/local/bin/qbit-gluetun-sync")
    for lib in libs:
        dest = root / lib.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(os.path.realpath(lib), dest)
    for inside, data in files:
        dest = root / inside.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
    for p in [root, *root.rglob("*")]:
        os.chmod(p, 0o755)  # readable and executable by nonroot; nothing will be writable anyway
    # A private mount namespace makes the root read-only; chroot drops to distroless' nonroot (65532).
    script = f'mount --bind "{root}" "{root}" && mount -o remount,bind,ro "{root}" && ' \
             f'exec chroot --userspec=65532:65532 "{root}" /usr/local/bin/qbit-gluetun-sync'
    log_path = tmp_path / "log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                                env=base_env(**env), stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    return proc, log_path


def serve_and_stop(proc, log_path, answered):
    """Waits until answered() holds, checks the daemon runs as nonroot, stops it by PID (exit 0)."""
    try:
        def up():
            assert proc.poll() is None, log_path.read_text()
            try:
                return answered()
            except OSError:
                return False
        wait_until(up, 10, message=lambda: f"the daemon in the empty root never answered:\n{log_path.read_text()}")
        inner = proc.pid  # unshare and sh exec into chroot, which execs the daemon: one process
        status = open(f"/proc/{inner}/status").read()
        assert re.search(r"^Uid:\s+65532\s", status, re.M), status
        os.kill(inner, signal.SIGTERM)
        assert proc.wait(timeout=10) == 0, log_path.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


needs_root = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"),
                                reason="needs root for chroot and mounts")
release_only = pytest.mark.skipif(os.environ.get("QGS_SANITIZED") == "1",
                                  reason="checks the release binary's runtime contract")


@needs_root
@release_only
def test_runs_in_empty_read_only_root_as_nonroot(qgs_bin, tmp_path):
    port = free_port()
    proc, log_path = run_in_empty_root(
        qgs_bin, tmp_path, ldd_libraries(qgs_bin), [("/tmp/gluetun/forwarded_port", b"45678")],
        LISTEN_ADDR="127.0.0.1", LISTEN_PORT=port, ALLOWED_IPS="127.0.0.1", QBIT_ADDR=f"http://127.0.0.1:{free_port()}")

    def answered():
        if http_request("127.0.0.1", port, "GET", "/healthz").status != 200:
            return False
        r = http_request("127.0.0.1", port, "GET", "/sync")
        assert json.loads(r.body)["desired_port"] == 45678, r  # it read the port file
        return True
    serve_and_stop(proc, log_path, answered)


@needs_root
@release_only
def test_tls_in_an_empty_root_needs_libssl_and_nothing_else(qgs_bin, tmp_path):
    """With TLS configured the root needs libssl and libcrypto on top of what ldd lists (they are
    loaded only then, so a daemon without TLS does not pay their memory); without them the start-up
    error says what to install."""
    cert = self_signed(tmp_path / "certs", "front")
    files = [("/tls/tls.crt", cert.cert.read_bytes()), ("/tls/tls.key", cert.key.read_bytes())]
    port = free_port()
    env = dict(LISTEN_ADDR="127.0.0.1", LISTEN_PORT=port, ALLOWED_IPS="127.0.0.1",
               QBIT_ADDR=f"http://127.0.0.1:{free_port()}", TLS_CERT_FILE="/tls/tls.crt", TLS_KEY_FILE="/tls/tls.key")
    proc, log_path = run_in_empty_root(qgs_bin, tmp_path / "without", ldd_libraries(qgs_bin), files, **env)
    assert proc.wait(timeout=10) == 2, log_path.read_text()
    assert "cannot load OpenSSL (libssl.so.3)" in log_path.read_text() and "libssl3" in log_path.read_text()

    libs = sorted(set(ldd_libraries(qgs_bin)) | set(openssl_libraries()))
    proc, log_path = run_in_empty_root(qgs_bin, tmp_path / "with", libs, files, **env)
    ctx = tls_client_context(cert.cert)
    serve_and_stop(proc, log_path, lambda: http_request("127.0.0.1", port, "GET", "/healthz", tls=ctx).status == 200)
