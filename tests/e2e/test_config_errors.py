"""An invalid configuration stops the daemon before it listens: exit 2 and a message."""

import socket

import pytest

from conftest import connection_refused, free_port

# (variables, strings stderr must contain)
BAD_CONFIGS = [
    ({"LISTEN_PORT": "0"}, ["LISTEN_PORT", "0"]),
    ({"LISTEN_PORT": "65536"}, ["LISTEN_PORT", "65536"]),
    ({"LISTEN_PORT": "abc"}, ["LISTEN_PORT", "abc"]),
    ({"LOG_LEVEL": "loud"}, ["LOG_LEVEL", "loud"]),
    ({"ALLOWED_IPS": "10.0.0.0/33"}, ["ALLOWED_IPS", "10.0.0.0/33"]),
    ({"ALLOWED_IPS": "myhost"}, ["ALLOWED_IPS", "myhost"]),
    ({"ALLOWED_IPS": "fe80::1%eth0"}, ["ALLOWED_IPS", "fe80::1%eth0"]),
    ({"QBIT_ADDR": "ftp://x"}, ["QBIT_ADDR", "ftp://x"]),
    ({"TLS_CERT_FILE": "/c.pem"}, ["TLS_CERT_FILE", "/c.pem", "TLS_KEY_FILE", "both or neither"]),
    ({"TLS_KEY_FILE": "/k.pem"}, ["TLS_KEY_FILE", "/k.pem", "TLS_CERT_FILE", "both or neither"]),
    ({"QBIT_CA_FILE": "/ca.pem"}, ["QBIT_CA_FILE", "http://localhost:8080", "not https://"]),
    ({"QBIT_TLS_INSECURE": "maybe"}, ["QBIT_TLS_INSECURE", "maybe"]),
    ({"QBIT_ADDR": "https://x", "QBIT_CA_FILE": "/ca.pem", "QBIT_TLS_INSECURE": "true"},
     ["QBIT_CA_FILE", "QBIT_TLS_INSECURE", "not both"]),
    ({"QBIT_USER": "admin"}, ["QBIT_PASS"]),
    ({"LISTEN_ADDR": "notanip"}, ["LISTEN_ADDR", "notanip"]),
    ({"HEADER_TIMEOUT": "0"}, ["HEADER_TIMEOUT", "0"]),
]


def bad_config_id(case):
    return ",".join(f"{k}={v}" for k, v in case[0].items())


@pytest.mark.parametrize("bad,expected", BAD_CONFIGS, ids=[bad_config_id(c) for c in BAD_CONFIGS])
def test_bad_config_exits_2_naming_variable_and_value(run_cli, bad, expected):
    env = {"LISTEN_ADDR": "127.0.0.1", "LISTEN_PORT": str(free_port())}
    env.update(bad)
    r = run_cli(**env)
    assert r.returncode == 2, (r.stdout, r.stderr)
    for s in expected:
        assert s in r.stderr, f"{s!r} not in stderr:\n{r.stderr}"


def test_bad_config_never_listens(run_cli):
    port = free_port()
    r = run_cli(LISTEN_ADDR="127.0.0.1", LISTEN_PORT=str(port), LOG_LEVEL="loud")
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "listening" not in r.stderr
    assert connection_refused("127.0.0.1", port)
    # The port is still free to bind: nothing (no child left behind) holds it.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", port))


def test_several_bad_variables_all_reported(run_cli):
    r = run_cli(LISTEN_PORT="abc", LOG_LEVEL="loud")
    assert r.returncode == 2, (r.stdout, r.stderr)
    for s in ("LISTEN_PORT", "abc", "LOG_LEVEL", "loud"):
        assert s in r.stderr, f"{s!r} not in stderr:\n{r.stderr}"


def test_config_error_does_not_print_password(run_cli):
    r = run_cli(QBIT_PASS="hunter2", LISTEN_PORT="abc")
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "hunter2" not in r.stdout
    assert "hunter2" not in r.stderr
