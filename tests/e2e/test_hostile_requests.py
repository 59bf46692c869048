"""Hostile requests beyond test_proxy_smuggling.py: bare LF and CR, NUL, control and DEL bytes,
over-long heads, invalid methods and versions, non-origin targets, Transfer-Encoding and
Content-Length obfuscations, chunk-size and chunk-extension abuse, and requests split at every
byte.

Each refused request carries a complete second request behind it (`GET /smuggled`): the client
must get the listed 4xx, the connection must close after it, and the recording upstream must
see neither request (checked with a later `GET /control`, which must be the only thing it saw).
Requests that are valid but unusual (OWS around values, leading zeros, long chunk extensions)
must instead reach the upstream re-framed, as exact bytes, and keep the connection in step with
a pipelined request behind them.
"""

import socket
import time

import pytest

from conftest import binary_llhttp_version, tcp_sockets
from proxy_rig import (  # noqa: F401  (fixtures are used by name)
    connect,
    control_request,
    proxy,
    upstream,
)

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: {h}\r\n\r\n"
LLHTTP_VERSION = binary_llhttp_version()
DEFAULT_MAX_HEADER_SIZE = 16384


def post_head(headers, version=b"HTTP/1.1"):
    """A POST head with the Host placeholder first and headers (raw bytes, CRLF-terminated)."""
    return b"POST /api/v2/app/setPreferences " + version + b"\r\nHost: {h}\r\n" + headers + b"\r\n"


def chunked_post(body, te=b"Transfer-Encoding: chunked\r\n"):
    return post_head(te) + body


# name -> (request bytes with {h} for the authority, the statuses that are right for it).
# Every request is followed on the wire by SMUGGLED.
REFUSED = {
    # ---- bare LF and bare CR as line ends ----
    "lf_after_request_line": (
        b"POST /x HTTP/1.1\nHost: {h}\r\nContent-Length: 5\r\n\r\nhello", {400}),
    "lf_as_final_empty_line": (
        b"POST /x HTTP/1.1\r\nHost: {h}\r\nContent-Length: 5\r\n\nhello", {400}),
    "lf_after_chunk_size": (chunked_post(b"5\nhello\r\n0\r\n\r\n"), {400}),
    "lf_after_chunk_data": (chunked_post(b"5\r\nhello\n0\r\n\r\n"), {400}),
    "lf_after_last_chunk": (chunked_post(b"5\r\nhello\r\n0\r\n\n"), {400}),
    "cr_after_request_line": (b"GET /x HTTP/1.1\rHost: {h}\r\n\r\n", {400}),
    "cr_in_target": (b"GET /x\ry HTTP/1.1\r\nHost: {h}\r\n\r\n", {400}),
    "cr_in_header_name": (b"GET /x HTTP/1.1\r\nHost: {h}\r\nX\rY: 1\r\n\r\n", {400}),
    "cr_in_chunk_extension": (chunked_post(b"5;a\rb\r\nhello\r\n0\r\n\r\n"), {400}),
    # ---- NUL, control bytes and DEL ----
    "nul_in_header_name": (b"GET /x HTTP/1.1\r\nHost: {h}\r\nX\x00Y: 1\r\n\r\n", {400}),
    "nul_as_header_value": (b"GET /x HTTP/1.1\r\nHost: {h}\r\nX: \x00\r\n\r\n", {400}),
    "nul_in_target": (b"GET /x\x00y HTTP/1.1\r\nHost: {h}\r\n\r\n", {400}),
    "nul_in_method": (b"GE\x00T /x HTTP/1.1\r\nHost: {h}\r\n\r\n", {400}),
    "nul_in_version": (b"GET /x HTTP/1.\x001\r\nHost: {h}\r\n\r\n", {400}),
    "nul_after_te_value": (chunked_post(b"0\r\n\r\n", b"Transfer-Encoding: chunked\x00\r\n"), {400}),
    "nul_in_chunk_extension": (chunked_post(b"5;a\x00b\r\nhello\r\n0\r\n\r\n"), {400}),
    "nul_in_trailer_name": (chunked_post(b"5\r\nhello\r\n0\r\nX\x00: 1\r\n\r\n"), {400}),
    "soh_in_header_value": (b"GET /x HTTP/1.1\r\nHost: {h}\r\nX: a\x01b\r\n\r\n", {400}),
    "esc_in_header_value": (b"GET /x HTTP/1.1\r\nHost: {h}\r\nX: \x1b[31mred\r\n\r\n", {400}),
    "us_in_header_value": (b"GET /x HTTP/1.1\r\nHost: {h}\r\nX: a\x1fb\r\n\r\n", {400}),
    "soh_in_target": (b"GET /x\x01y HTTP/1.1\r\nHost: {h}\r\n\r\n", {400}),
    "tab_in_target": (b"GET /x\ty HTTP/1.1\r\nHost: {h}\r\n\r\n", {400}),
    "vtab_before_te_value": (chunked_post(b"0\r\n\r\n", b"Transfer-Encoding:\x0bchunked\r\n"), {400}),
    "formfeed_before_te_value": (chunked_post(b"0\r\n\r\n", b"Transfer-Encoding:\x0cchunked\r\n"), {400}),
    "del_in_header_name": (b"GET /x HTTP/1.1\r\nHost: {h}\r\nX\x7fY: 1\r\n\r\n", {400}),
    "del_in_header_value": (b"GET /x HTTP/1.1\r\nHost: {h}\r\nX: a\x7fb\r\n\r\n", {400}),
    "del_in_target": (b"GET /x\x7fy HTTP/1.1\r\nHost: {h}\r\n\r\n", {400}),
    # ---- malformed header lines ----
    "empty_header_name": (b"GET /x HTTP/1.1\r\nHost: {h}\r\n: v\r\n\r\n", {400}),
    "header_without_colon": (b"GET /x HTTP/1.1\r\nHost: {h}\r\nXYZ\r\n\r\n", {400}),
    "whitespace_before_first_header": (
        b"POST /x HTTP/1.1\r\n Transfer-Encoding: chunked\r\nHost: {h}\r\nContent-Length: 5\r\n\r\nhello",
        {400}),
    "host_with_space": (b"GET /x HTTP/1.1\r\nHost: a b\r\n\r\n", {400}),
    # ---- over-long heads (default MAX_HEADER_SIZE) ----
    "request_line_over_cap": (
        b"GET /x?" + b"a" * (DEFAULT_MAX_HEADER_SIZE + 1000) + b" HTTP/1.1\r\nHost: {h}\r\n\r\n", {414, 431}),
    "single_header_over_cap": (
        b"GET /x HTTP/1.1\r\nHost: {h}\r\nX-Big: " + b"a" * (DEFAULT_MAX_HEADER_SIZE + 1000) + b"\r\n\r\n",
        {431}),
    "header_name_over_cap": (
        b"GET /x HTTP/1.1\r\nHost: {h}\r\nX-" + b"a" * (DEFAULT_MAX_HEADER_SIZE + 1000) + b": 1\r\n\r\n",
        {431}),
    "blank_padding_over_cap": (
        b"GET /x HTTP/1.1\r\nHost: {h}\r\nX-Pad:" + b" " * (DEFAULT_MAX_HEADER_SIZE + 1000) + b"v\r\n\r\n",
        {431}),
    "too_many_header_lines": (b"GET /x HTTP/1.1\r\nHost: {h}\r\n" + b"X:\r\n" * 200 + b"\r\n", {431}),
    # ---- methods ----
    "method_lowercase": (b"get /x HTTP/1.1\r\nHost: {h}\r\n\r\n", {400}),
    "method_with_space": (b"G ET /x HTTP/1.1\r\nHost: {h}\r\n\r\n", {400}),
    "method_1000_chars": (b"A" * 1000 + b" /x HTTP/1.1\r\nHost: {h}\r\n\r\n", {400, 501}),
    # ---- versions ----
    "version_http_2_0": (b"GET /x HTTP/2.0\r\nHost: {h}\r\n\r\n", {400, 505}),
    "version_http_1_2": (b"GET /x HTTP/1.2\r\nHost: {h}\r\n\r\n", {400, 505}),
    "version_http_3_0": (b"GET /x HTTP/3.0\r\nHost: {h}\r\n\r\n", {400, 505}),
    "version_absent_http_0_9": (b"GET /x\r\n\r\n", {400}),
    "version_trailing_space": (b"GET /x HTTP/1.1 \r\nHost: {h}\r\n\r\n", {400}),
    "version_lowercase": (b"GET /x http/1.1\r\nHost: {h}\r\n\r\n", {400}),
    "version_empty": (b"GET /x \r\nHost: {h}\r\n\r\n", {400}),
    "h2_preface": (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", {400, 505}),
    # other protocols llhttp parses (and would hand us as 1.0)
    "protocol_rtsp_1_0": (b"OPTIONS /x RTSP/1.0\r\nHost: {h}\r\nCSeq: 1\r\n\r\n", {400}),
    "protocol_rtsp_get": (b"GET /x RTSP/1.0\r\nHost: {h}\r\n\r\n", {400}),
    "protocol_ice_1_0": (b"SOURCE /x ICE/1.0\r\nHost: {h}\r\n\r\n", {400}),
    "protocol_rtsp_with_body": (b"POST /x RTSP/1.0\r\nHost: {h}\r\nContent-Length: 5\r\n\r\nhello", {400}),
    # ---- request targets ----
    "absolute_form_http": (b"GET http://evil/ HTTP/1.1\r\nHost: {h}\r\n\r\n", {400}),
    "absolute_form_https": (b"GET https://evil.example/api/v2/app/version HTTP/1.1\r\nHost: {h}\r\n\r\n",
                            {400}),
    "asterisk_form": (b"OPTIONS * HTTP/1.1\r\nHost: {h}\r\n\r\n", {400}),
    "authority_form_get": (b"GET evil:443 HTTP/1.1\r\nHost: {h}\r\n\r\n", {400}),
    "connect": (b"CONNECT evil:443 HTTP/1.1\r\nHost: evil:443\r\n\r\n", {400, 405}),
    "connect_with_body": (b"CONNECT evil:443 HTTP/1.1\r\nHost: evil:443\r\nContent-Length: 5\r\n\r\nhello",
                          {400, 405}),
    # ---- Transfer-Encoding obfuscations ----
    "te_chunked_chunked_in_one_header": (
        chunked_post(b"0\r\n\r\n", b"Transfer-Encoding: chunked, chunked\r\n"), {400}),
    "te_gzip_then_chunked": (
        chunked_post(b"0\r\n\r\n", b"Transfer-Encoding: gzip, chunked\r\n"), {400, 501}),
    "te_quoted_chunked": (chunked_post(b"0\r\n\r\n", b'Transfer-Encoding: "chunked"\r\n'), {400}),
    "te_in_http_1_0": (
        post_head(b"Transfer-Encoding: chunked\r\n", version=b"HTTP/1.0") + b"0\r\n\r\n", {400}),
    # an empty or blank Transfer-Encoding names no coding: nothing says how the body is framed
    "te_empty": (post_head(b"Transfer-Encoding:\r\n") + b"0\r\n\r\n", {400}),
    "te_empty_with_cl": (post_head(b"Transfer-Encoding:\r\nContent-Length: 5\r\n") + b"hello", {400}),
    "te_blank_with_cl": (post_head(b"Content-Length: 5\r\nTransfer-Encoding: \t \r\n") + b"hello", {400}),
    "te_comma_only": (post_head(b"Transfer-Encoding: ,\r\nContent-Length: 5\r\n") + b"hello", {400}),
    "te_empty_http_1_0": (post_head(b"Transfer-Encoding:\r\nContent-Length: 5\r\n", version=b"HTTP/1.0")
                          + b"hello", {400}),
    "te_blank_http_1_0_no_cl": (post_head(b"Transfer-Encoding:  \r\n", version=b"HTTP/1.0") + b"hello", {400}),
    "te_chunked_plus_empty_field": (
        chunked_post(b"0\r\n\r\n", b"Transfer-Encoding: chunked\r\nTransfer-Encoding:\r\n"), {400}),
    # ---- Content-Length obfuscations ----
    "cl_space_inside": (post_head(b"Content-Length: 1 0\r\n") + b"hellohello", {400}),
    "cl_tab_inside": (post_head(b"Content-Length: 1\t0\r\n") + b"hellohello", {400}),
    "cl_overflow_20_digits": (post_head(b"Content-Length: 99999999999999999999\r\n") + b"hello", {400}),
    "cl_uint64_max": (post_head(b"Content-Length: 18446744073709551615\r\n") + b"hello", {400, 413}),
    "cl_2_pow_64": (post_head(b"Content-Length: 18446744073709551616\r\n") + b"hello", {400}),
    "cl_decimal_point": (post_head(b"Content-Length: 5.0\r\n") + b"hello", {400}),
    "cl_empty": (post_head(b"Content-Length: \r\n") + b"hello", {400}),
    "cl_identical_twice": (post_head(b"Content-Length: 5\r\nContent-Length: 5\r\n") + b"hello", {400}),
    "cl_identical_list": (post_head(b"Content-Length: 5, 5\r\n") + b"hello", {400}),
    "cl_non_ascii_digit": (post_head("Content-Length: \u0665\r\n".encode()) + b"hello", {400}),
    # ---- chunk sizes and extensions ----
    "chunk_size_beyond_body_cap": (chunked_post(b"ffffffffffffffff\r\nhello\r\n0\r\n\r\n"), {400, 413}),
    "chunk_size_negative": (chunked_post(b"-5\r\nhello\r\n0\r\n\r\n"), {400}),
    "chunk_size_0x_prefix": (chunked_post(b"0x5\r\nhello\r\n0\r\n\r\n"), {400}),
    "chunk_size_trailing_space": (chunked_post(b"5 \r\nhello\r\n0\r\n\r\n"), {400}),
    "chunk_extension_without_name": (chunked_post(b"5;\r\nhello\r\n0\r\n\r\n"), {400}),
    "chunk_extension_ctl_in_quoted_value": (chunked_post(b'5;a="\x01"\r\nhello\r\n0\r\n\r\n'), {400}),
    "chunk_extension_with_bare_lf": (chunked_post(b"5;a\nb\r\nhello\r\n0\r\n\r\n"), {400}),
    "last_chunk_missing_crlf_then_pipelined": (chunked_post(b"5\r\nhello\r\n0\r\n"), {400}),
    # A framing field in the trailer section (RFC 9110, 6.5.1: must not be used for framing).
    "trailer_transfer_encoding": (
        chunked_post(b"5\r\nhello\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n"), {400}),
}


def render(template, authority):
    return template.replace(b"{h}", authority.encode())


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_hostile_request_refused_closed_and_nothing_forwarded(proxy, upstream, case):
    d = proxy()
    template, statuses = REFUSED[case]
    raw = render(template + SMUGGLED, d.authority)
    with connect(d) as c:
        try:
            c.send(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before everything was written: the answer is still due
        try:
            r = c.read_response()
        except (EOFError, ConnectionResetError, socket.timeout) as e:
            pytest.fail(f"{case}: no response ({e!r}); sent {raw[:300]!r}; log:\n{d.log()[-2000:]}")
        assert r.status in statuses, f"{case}: sent {raw[:300]!r}, got {r}"
        after = c.read_until_closed(5)
        assert after == b"", f"{case}: more after the {r.status}: {after[:300]!r}"
    reqs = control_request(d, upstream, 1)
    assert [q.target for q in reqs] == ["/control"], (
        f"{case}: sent {raw[:300]!r}; upstream received {[q.head_raw[:300] for q in reqs]}")


# ---- valid but unusual: re-framed exactly, connection kept in step ----


def forwarded_head(up_port, body_len, extra=b""):
    """The head the proxy sends for POST /x with a body of body_len bytes."""
    return (b"POST /x HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%sX-Forwarded-For: 127.0.0.1\r\n"
            b"X-Forwarded-Proto: http\r\nConnection: keep-alive\r\nContent-Length: %d\r\n\r\n"
            % (up_port, extra, body_len))


def te_post(te_line, body):
    return b"POST /x HTTP/1.1\r\nHost: {h}\r\n" + te_line + b"\r\n" + body


# name -> (request bytes with {h}, the body the upstream must get)
NORMALIZED = {
    "te_tab_before_value": (te_post(b"Transfer-Encoding:\tchunked\r\n", b"5\r\nhello\r\n0\r\n\r\n"), b"hello"),
    "te_trailing_space": (te_post(b"Transfer-Encoding: chunked \r\n", b"5\r\nhello\r\n0\r\n\r\n"), b"hello"),
    "te_capitalised": (te_post(b"Transfer-Encoding: Chunked\r\n", b"5\r\nhello\r\n0\r\n\r\n"), b"hello"),
    "te_empty_list_element": (te_post(b"Transfer-Encoding: ,chunked\r\n", b"5\r\nhello\r\n0\r\n\r\n"), b"hello"),
    "cl_leading_zeros": (te_post(b"Content-Length: 005\r\n", b"hello"), b"hello"),
    "cl_blanks_around": (te_post(b"Content-Length:    5   \r\n", b"hello"), b"hello"),
    "cl_tab_before": (te_post(b"Content-Length:\t5\r\n", b"hello"), b"hello"),
    "chunk_size_leading_zeros": (
        te_post(b"Transfer-Encoding: chunked\r\n", b"0000000000000000000005\r\nhello\r\n0\r\n\r\n"), b"hello"),
    "chunk_size_uppercase_hex": (
        te_post(b"Transfer-Encoding: chunked\r\n", b"A\r\nhellohello\r\n0\r\n\r\n"), b"hellohello"),
    "chunk_extension_100k": (
        te_post(b"Transfer-Encoding: chunked\r\n", b"5;" + b"a" * 100000 + b"\r\nhello\r\n0\r\n\r\n"), b"hello"),
    "chunk_extension_quoted_value": (
        te_post(b"Transfer-Encoding: chunked\r\n", b'5;n="v v"\r\nhello\r\n0;x="y"\r\n\r\n'), b"hello"),
    "trailer_content_length_ignored": (
        te_post(b"Transfer-Encoding: chunked\r\n", b"5\r\nhello\r\n0\r\nContent-Length: 100\r\n\r\n"), b"hello"),
}

# Valid by RFC 9110/9112 but refused (400) by the daemon, for llhttp's strictness: a trailing tab
# in Content-Length by every llhttp version so far; chunk extensions beyond one name=value (and
# quoted pairs in them) by llhttp 8.1 only (Debian 12), which 9 (Debian 13) parses. Harmless: a
# refusal cannot desynchronise anything. Kept as strict xfails, for the llhttp the binary was built
# with, so that a change shows up.
REFUSED_BY_LLHTTP = {"cl_trailing_tab": 99, "chunk_extensions_two": 9, "chunk_extensions_2000": 9,
                     "chunk_extension_quoted_pair": 9}  # refused by llhttp major versions below this
NORMALIZED_REFUSED = {
    "cl_trailing_tab": (te_post(b"Content-Length: 5\t\r\n", b"hello"), b"hello"),
    "chunk_extensions_two": (te_post(b"Transfer-Encoding: chunked\r\n", b"5;a=b;c=d\r\nhello\r\n0\r\n\r\n"),
                             b"hello"),
    "chunk_extensions_2000": (te_post(b"Transfer-Encoding: chunked\r\n", b"5" + b";a=b" * 2000
                                      + b"\r\nhello\r\n0\r\n\r\n"), b"hello"),
    "chunk_extension_quoted_pair": (
        te_post(b"Transfer-Encoding: chunked\r\n", b'5\r\nhello\r\n0;x="y;\\"z"\r\n\r\n'), b"hello"),
}


@pytest.mark.parametrize("case", sorted(NORMALIZED) + [
    pytest.param(k, marks=pytest.mark.xfail(LLHTTP_VERSION[0] < REFUSED_BY_LLHTTP[k], strict=True,
                                            reason="valid, but refused with 400 by llhttp %d.%d.%d" % LLHTTP_VERSION))
    for k in sorted(NORMALIZED_REFUSED)])
def test_unusual_valid_request_reframed_exactly(proxy, upstream, case):
    d = proxy()
    template, body = {**NORMALIZED, **NORMALIZED_REFUSED}[case]
    raw = render(template, d.authority)
    nxt = render(b"GET /next HTTP/1.1\r\nHost: {h}\r\n\r\n", d.authority)
    with connect(d) as c:
        c.send(raw + nxt)
        first = c.read_response()
        second = c.read_response()
    assert first.status == 200, f"{case}: sent {raw[:300]!r}, got {first}"
    assert second.status == 200, f"{case}: the pipelined request after it: {second}"
    reqs = upstream.wait_requests(2, timeout=5)
    assert len(reqs) == 2, reqs
    got, then = reqs
    assert got.head_raw == forwarded_head(upstream.port, len(body)), got
    assert got.body == body, got
    assert then.head_raw == (b"GET /next HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nX-Forwarded-For: 127.0.0.1\r\n"
                             b"X-Forwarded-Proto: http\r\nConnection: keep-alive\r\n\r\n" % upstream.port), then


def test_underscore_transfer_encoding_never_reaches_upstream(proxy, upstream):
    # "Transfer_Encoding" is a legal token, but servers and gateways that map "_" to "-" (CGI,
    # WSGI, some frameworks) read it as Transfer-Encoding: beside a Content-Length it is a
    # framing disagreement waiting to happen. Refusing it or dropping it are both fine;
    # forwarding it is not.
    d = proxy()
    raw = render(te_post(b"Transfer_Encoding: chunked\r\nContent-Length: 5\r\n", b"hello") + SMUGGLED,
                 d.authority)
    with connect(d) as c:
        c.send(raw)
        r = c.read_response()
        if 400 <= r.status < 500:
            assert c.read_until_closed(5) == b""
    reqs = control_request(d, upstream, 2 if r.status == 200 else 1)
    for q in reqs:
        names = [k.lower().replace("_", "-") for k, _ in q.headers]
        assert names.count("transfer-encoding") == 0, f"sent {raw!r}; upstream got {q.head_raw!r}"


# ---- split delivery: every split point, and one byte per read ----


def server_rx_queue(daemon_port, client_port):
    """Bytes the daemon has not read yet on the connection from client_port; None once it is gone."""
    for local, remote, state, rx_queue in tcp_sockets():
        if local == daemon_port and remote == client_port:
            return rx_queue if state == "01" else None  # not ESTABLISHED: the daemon is done with it
    return None


def wait_consumed(d, c, timeout=2.0):
    """Waits until the daemon has read everything sent on c (or dropped the connection).

    This makes each piece a separate read on the daemon's side. Returns False when it did not
    happen in time (a daemon may legitimately stop reading, e.g. after answering); the caller's
    checks do not depend on it.
    """
    cport = c.sock.getsockname()[1]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        q = server_rx_queue(d.port, cport)
        if not q:
            return True
        time.sleep(0.001)
    return False


SPLIT_PAYLOADS = {
    "cl_te": post_head(b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n") + b"0\r\n\r\n" + SMUGGLED,
    "obs_fold_te": (post_head(b"Content-Length: 4\r\nTransfer-Encoding:\r\n chunked\r\n") + b"0\r\n\r\n"
                    + SMUGGLED),
    "obs_fold_value": post_head(b"Content-Length: 5\r\nX-Foo: a\r\n  b\r\n") + b"hello" + SMUGGLED,
    "bare_cr_in_value": post_head(b"X-A: 1\rContent-Length: 5\r\n") + b"hello" + SMUGGLED,
    "last_chunk_missing_crlf": chunked_post(b"5\r\nhello\r\n0\r\n") + SMUGGLED,
}


def send_pieces(d, c, pieces):
    """Sends pieces in turn, each after the daemon consumed the last; stops if the daemon closed."""
    for p in pieces:
        try:
            c.send(p)
        except (BrokenPipeError, ConnectionResetError):
            return
        wait_consumed(d, c)


def read_refusal(c, what):
    try:
        r = c.read_response()
    except (EOFError, ConnectionResetError, socket.timeout) as e:
        pytest.fail(f"{what}: no response ({e!r})")
    assert 400 <= r.status < 500, f"{what}: got {r}"
    assert c.read_until_closed(5) == b"", f"{what}: not closed after the {r.status}"
    return r.status


@pytest.mark.parametrize("name", sorted(SPLIT_PAYLOADS))
def test_split_at_every_byte_refused_and_nothing_forwarded(proxy, upstream, name):
    d = proxy()
    raw = render(SPLIT_PAYLOADS[name], d.authority)
    assert len(raw) < 400  # bounds the loop: one connection per split point
    statuses = set()
    for i in range(1, len(raw)):
        with connect(d) as c:
            c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            send_pieces(d, c, [raw[:i], raw[i:]])
            statuses.add(read_refusal(c, f"{name} split at {i}: {raw[:i]!r} | {raw[i:]!r}"))
    assert len(statuses) == 1, f"{name}: the answer depends on where the request is split: {statuses}"
    reqs = control_request(d, upstream, 1)
    assert [q.target for q in reqs] == ["/control"], [q.head_raw for q in reqs]


@pytest.mark.parametrize("name", sorted(SPLIT_PAYLOADS))
def test_one_byte_per_read_refused_and_nothing_forwarded(proxy, upstream, name):
    d = proxy()
    raw = render(SPLIT_PAYLOADS[name], d.authority)
    with connect(d) as c:
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        send_pieces(d, c, [raw[i:i + 1] for i in range(len(raw))])
        read_refusal(c, f"{name} byte by byte")
    reqs = control_request(d, upstream, 1)
    assert [q.target for q in reqs] == ["/control"], [q.head_raw for q in reqs]


def test_valid_request_one_byte_per_read_forwarded_exactly(proxy, upstream):
    # The converse: byte-at-a-time delivery of a valid chunked request with a pipelined GET
    # behind it must be framed exactly as when it arrives in one piece.
    d = proxy()
    raw = render(te_post(b"Transfer-Encoding: chunked\r\nX-Long: " + b"v" * 40 + b"\r\n",
                         b"5;e=1\r\nhello\r\n0\r\nX-T: 1\r\n\r\n")
                 + b"GET /next HTTP/1.1\r\nHost: {h}\r\n\r\n", d.authority)
    with connect(d) as c:
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        send_pieces(d, c, [raw[i:i + 1] for i in range(len(raw))])
        assert c.read_response().status == 200
        assert c.read_response().status == 200
    got, then = upstream.wait_requests(2, timeout=5)
    assert got.head_raw == forwarded_head(upstream.port, 5, b"X-Long: " + b"v" * 40 + b"\r\n"), got
    assert got.body == b"hello", got
    assert then.target == "/next" and then.body_size == 0, then
