"""Logs (issue 7): LOG_FORMAT=text|json, the access log (ACCESS_LOG=true), rate limits on what
clients can make the daemon log, no secrets, and no forged lines or fields.

One scenario per test; most run in both formats. What the daemon writes, as observed:

    text: 2026-11-26T02:52:34.912Z info  request client=127.0.0.1 method=GET path=/x?a=b status=200 bytes=159 upstream_ms=0.4
    json: {"time":"2026-11-26T02:52:34.912Z","level":"info","msg":"request","client":"127.0.0.1",
           "method":"GET","path":"/x?a=b","status":200,"bytes":159,"upstream_ms":"0.4"}

The access log's `path` is the request target exactly as the client sent it, query included;
`bytes` is everything written to the client for that response, head and body; `upstream_ms`
(proxied requests only) is the time to qBittorrent's response head (a JSON string, since the
daemon writes only digit strings as JSON numbers). Denials and client errors are logged 5 per
10 s, then "N more denied requests / client errors not logged in the last 10 s".

Denied clients are this machine too: their sockets are bound to 127.0.0.2 while ALLOWED_IPS
names 127.0.0.1.
"""

import base64
import json
import re
import time
import urllib.parse
from datetime import datetime, timedelta, timezone

import pytest

from conftest import wait_until
from prom_exposition import SourceConn, scrape
from proxy_rig import proxy, upstream  # noqa: F401  (pytest fixtures)
from recording_upstream import Reply

FORMATS = ["json", "text"]
LEVELS = ("debug", "info", "warn", "error")
TIME_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z\Z")
TEXT_LINE_RE = re.compile(
    r"(?P<time>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z) (?P<level>debug|info |warn |error) (?P<rest>\S.*)\Z")
DENIED = "127.0.0.2"
TIMEOUT = 10.0


# --------------------------------------------------------------------------- reading logs


class Event:
    def __init__(self, line, time_text, level, msg, fields):
        self.line = line
        self.time = time_text
        self.level = level
        self.msg = msg
        self.fields = fields  # str -> str or int (json), str -> str (text)

    def __repr__(self):
        return f"<Event {self.line!r}>"


def _no_duplicate_keys(pairs):
    keys = [k for k, _ in pairs]
    dups = {k for k in keys if keys.count(k) > 1}
    if dups:
        raise ValueError(f"duplicate keys {sorted(dups)}")
    return dict(pairs)


class LogfmtError(ValueError):
    pass


def parse_logfmt(text):
    """key=value pairs separated by blanks (logfmt: any byte <= ' '); a value is bare (no blank,
    no quote) or double-quoted with backslash escapes. Raises LogfmtError for anything else,
    including a key given twice."""
    fields = {}
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] <= " ":
            i += 1
        if i >= n:
            break
        m = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*=").match(text, i)
        if not m:
            raise LogfmtError(f"no key=value at column {i}: {text[i:i + 40]!r}")
        key = m.group(0)[:-1]
        i = m.end()
        if i < n and text[i] == '"':
            i += 1
            value = []
            while True:
                if i >= n:
                    raise LogfmtError(f"unterminated quoted value of {key}")
                c = text[i]
                if c == "\\" and i + 1 < n:
                    value.append(text[i + 1])
                    i += 2
                    continue
                if c == '"':
                    i += 1
                    break
                value.append(c)
                i += 1
            value = "".join(value)
            if i < n and text[i] > " ":
                raise LogfmtError(f"quoted value of {key} followed by {text[i:i + 20]!r}")
        else:
            j = i
            while j < n and text[j] > " ":
                if text[j] == '"':
                    raise LogfmtError(f"quote inside the bare value of {key}")
                j += 1
            value = text[i:j]
            i = j
        if key in fields:
            raise LogfmtError(f"key {key} given twice")
        fields[key] = value
    return fields


def parse_line(fmt, line):
    """One log line as an Event; fails the test when it does not have the format's shape."""
    if fmt == "json":
        try:
            obj = json.loads(line, object_pairs_hook=_no_duplicate_keys)
        except ValueError as e:
            pytest.fail(f"not a JSON object without repeated keys ({e}): {line!r}")
        assert isinstance(obj, dict), f"not a JSON object: {line!r}"
        for key in ("time", "level", "msg"):
            assert isinstance(obj.get(key), str), f"no string {key!r} in {line!r}"
        assert obj["level"] in LEVELS, line
        assert TIME_RE.match(obj["time"]), f"time not RFC 3339 UTC with ms: {line!r}"
        assert obj["msg"], f"empty msg: {line!r}"
        fields = {k: v for k, v in obj.items() if k not in ("time", "level", "msg")}
        for k, v in fields.items():
            assert isinstance(v, (str, int)) and not isinstance(v, bool), f"field {k} is {v!r}: {line!r}"
        return Event(line, obj["time"], obj["level"], obj["msg"], fields)
    m = TEXT_LINE_RE.match(line)
    assert m, f"not `TIME LEVEL message`: {line!r}"
    rest = m.group("rest")
    msg, fields = rest, {}
    if rest == "request" or rest.startswith("request "):
        msg = "request"
        try:
            fields = parse_logfmt(rest[len("request"):])
        except LogfmtError as e:
            pytest.fail(f"request event's fields are not clean key=value pairs ({e}): {line!r}")
    return Event(line, m.group("time"), m.group("level").strip(), msg, fields)


def log_lines(d):
    """The daemon's stderr as lines; the text must end with a newline (no torn last line) and
    contain no other line breaks than "\\n"."""
    text = d.log()
    assert "\r" not in text, f"a carriage return in the log: {text!r}"
    if not text:
        return []
    assert text.endswith("\n"), f"the log does not end with a whole line: {text[-200:]!r}"
    return text[:-1].split("\n")


def events(d, fmt):
    return [parse_line(fmt, line) for line in log_lines(d)]


def request_events(d, fmt):
    return [e for e in events(d, fmt) if e.msg == "request"]


def wait_request_events(d, fmt, n):
    """Waits until at least n request events are in the log; returns them."""
    got = []

    def enough():
        got[:] = request_events(d, fmt)
        return len(got) >= n

    wait_until(enough, TIMEOUT, interval=0.05, message=f"fewer than {n} request events; log:\n{d.log()}")
    return got


def raw_exchange(d, target, method="GET", source=None, headers=(), body=b"", host=None):
    """Sends one request (Connection: close) and reads until the daemon closes; returns
    (status, the raw bytes received)."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host or f'127.0.0.1:{d.port}'}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
    return raw_bytes_exchange(d, data, source)


def raw_bytes_exchange(d, data, source=None):
    with SourceConn(source, d.host, d.port, timeout=TIMEOUT) as c:
        c.send(data)
        raw = c.read_until_closed(timeout=TIMEOUT)
    status = int(raw.split(b" ", 2)[1]) if raw.startswith(b"HTTP/1.") else None
    return status, raw


def as_int(v):
    return v if isinstance(v, int) else int(v)


def log_fmt_env(fmt):
    return {"LOG_FORMAT": fmt}


# --------------------------------------------------------------------------- formats


def test_json_every_line_is_an_object_with_time_level_msg(proxy, upstream):
    """A bit of everything (start-up, proxied, local, denied, bad and failed requests, debug
    lines, shutdown); every line of stderr is one JSON object with time, level and msg."""
    start = datetime.now(timezone.utc)
    d = proxy(LOG_FORMAT="json", LOG_LEVEL="debug", ACCESS_LOG="true", ALLOWED_IPS="127.0.0.1")
    assert raw_exchange(d, "/api/v2/app/version?x=1")[0] == 200
    assert raw_exchange(d, "/healthz")[0] == 200
    assert raw_exchange(d, "/denied", source=DENIED)[0] == 403
    assert raw_bytes_exchange(d, b"NOT HTTP AT ALL\r\n\r\n")[0] == 400
    assert raw_exchange(d, "/x", headers=[("Origin", "http://evil.example")])[0] == 401
    rc, _ = d.terminate()
    assert rc == 0
    end = datetime.now(timezone.utc)
    evs = events(d, "json")
    assert len(evs) >= 10, d.log()
    for e in evs:
        t = datetime.strptime(e.time, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
        assert start - timedelta(seconds=2) <= t <= end + timedelta(seconds=2), e.line
    assert {e.level for e in evs} >= {"info", "warn"}, "expected info and warn lines"
    assert any(e.msg == "request" for e in evs)
    assert any(e.level == "warn" and e.msg.startswith(f"denied {DENIED}") for e in evs), d.log()


def test_text_is_the_default_format(proxy, upstream):
    d = proxy(ACCESS_LOG="true", ALLOWED_IPS="127.0.0.1")
    assert raw_exchange(d, "/api/v2/app/version")[0] == 200
    assert raw_exchange(d, "/denied", source=DENIED)[0] == 403
    d.terminate()
    lines = log_lines(d)
    assert lines and not any(line.startswith("{") for line in lines), d.log()
    evs = [parse_line("text", line) for line in lines]
    assert any(e.msg == "request" for e in evs)


@pytest.mark.parametrize("value", ["xml", "JSON", "text,json"])
def test_log_format_invalid_exits_2_naming_the_variable(run_cli, value):
    r = run_cli(LOG_FORMAT=value, LISTEN_ADDR="127.0.0.1", LISTEN_PORT="1", ALLOWED_IPS="127.0.0.1")
    assert r.returncode == 2, r
    assert "LOG_FORMAT" in r.stderr and value in r.stderr, r.stderr
    assert "text" in r.stderr and "json" in r.stderr, f"the message should say what is expected: {r.stderr}"


def test_check_config_shows_log_format_and_access_log(run_cli):
    r = run_cli("--check-config", LOG_FORMAT="json", ACCESS_LOG="true")
    assert r.returncode == 0, r
    assert "LOG_FORMAT=json" in r.stdout and "ACCESS_LOG=true" in r.stdout, r.stdout


# --------------------------------------------------------------------------- access log


@pytest.mark.parametrize("fmt", FORMATS)
def test_access_log_one_event_per_request_with_its_fields(proxy, upstream, fmt):
    upstream.handler = lambda req, conn: Reply(404 if req.target.startswith("/missing") else 200,
                                               [("Content-Type", "text/plain")], b"b" * (len(req.target) + 10))
    d = proxy(LOG_FORMAT=fmt, ACCESS_LOG="true", ALLOWED_IPS="127.0.0.1")
    fixture_probe = "/healthz"  # the fixture's readiness probes: left out below
    plan = [
        # (method, target, source, extra headers, body, proxied)
        ("GET", "/api/v2/app/version?x=1&y=%20z", None, [], b"", True),
        ("POST", "/api/v2/auth/login", None, [], b"username=a&password=b", True),
        ("GET", "/missing/file.js", None, [], b"", True),
        ("GET", "/healthz?probe=access-log", None, [], b"", False),
        ("GET", "/api/v2/app/version?denied=1", DENIED, [], b"", False),
        ("POST", "/api/v2/torrents/add?cross=1", None, [("Origin", "http://evil.example")], b"", False),
    ]
    results = []
    for method, target, source, headers, body, proxied in plan:
        status, raw = raw_exchange(d, target, method, source, headers, body)
        results.append((method, target, source or "127.0.0.1", status, len(raw), proxied))
    assert [r[3] for r in results] == [200, 200, 404, 200, 403, 401], results
    # A barrier: each event is written by the time its response is complete, so once the
    # barrier's own event is there, a second event for any request above would be too.
    assert raw_exchange(d, "/healthz?barrier=1")[0] == 200
    wait_until(lambda: any(e.fields.get("path") == "/healthz?barrier=1" for e in request_events(d, fmt)),
               TIMEOUT, message="the barrier request was not logged")
    evs = [e for e in request_events(d, fmt) if e.fields.get("path") not in ("/healthz?barrier=1", fixture_probe)]
    assert len(evs) == len(plan), "expected exactly one request event per request:\n" + "\n".join(
        e.line for e in evs)
    for method, target, client, status, nbytes, proxied in results:
        match = [e for e in evs if e.fields.get("path") == target]
        assert len(match) == 1, f"{method} {target}: events {match}"
        f = match[0].fields
        assert match[0].level == "info"
        assert f["client"] == client, match[0].line
        assert f["method"] == method, match[0].line
        assert as_int(f["status"]) == status, match[0].line
        assert as_int(f["bytes"]) == nbytes, f"bytes should be what the client received ({nbytes}): {match[0].line}"
        if proxied:
            ms = float(f["upstream_ms"])
            assert 0 <= ms < TIMEOUT * 1000, match[0].line


@pytest.mark.parametrize("fmt", FORMATS)
def test_access_log_upstream_unreachable_one_event(daemon, fmt):
    """A proxied request qBittorrent cannot take (connection refused: 502) is one request too."""
    d = daemon(LOG_FORMAT=fmt, ACCESS_LOG="true", ALLOWED_IPS="127.0.0.1")
    target = "/api/v2/app/version?unreachable=1"
    status, raw = raw_exchange(d, target)
    assert status == 502, raw
    wait_request_events(d, fmt, 1)
    # A barrier (see above): a second event for the failed request would be logged before it.
    assert raw_exchange(d, "/healthz?barrier=1")[0] == 200
    wait_until(lambda: any(e.fields.get("path") == "/healthz?barrier=1" for e in request_events(d, fmt)),
               TIMEOUT, message="the barrier request was not logged")
    match = [e for e in request_events(d, fmt) if e.fields.get("path") == target]
    assert len(match) == 1, "one request, one event; got:\n" + "\n".join(e.line for e in match)
    assert as_int(match[0].fields["status"]) == 502
    assert as_int(match[0].fields["bytes"]) == len(raw)


@pytest.mark.parametrize("setting", [None, "false"])
def test_no_request_events_without_access_log(proxy, upstream, setting):
    env = {"ALLOWED_IPS": "127.0.0.1", "LOG_FORMAT": "json"}
    if setting is not None:
        env["ACCESS_LOG"] = setting
    d = proxy(**env)
    assert raw_exchange(d, "/api/v2/app/version")[0] == 200
    assert raw_exchange(d, "/healthz")[0] == 200
    assert raw_exchange(d, "/x", source=DENIED)[0] == 403
    d.terminate()
    evs = events(d, "json")
    assert not [e for e in evs if e.msg == "request"], d.log()
    # The denial itself is still logged (it is not an access-log line).
    assert any(e.msg.startswith(f"denied {DENIED}") for e in evs)


# --------------------------------------------------------------------------- rate limits


@pytest.mark.parametrize("fmt", FORMATS)
def test_flood_of_bad_requests_and_denials_is_bounded(daemon, fmt):
    d = daemon(LOG_FORMAT=fmt, ALLOWED_IPS="127.0.0.1")
    lines_before = len(log_lines(d))
    t0 = time.monotonic()
    for i in range(200):
        status, raw = raw_exchange(d, f"/deny/{i}", source=DENIED)
        assert status == 403, raw
        status, raw = raw_bytes_exchange(d, b"NOT HTTP %d\r\n\r\n" % i)
        assert status == 400, raw
    elapsed = time.monotonic() - t0
    assert scrape(d.host, d.port).value("qbit_gluetun_sync_denied_requests_total") == 200
    rc, _ = d.terminate()  # flushes the pending summaries
    assert rc == 0
    evs = events(d, fmt)
    denial = [e for e in evs if e.msg.startswith(f"denied {DENIED}")]
    bad = [e for e in evs if e.msg.startswith("client 127.0.0.1: 400")]
    summary_re = re.compile(r"(\d+) more (denied requests|client errors) not logged in the last 10 s\Z")
    summaries = {"denied requests": 0, "client errors": 0}
    n_summaries = 0
    for e in evs:
        sm = summary_re.match(e.msg)
        if sm:
            summaries[sm.group(2)] += int(sm.group(1))
            n_summaries += 1
            assert e.level == "warn", e.line
    # Every event is accounted for, once: logged in full or counted in a summary.
    assert len(denial) + summaries["denied requests"] == 200, (len(denial), summaries)
    assert len(bad) + summaries["client errors"] == 200, (len(bad), summaries)
    # 5 in full per 10 s window and per kind.
    windows = int(elapsed // 10) + 2
    assert len(denial) <= 5 * windows and len(bad) <= 5 * windows, (len(denial), len(bad), elapsed)
    assert n_summaries <= 2 * windows
    # Start-up and shutdown lines aside, the flood wrote a few dozen lines at most.
    flood_lines = len(evs) - lines_before
    assert flood_lines <= 12 * windows + 5, f"{flood_lines} lines for 400 bad requests:\n{d.log()}"


# --------------------------------------------------------------------------- secrets


def secret_forms(secret):
    return {secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret),
            base64.b64encode(secret.encode()).decode()}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("outcome", ["accepted", "refused"])
@pytest.mark.parametrize("auth", ["password", "api_key"])
def test_no_secrets_in_any_log_line(proxy, upstream, fmt, outcome, auth):
    password = "Pw-secret/+&=%-" + "7f3a9c1e"
    api_key = "qbt_" + "S3cretApiKeyValue0123456789abcdef"
    secret = password if auth == "password" else api_key

    def own(req, conn):
        if auth == "password" and req.target.startswith("/api/v2/auth/login"):
            if outcome == "refused":
                return Reply(200, [("content-type", "text/plain; charset=UTF-8")], b"Fails.")
            return Reply(200, [("content-type", "text/plain; charset=UTF-8"),
                               ("set-cookie", "SID=own; HttpOnly; path=/; SameSite=Strict")], b"Ok.")
        if auth == "api_key" and outcome == "refused":
            return Reply(401, [("content-type", "text/plain")], b"Unauthorized")
        if req.target.startswith("/api/v2/app/preferences"):
            return Reply(200, [("content-type", "application/json")], b'{"listen_port":6881}')
        return Reply(200, [("content-type", "text/plain")], b"")

    upstream.own_handler = own
    env = {"LOG_FORMAT": fmt, "LOG_LEVEL": "debug", "ACCESS_LOG": "true", "ALLOWED_IPS": "127.0.0.1"}
    if auth == "password":
        env.update(QBIT_USER="admin", QBIT_PASS=password)
    else:
        env.update(QBIT_API_KEY=api_key)
    d = proxy(**env)
    # The daemon did use the secret with qBittorrent.
    def used():
        for r in upstream.requests(include_own=True):
            if r.own and any(f.encode() in r.head_raw or f.encode() in (r.body or b"")
                             for f in secret_forms(secret)):
                return True
        return False

    wait_until(used, TIMEOUT, message="the daemon never sent its credentials to the upstream")
    if outcome == "refused":
        wait_until(lambda: scrape(d.host, d.port).value("qbit_gluetun_sync_sync_failures_total",
                                                        reason="auth_failed") == 1,
                   TIMEOUT, message=f"the refused login was not counted:\n{d.log()}")
    else:
        wait_until(lambda: scrape(d.host, d.port).value("qbit_gluetun_sync_sync_successes_total") >= 1,
                   TIMEOUT, message=f"no successful sync:\n{d.log()}")
    assert raw_exchange(d, "/api/v2/app/version")[0] == 200
    assert raw_exchange(d, "/sync")[0] in (200, 401, 422, 502)
    d.terminate()
    text = d.log()
    events(d, fmt)  # every line well-formed
    for form in secret_forms(secret):
        assert form not in text, f"secret ({form!r}) in the log:\n{text}"
    if auth == "password":
        basic = base64.b64encode(f"admin:{password}".encode()).decode()
        assert basic not in text


# --------------------------------------------------------------------------- injection


@pytest.mark.parametrize("fmt", FORMATS)
def test_encoded_newlines_in_path_logged_as_is_on_one_line(proxy, upstream, fmt):
    d = proxy(LOG_FORMAT=fmt, ACCESS_LOG="true", ALLOWED_IPS="127.0.0.1")
    forged = "2026-01-01T00:00:00.000Z%20error%20FORGED"
    target = f"/api/v2/x?a=%0a{forged}%0d%0a{forged}%0A%0D-MARK"
    assert raw_exchange(d, target)[0] == 200
    assert raw_exchange(d, target, source=DENIED)[0] == 403
    wait_until(lambda: len([e for e in request_events(d, fmt) if "MARK" in e.line]) >= 2, TIMEOUT,
               message=f"request events missing:\n{d.log()}")
    d.terminate()
    lines = log_lines(d)
    evs = [parse_line(fmt, line) for line in lines]
    marked = [e for e in evs if "MARK" in e.line]
    # The proxied request's event, the denial warning and the denial's event: three lines.
    assert len(marked) == 3, "\n".join(e.line for e in marked)
    for e in marked:
        assert "%0a" in e.line and "%0d%0a" in e.line and "%0A%0D" in e.line, e.line
    assert [e.fields["path"] for e in marked if e.msg == "request"] == [target, target]
    assert not any(line.startswith("2026-01-01") for line in lines), "\n".join(lines)


@pytest.mark.parametrize("fmt", FORMATS)
def test_header_values_cannot_forge_a_log_line(proxy, upstream, fmt):
    """Origin is logged when the sidecar refuses a cross-origin request. Encoded line breaks stay
    encoded; raw CR, NUL, ESC and obs-fold in a header value are refused with 400."""
    d = proxy(LOG_FORMAT=fmt, ALLOWED_IPS="127.0.0.1")
    host = f"127.0.0.1:{d.port}"
    forged = "2026-01-01T00:00:00.000Z error FORGED"
    status, raw = raw_exchange(d, "/api/v2/app/version",
                               headers=[("Origin", f"http://evil.example/%0a{forged}%0d%0aMARK1")])
    assert status == 401, raw
    for n, value in enumerate([b"http://evil.example\r" + forged.encode(),
                               b"http://evil.example\x1b[2K\x1b[1G" + forged.encode(),
                               b"http://evil.example\x00" + forged.encode()], 2):
        data = (b"GET /api/v2/app/version?mark=MARK%d HTTP/1.1\r\nHost: %s\r\nOrigin: %s\r\n"
                b"Connection: close\r\n\r\n" % (n, host.encode(), value))
        status, raw = raw_bytes_exchange(d, data)
        assert status == 400, (value, raw)
    data = (b"GET /api/v2/app/version?mark=MARK5 HTTP/1.1\r\nHost: %s\r\nOrigin: http://evil.example\r\n"
            b" %s\r\nConnection: close\r\n\r\n" % (host.encode(), forged.encode()))
    assert raw_bytes_exchange(d, data)[0] == 400
    d.terminate()
    text = d.log()
    for bad in ("\r", "\x1b", "\x00"):
        assert bad not in text, f"{bad!r} in the log:\n{text!r}"
    lines = log_lines(d)
    evs = [parse_line(fmt, line) for line in lines]
    assert not any(line.startswith("2026-01-01") for line in lines), text
    origin_lines = [e for e in evs if "MARK1" in e.line]
    assert len(origin_lines) == 1 and "%0a" in origin_lines[0].line, text


def test_text_quotes_and_tabs_in_path_are_refused(proxy, upstream):
    """A request target with `"` or a tab is refused (llhttp strict mode), so it never reaches a log field."""
    d = proxy(ACCESS_LOG="true", ALLOWED_IPS="127.0.0.1")
    status, raw = raw_exchange(d, '/api/v2/x?a="\tstatus=299\tforged="1')
    assert status == 400, raw
    assert "forged" not in d.log(), d.log()


def test_text_quotes_and_tabs_in_a_header_cannot_forge_fields(proxy, upstream):
    """A header value may hold `"` and a tab; the text event that quotes it (a cross-origin refusal)
    must still read back as its real fields."""
    d = proxy(ALLOWED_IPS="127.0.0.1")
    origin = 'http://evil.example/"\tstatus=299\tforged="1'
    status, raw = raw_exchange(d, "/api/v2/x", headers=[("Origin", origin)])
    assert status == 401, raw
    line = wait_until(lambda: next((l for l in log_lines(d) if "cross-origin" in l), None), TIMEOUT,
                      message=f"no cross-origin event:\n{d.log()}")
    rest = TEXT_LINE_RE.match(line).group("rest")
    fields_text = rest[rest.index(" detail=") :]
    try:
        fields = parse_logfmt(fields_text)
    except LogfmtError as e:
        pytest.fail(f"the client's Origin forged fields ({e}): {line!r}")
    # Control bytes come escaped (\\x09); the point is that no field was forged.
    assert set(fields) == {"detail"} and 'evil.example/"' in fields["detail"], line


def test_json_non_utf8_target_refused(proxy, upstream):
    """Bytes that are not ASCII in the request target are refused (llhttp strict mode)."""
    d = proxy(LOG_FORMAT="json", ACCESS_LOG="true", ALLOWED_IPS="127.0.0.1")
    data = (b"POST /api/v2/x?name=caf\xe9-\xff-MARK HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Length: 0\r\n"
            b"Connection: close\r\n\r\n" % d.port)
    status, raw = raw_bytes_exchange(d, data)
    assert status == 400, raw
    d.terminate()
    assert all(e.msg for e in events(d, "json")), d.log()  # each event keeps its msg


@pytest.mark.parametrize("where", ["allowed", "denied"])
def test_json_non_utf8_header_keeps_msg_and_fields(proxy, upstream, where):
    """A header value may carry bytes that are not UTF-8 (obs-text); a JSON event that quotes it
    must still have its msg and every field, with the bytes escaped."""
    d = proxy(LOG_FORMAT="json", ALLOWED_IPS="127.0.0.1")
    source = DENIED if where == "denied" else None
    data = (b"POST /api/v2/x HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nOrigin: http://caf\xe9-\xff-MARK\r\n"
            b"Content-Length: 0\r\nConnection: close\r\n\r\n" % d.port)
    status, raw = raw_bytes_exchange(d, data, source)
    assert status == (403 if source else 401), raw
    wanted = "denied" if source else "cross-origin"
    wait_until(lambda: any(wanted in (e.msg or "") for e in events(d, "json")), TIMEOUT,
               message=f"no {wanted} event:\n{d.log()}")
    d.terminate()
    ev = next(e for e in events(d, "json") if wanted in (e.msg or ""))
    if source:
        assert ev.fields.get("path") == "/api/v2/x" and ev.fields.get("method") == "POST", ev.line
    else:
        detail = ev.fields.get("detail")
        assert isinstance(detail, str) and "caf" in detail and "MARK" in detail, ev.line
