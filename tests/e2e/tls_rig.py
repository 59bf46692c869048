"""Certificates for the TLS tests, made with the openssl command line (Debian's openssl package).

    pki = Pki(tmp_path / "pki")                      # a throwaway CA
    c = pki.issue("qbt", sans=["IP:127.0.0.1"])      # Cert(cert, key, serial), signed by it
    c = pki.issue("old", expired=True)               # valid in 2020 only
    s = self_signed(tmp_path, "qbt")                 # its own issuer

Keys are EC P-256: quick to make, and qBittorrent 4.5 to 5.3 load them (it tries RSA, then EC).
"""

import base64
import hashlib
import subprocess
from dataclasses import dataclass
from pathlib import Path

DEFAULT_SANS = ("DNS:localhost", "IP:127.0.0.1", "IP:::1")


@dataclass
class Cert:
    cert: Path  # PEM certificate (the leaf; issue() appends nothing else)
    key: Path  # PEM private key
    serial: int
    sans: tuple  # subjectAltNames, as given ("DNS:localhost", "IP:127.0.0.1")
    expired: bool = False


def _openssl(*args, cwd=None):
    r = subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True, cwd=cwd)
    assert r.returncode == 0, f"openssl {' '.join(map(str, args))} failed:\n{r.stderr}"
    return r.stdout


def _serial(cert):
    out = _openssl("x509", "-in", cert, "-noout", "-serial")  # serial=0A1B...
    return int(out.strip().split("=", 1)[1], 16)


def spki_sha256(cert):
    """Base64 of the SHA-256 of cert's public key (SubjectPublicKeyInfo), as chromium's
    --ignore-certificate-errors-spki-list wants it."""
    pub = subprocess.run(["openssl", "x509", "-in", str(cert.cert), "-noout", "-pubkey"], capture_output=True,
                         check=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pub, capture_output=True,
                         check=True).stdout
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def _new_key(path):
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path)


def self_signed(directory, name, sans=DEFAULT_SANS, days=30):
    """A self-signed certificate for CN=name with the subjectAltNames sans."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    cert, key = d / f"{name}.crt", d / f"{name}.key"
    _new_key(key)
    _openssl("req", "-x509", "-new", "-key", key, "-out", cert, "-days", days, "-subj", f"/CN={name}",
             "-addext", "subjectAltName=" + ",".join(sans), "-addext", "basicConstraints=critical,CA:FALSE")
    return Cert(cert, key, _serial(cert), tuple(sans))


class Pki:
    """A CA in a directory, issuing leaf certificates through `openssl ca` (which can back-date them)."""

    def __init__(self, directory):
        self.dir = Path(directory)
        (self.dir / "issued").mkdir(parents=True, exist_ok=True)
        (self.dir / "index.txt").write_text("")
        (self.dir / "serial").write_text("1000\n")
        self.cert, self.key = self.dir / "ca.crt", self.dir / "ca.key"
        _new_key(self.key)
        _openssl("req", "-x509", "-new", "-key", self.key, "-out", self.cert, "-days", 30, "-subj",
                 "/CN=qgs test CA", "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        self.conf = self.dir / "ca.cnf"
        self.conf.write_text(f"""[ca]
default_ca = test_ca
[test_ca]
database = {self.dir}/index.txt
new_certs_dir = {self.dir}/issued
serial = {self.dir}/serial
default_md = sha256
policy = any_name
copy_extensions = copy
unique_subject = no
[any_name]
commonName = supplied
""")

    def issue(self, name, sans=DEFAULT_SANS, days=30, expired=False):
        """A certificate for CN=name with subjectAltNames sans, signed by this CA; expired=True makes one
        that was valid in January 2020 only."""
        cert, key, csr = self.dir / f"{name}.crt", self.dir / f"{name}.key", self.dir / f"{name}.csr"
        _new_key(key)
        _openssl("req", "-new", "-key", key, "-out", csr, "-subj", f"/CN={name}",
                 "-addext", "subjectAltName=" + ",".join(sans))
        dates = ["-startdate", "20200101000000Z", "-enddate", "20200201000000Z"] if expired else ["-days", days]
        _openssl("ca", "-batch", "-notext", "-config", self.conf, "-cert", self.cert, "-keyfile", self.key,
                 "-in", csr, "-out", cert, *dates)
        return Cert(cert, key, _serial(cert), tuple(sans), expired)
