"""A strict reader of the Prometheus text exposition format 0.0.4, and /metrics scraping helpers.

    expo = parse_exposition(text)          # raises ExpositionError naming the line and the rule
    expo.value("qbit_gluetun_sync_upstream_errors_total", kind="connect")   # float, or None
    expo.families["qbit_gluetun_sync_apply_latency_seconds"].type          # "histogram"

What it enforces (https://prometheus.io/docs/instrumenting/exposition_formats/, format 0.0.4):
- UTF-8; lines end with "\\n" (the last one too); no "\\r"; empty lines are ignored.
- "# HELP name text" (text escapes: only "\\\\" and "\\n") and "# TYPE name type" (type one of
  counter, gauge, histogram, summary, untyped); other "#" lines are comments.
- Every metric family has exactly one HELP and exactly one TYPE line, both before its first
  sample, and all lines of a family form one group (a family never comes back later).
- Every other line is `name[{label="value",...}] value [timestamp]`: names
  [a-zA-Z_:][a-zA-Z0-9_:]*, label names [a-zA-Z_][a-zA-Z0-9_]* not starting with "__", no label
  repeated, label values in double quotes with only \\\\, \\" and \\n as escapes (no raw newline,
  no stray quote, no other backslash), the value a float (NaN, +Inf, -Inf allowed), the timestamp
  an integer. Separators are single spaces. No series (name and label set) appears twice.
- A sample belongs to the family whose TYPE came before it: counter and gauge samples carry the
  family's name; histogram samples are name_bucket (with le), name_sum and name_count.
- Counters are named ..._total (this project's rule, and the OpenMetrics one) and are finite
  and >= 0.
- Histograms, per label set: an le on every bucket and none elsewhere, le values parse, strictly
  increase in the order written and end with +Inf; bucket counts are non-negative integers,
  cumulative (never decreasing); the +Inf bucket equals _count; _sum and _count are present.
"""

import math
import re
import socket

from conftest import RawConn, family_of

METRIC_NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
LABEL_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
FLOAT_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\Z")
INT_RE = re.compile(r"-?\d+\Z")
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class ExpositionError(AssertionError):
    pass


class Family:
    def __init__(self, name):
        self.name = name
        self.help = None
        self.type = None
        self.samples = []  # (sample name, {label: value}, float value)

    def __repr__(self):
        return f"<Family {self.name} {self.type} {len(self.samples)} samples>"


class Exposition:
    def __init__(self, text, families):
        self.text = text
        self.families = families  # name -> Family, in the order written

    def samples(self, name):
        """Every (labels, value) of the sample name (a family or histogram sample name)."""
        out = []
        for fam in self.families.values():
            for sname, labels, value in fam.samples:
                if sname == name:
                    out.append((labels, value))
        return out

    def value(self, name, **labels):
        """The value of the series name{labels} (exact label set), or None when absent."""
        for got_labels, value in self.samples(name):
            if got_labels == labels:
                return value
        return None

    def series(self):
        """{(name, frozenset(labels.items())): value} for every sample."""
        return {
            (sname, frozenset(labels.items())): value
            for fam in self.families.values()
            for sname, labels, value in fam.samples
        }


def _fail(lineno, line, why):
    raise ExpositionError(f"line {lineno}: {why}: {line!r}")


def _parse_float(text):
    if text in ("NaN", "+Inf", "-Inf", "Inf"):
        return float(text.replace("Inf", "inf").replace("NaN", "nan"))
    if not FLOAT_RE.match(text):
        raise ValueError(text)
    return float(text)


def _check_help_text(text, lineno, line):
    i = 0
    while i < len(text):
        if text[i] == "\\":
            if i + 1 >= len(text) or text[i + 1] not in "\\n":
                _fail(lineno, line, "HELP text has a backslash that is not \\\\ or \\n")
            i += 2
            continue
        i += 1


def _parse_labels(s, pos, lineno, line):
    """Parses {name="value",...} starting at s[pos] == "{"; returns (labels, position after "}")."""
    assert s[pos] == "{"
    pos += 1
    labels = {}
    while True:
        if pos < len(s) and s[pos] == "}":
            return labels, pos + 1
        m = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*").match(s, pos)
        if not m:
            _fail(lineno, line, f"bad label name at column {pos}")
        name = m.group(0)
        if name.startswith("__"):
            _fail(lineno, line, f"label name {name!r} is reserved (starts with __)")
        if name in labels:
            _fail(lineno, line, f"label {name!r} repeated")
        pos = m.end()
        if s[pos:pos + 2] != '="':
            _fail(lineno, line, f"label {name!r} not followed by =\"")
        pos += 2
        value = []
        while True:
            if pos >= len(s):
                _fail(lineno, line, f"label {name!r} value not closed")
            c = s[pos]
            if c == "\\":
                nxt = s[pos + 1] if pos + 1 < len(s) else ""
                if nxt == "\\":
                    value.append("\\")
                elif nxt == '"':
                    value.append('"')
                elif nxt == "n":
                    value.append("\n")
                else:
                    _fail(lineno, line, f"label {name!r} value has an invalid escape \\{nxt}")
                pos += 2
                continue
            if c == '"':
                pos += 1
                break
            value.append(c)
            pos += 1
        labels[name] = "".join(value)
        if pos < len(s) and s[pos] == ",":
            pos += 1
            continue
        if pos < len(s) and s[pos] == "}":
            return labels, pos + 1
        _fail(lineno, line, f"expected , or }} after label {name!r} at column {pos}")


def _family_of_sample(families, sname):
    """The family sname belongs to: (family name, suffix) or (None, None)."""
    if sname in families and families[sname].type in ("counter", "gauge", "untyped", "summary"):
        return sname, ""
    for suffix in ("_bucket", "_sum", "_count"):
        if sname.endswith(suffix):
            base = sname[: -len(suffix)]
            fam = families.get(base)
            if fam is not None and (fam.type == "histogram" or (fam.type == "summary" and suffix != "_bucket")):
                return base, suffix
    return None, None


def parse_exposition(text):
    """Parses and validates text (str or bytes); returns an Exposition or raises ExpositionError."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ExpositionError(f"not UTF-8: {e}")
    if "\r" in text:
        raise ExpositionError("carriage return in the exposition")
    if text and not text.endswith("\n"):
        raise ExpositionError(f"the last line does not end with a line feed: {text[-80:]!r}")
    families = {}
    current = None  # the family whose group is open; every earlier one has ended
    seen_series = set()
    for lineno, line in enumerate(text.split("\n")[:-1], 1):
        if line == "":
            continue
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) >= 3 and parts[0] == "#" and parts[1] in ("HELP", "TYPE"):
                kind, name = parts[1], parts[2]
                if not METRIC_NAME_RE.match(name):
                    _fail(lineno, line, f"bad metric name {name!r} in {kind}")
                if name in families and name != current:
                    _fail(lineno, line, f"{kind} for {name} after its group ended")
                fam = families.get(name)
                if fam is None:
                    fam = families[name] = Family(name)
                    current = name
                if fam.samples:
                    _fail(lineno, line, f"{kind} for {name} after its first sample")
                if kind == "HELP":
                    if fam.help is not None:
                        _fail(lineno, line, f"second HELP for {name}")
                    help_text = parts[3] if len(parts) == 4 else ""
                    _check_help_text(help_text, lineno, line)
                    fam.help = help_text
                else:
                    if fam.type is not None:
                        _fail(lineno, line, f"second TYPE for {name}")
                    if len(parts) != 4 or parts[3] not in TYPES:
                        _fail(lineno, line, f"TYPE must be one of {TYPES}")
                    fam.type = parts[3]
            continue  # any other "#" line is a comment
        # A sample.
        m = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*").match(line)
        if not m:
            _fail(lineno, line, "sample line does not start with a metric name")
        sname = m.group(0)
        pos = m.end()
        labels = {}
        if pos < len(line) and line[pos] == "{":
            labels, pos = _parse_labels(line, pos, lineno, line)
        rest = line[pos:]
        if not rest.startswith(" ") or rest.startswith("  "):
            _fail(lineno, line, "the value must follow after exactly one space")
        fields = rest[1:].split(" ")
        if len(fields) not in (1, 2) or any(f == "" for f in fields):
            _fail(lineno, line, "expected `value` or `value timestamp` after the name")
        try:
            value = _parse_float(fields[0])
        except ValueError:
            _fail(lineno, line, f"value {fields[0]!r} is not a float")
        if len(fields) == 2 and not INT_RE.match(fields[1]):
            _fail(lineno, line, f"timestamp {fields[1]!r} is not an integer")
        fname, suffix = _family_of_sample(families, sname)
        if fname is None:
            _fail(lineno, line, f"sample {sname} has no TYPE before it (or does not fit its family's type)")
        fam = families[fname]
        if fname != current:
            _fail(lineno, line, f"sample of {fname} outside its family's group")
        if fam.help is None:
            _fail(lineno, line, f"sample of {fname} before its HELP line")
        key = (sname, frozenset(labels.items()))
        if key in seen_series:
            _fail(lineno, line, "series repeated")
        seen_series.add(key)
        if fam.type == "histogram":
            if (suffix == "_bucket") != ("le" in labels):
                _fail(lineno, line, "histogram: le belongs on _bucket samples and only there")
        fam.samples.append((sname, labels, value))
    for fam in families.values():
        if fam.help is None:
            raise ExpositionError(f"{fam.name}: no HELP line")
        if fam.type is None:
            raise ExpositionError(f"{fam.name}: no TYPE line")
        _check_family(fam)
    return Exposition(text, families)


def _check_family(fam):
    if fam.type == "counter":
        if not fam.name.endswith("_total"):
            raise ExpositionError(f"counter {fam.name} does not end in _total")
        for sname, labels, value in fam.samples:
            if not math.isfinite(value) or value < 0:
                raise ExpositionError(f"counter {sname}{labels} = {value}: not finite and >= 0")
    if fam.type == "histogram":
        _check_histogram(fam)


def _check_histogram(fam):
    groups = {}
    for sname, labels, value in fam.samples:
        rest = frozenset((k, v) for k, v in labels.items() if k != "le")
        g = groups.setdefault(rest, {"buckets": [], "sum": None, "count": None})
        if sname.endswith("_bucket"):
            try:
                le = _parse_float(labels["le"])
            except ValueError:
                raise ExpositionError(f"{sname}: le={labels['le']!r} is not a float")
            g["buckets"].append((le, value, labels["le"]))
        elif sname.endswith("_sum"):
            g["sum"] = value
        else:
            g["count"] = value
    for rest, g in groups.items():
        where = f"histogram {fam.name}{dict(rest)}"
        buckets = g["buckets"]
        if not buckets:
            raise ExpositionError(f"{where}: no buckets")
        les = [b[0] for b in buckets]
        if any(b >= a for a, b in zip(les[1:], les)):
            raise ExpositionError(f"{where}: le values not strictly increasing: {[b[2] for b in buckets]}")
        if not math.isinf(les[-1]) or les[-1] < 0:
            raise ExpositionError(f"{where}: the last bucket is not le=\"+Inf\"")
        counts = [b[1] for b in buckets]
        for c in counts:
            if c < 0 or c != int(c):
                raise ExpositionError(f"{where}: bucket count {c} is not a non-negative integer")
        if any(b < a for a, b in zip(counts, counts[1:])):
            raise ExpositionError(f"{where}: buckets not cumulative: {counts}")
        if g["count"] is None or g["sum"] is None:
            raise ExpositionError(f"{where}: _sum or _count missing")
        if counts[-1] != g["count"]:
            raise ExpositionError(f"{where}: +Inf bucket {counts[-1]} != _count {g['count']}")


# --------------------------------------------------------------------------- scraping


class SourceConn(RawConn):
    """A RawConn whose socket is bound to a chosen local address first (e.g. 127.0.0.2 or ::1),
    so one machine can be an allowed and a denied client of the same daemon."""

    def __init__(self, source, host, port, timeout=5.0):
        self.sock = socket.socket(family_of(host), socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        if source is not None:
            self.sock.bind((source, 0))
        self.sock.connect((host, port))
        self.buf = b""


def get(host, port, path, source=None, method="GET", headers=None, timeout=10.0):
    """One request with Connection: close from source (None: any); returns the Response."""
    headers = dict(headers or {})
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    lines = [f"{method} {path} HTTP/1.1", f"Host: {headers.pop('Host', authority)}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    with SourceConn(source, host, port, timeout) as c:
        c.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        return c.read_response(head=(method == "HEAD"))


def scrape(host, port, source=None):
    """GET /metrics: asserts 200 and the 0.0.4 content type, returns the validated Exposition."""
    r = get(host, port, "/metrics", source)
    assert r.status == 200, f"/metrics: {r}"
    assert r.header("content-type") == CONTENT_TYPE, f"/metrics content type: {r.headers}"
    return parse_exposition(r.body)
