"""The command line: --help, --version, --check-config, unknown options."""

import re


def test_help_prints_usage_and_exits_0(run_cli):
    r = run_cli("--help")
    assert r.returncode == 0, r.stderr
    assert "LISTEN_PORT" in r.stdout
    assert "ALLOWED_IPS" in r.stdout


def test_version_prints_name_and_version(run_cli):
    r = run_cli("--version")
    assert r.returncode == 0, r.stderr
    first = r.stdout.splitlines()[0]
    assert first.startswith("qbit-gluetun-sync "), r.stdout
    assert len(first) > len("qbit-gluetun-sync ")


def test_version_names_the_linked_libraries(run_cli):
    # They are linked statically, so a bug report needs the binary's own word for which ones.
    r = run_cli("--version")
    assert re.fullmatch(r"llhttp \d+\.\d+\.\d+, libuv \d+\.\d+\.\d+, jansson \d+\.\d+(\.\d+)?",
                        r.stdout.splitlines()[1]), r.stdout


def test_unknown_option_exits_2_and_names_it(run_cli):
    r = run_cli("--bogus")
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "--bogus" in r.stderr


def test_check_config_prints_defaults(run_cli):
    r = run_cli("--check-config")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert "LISTEN_PORT=9090" in lines
    assert "QBIT_ADDR=http://localhost:8080" in lines
    assert "PORT_FILE=/tmp/gluetun/forwarded_port" in lines
    assert lines[-1] == "configuration OK"
    for line in lines[:-1]:
        name, sep, _ = line.partition("=")
        assert sep == "=" and name.isupper(), f"not a VAR=value line: {line!r}"


def test_check_config_shows_given_values(run_cli):
    r = run_cli("--check-config", LISTEN_PORT="8123", QBIT_ADDR="http://127.0.0.1:8081/qbt")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert "LISTEN_PORT=8123" in lines
    assert "QBIT_ADDR=http://127.0.0.1:8081/qbt" in lines
    assert lines[-1] == "configuration OK"


def test_check_config_masks_password(run_cli):
    r = run_cli("--check-config", QBIT_USER="u", QBIT_PASS="hunter2")
    assert r.returncode == 0, r.stderr
    assert "hunter2" not in r.stdout
    assert "hunter2" not in r.stderr
    assert "QBIT_USER=u" in r.stdout.splitlines()
    pass_lines = [line for line in r.stdout.splitlines() if line.startswith("QBIT_PASS=")]
    assert len(pass_lines) == 1, r.stdout
    assert pass_lines[0] != "QBIT_PASS=", "a set password should show as masked, not as empty"


def test_check_config_with_bad_config_exits_2(run_cli):
    r = run_cli("--check-config", LISTEN_PORT="abc")
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "LISTEN_PORT" in r.stderr
    assert "abc" in r.stderr
    assert "configuration OK" not in r.stdout
