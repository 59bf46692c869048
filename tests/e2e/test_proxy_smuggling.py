"""Request smuggling: every ambiguous or malformed framing gets a 4xx, the client connection is
closed, and nothing reaches the upstream: neither the request itself nor the request hidden
behind it. The proxy and qBittorrent must never disagree on where a request ends."""

import pytest

from proxy_rig import (  # noqa: F401  (fixtures are used by name)
    connect,
    control_request,
    proxy,
    upstream,
)

SMUGGLED = "GET /smuggled HTTP/1.1\r\nHost: {h}\r\n\r\n"


def post(h, headers, body=""):
    return f"POST /api/v2/app/setPreferences HTTP/1.1\r\nHost: {h}\r\n{headers}\r\n{body}"


CASES = {
    "cl_and_te": lambda h: post(h, "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n",
                                "0\r\n\r\n" + SMUGGLED.format(h=h)),
    "te_and_cl": lambda h: post(h, "Transfer-Encoding: chunked\r\nContent-Length: 40\r\n",
                                "0\r\n\r\n" + SMUGGLED.format(h=h)),
    "two_content_lengths": lambda h: post(h, "Content-Length: 5\r\nContent-Length: 6\r\n",
                                          "hello!" + SMUGGLED.format(h=h)),
    "content_length_list": lambda h: post(h, "Content-Length: 5, 6\r\n",
                                          "hello!" + SMUGGLED.format(h=h)),
    "te_chunked_identity": lambda h: post(h, "Transfer-Encoding: chunked, identity\r\n",
                                          "0\r\n\r\n" + SMUGGLED.format(h=h)),
    "te_xchunked": lambda h: post(h, "Transfer-Encoding: xchunked\r\n",
                                  "0\r\n\r\n" + SMUGGLED.format(h=h)),
    "te_identity": lambda h: post(h, "Transfer-Encoding: identity\r\nContent-Length: 5\r\n",
                                  "hello" + SMUGGLED.format(h=h)),
    "te_chunked_twice": lambda h: post(h, "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
                                       "0\r\n\r\n" + SMUGGLED.format(h=h)),
    "bad_chunk_size": lambda h: post(h, "Transfer-Encoding: chunked\r\n",
                                     "zz\r\nhello\r\n0\r\n\r\n" + SMUGGLED.format(h=h)),
    "chunk_size_overflow": lambda h: post(h, "Transfer-Encoding: chunked\r\n",
                                          "10000000000000001\r\nhello\r\n0\r\n\r\n" + SMUGGLED.format(h=h)),
    "chunk_data_overrun": lambda h: post(h, "Transfer-Encoding: chunked\r\n",
                                         "5\r\nhelloXX\r\n0\r\n\r\n" + SMUGGLED.format(h=h)),
    "obs_fold": lambda h: post(h, "Content-Length: 5\r\nX-Foo: a\r\n  b\r\n", "hello" + SMUGGLED.format(h=h)),
    "obs_fold_te": lambda h: post(h, "Content-Length: 4\r\nTransfer-Encoding:\r\n chunked\r\n",
                                  "0\r\n\r\n" + SMUGGLED.format(h=h)),
    "bare_lf": lambda h: (f"POST /api/v2/app/setPreferences HTTP/1.1\nHost: {h}\nContent-Length: 5\n\n"
                          "hello" + SMUGGLED.format(h=h)),
    "bare_lf_one_header": lambda h: post(h, "X-A: 1\nContent-Length: 5\r\n", "hello" + SMUGGLED.format(h=h)),
    "bare_cr_in_value": lambda h: post(h, "X-A: 1\rContent-Length: 5\r\n", "hello" + SMUGGLED.format(h=h)),
    "nul_in_value": lambda h: post(h, "Content-Length: 5\r\nX-Foo: a\x00b\r\n", "hello" + SMUGGLED.format(h=h)),
    "space_before_colon": lambda h: post(h, "Content-Length : 5\r\n", "hello" + SMUGGLED.format(h=h)),
    "tab_before_colon": lambda h: post(h, "Content-Length\t: 5\r\n", "hello" + SMUGGLED.format(h=h)),
    "te_space_before_colon": lambda h: post(h, "Transfer-Encoding : chunked\r\nContent-Length: 4\r\n",
                                            "0\r\n\r\n" + SMUGGLED.format(h=h)),
    "content_length_plus": lambda h: post(h, "Content-Length: +5\r\n", "hello" + SMUGGLED.format(h=h)),
    "content_length_minus": lambda h: post(h, "Content-Length: -5\r\n", "hello" + SMUGGLED.format(h=h)),
    "content_length_trailing_garbage": lambda h: post(h, "Content-Length: 5x\r\n", "hello" + SMUGGLED.format(h=h)),
    "content_length_hex": lambda h: post(h, "Content-Length: 0x5\r\n", "hello" + SMUGGLED.format(h=h)),
    "two_hosts": lambda h: post(h, "Host: evil.example\r\nContent-Length: 5\r\n", "hello" + SMUGGLED.format(h=h)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_smuggling_refused_and_nothing_forwarded(proxy, upstream, case):
    d = proxy()
    raw = CASES[case](d.authority).encode("latin-1")
    with connect(d) as c:
        c.send(raw)
        try:
            r = c.read_response()
        except (EOFError, ConnectionResetError) as e:
            pytest.fail(f"{case}: no response before the close ({e!r}); sent {raw!r}")
        assert 400 <= r.status < 500, f"{case}: sent {raw!r}, got {r}"
        after = c.read_until_closed(5)
        assert after == b"", f"{case}: more after the {r.status}: {after[:300]!r}"
    reqs = control_request(d, upstream, 1)
    assert [q.target for q in reqs] == ["/control"], (
        f"{case}: sent {raw!r}; upstream received {[q.head_raw for q in reqs]}")
