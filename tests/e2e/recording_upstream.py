"""A recording HTTP/1.1 upstream for the proxy's end-to-end tests: raw sockets, one thread each.

It listens on 127.0.0.1 on a free port, accepts any number of connections, and for each one
records, in order, the exact head bytes of every request it receives, the parsed request line
and headers, and the body's size and SHA-256 (the body itself only while it is small, so a
256 MiB upload never sits in memory). Then it answers as the test scripted:

    up = RecordingUpstream().start()
    up.handler = lambda req, conn: Reply(200, [("Content-Type", "text/plain")], b"hi")
    up.queue(Stall(), Reply(204))   # the next two requests, before the handler is used again
    ...
    up.stop()                       # closes every socket and joins every thread

Actions: Reply (Content-Length, chunked, read-to-close or no body; optionally slow), Stream
(a large body generated on the fly), Raw (exact bytes), Upgrade (101 then an echo tunnel),
Stall (never answer), CloseMidBody (head, part of the body, close), CloseNoAnswer (close after
reading the request). Options on the upstream: close idle keep-alive connections after a
delay (as qBittorrent does), answer `Expect: 100-continue`, pause while reading a body (for
back-pressure tests), speak TLS (RecordingUpstream(tls=server SSLContext); each connection
records the SNI name it was sent, or None, and a failed handshake).

The upstream never validates what it receives beyond what it needs to frame requests: a
request it cannot parse is recorded with `error` set, answered 400 and the connection closed,
so a test can show the proxy what it sent.
"""

import hashlib
import select
import socket
import threading
import time

# A 64 KiB block of every byte value, repeated to make large bodies.
PATTERN = bytes(range(256)) * 256

# Bodies up to this size are kept whole; larger ones only as size and hash.
KEEP_BODY_MAX = 4 * 1024 * 1024
# Raw bytes kept per connection (the head of every request is kept separately in full).
KEEP_RAW_MAX = 1024 * 1024
HEAD_MAX = 256 * 1024
IO_TIMEOUT = 60.0


def pattern_bytes(offset, size, block=PATTERN):
    """size bytes of the repeating block, starting at offset into it."""
    start = offset % len(block)
    reps = (start + size + len(block) - 1) // len(block)
    return (block * reps)[start:start + size]


def pattern_digest(size, block=PATTERN):
    """SHA-256 hex digest of size bytes of the repeating block."""
    h = hashlib.sha256()
    mv = memoryview(block)
    full, rest = divmod(size, len(block))
    for _ in range(full):
        h.update(mv)
    h.update(mv[:rest])
    return h.hexdigest()


class UpstreamError(Exception):
    """The peer sent something the upstream could not frame."""


class RecordedRequest:
    """One request as the upstream received it."""

    def __init__(self, conn_index, index):
        self.conn_index = conn_index  # which upstream connection (0 = first accepted)
        self.index = index  # position on that connection (0 = first request)
        self.head_raw = b""  # the exact bytes of the request line and headers, CRLFCRLF included
        self.request_line = ""
        self.method = ""
        self.target = ""
        self.version = ""
        self.headers = []  # (name as sent, value with surrounding blanks stripped), in order
        self.body_size = 0
        self.body_sha256 = hashlib.sha256().hexdigest()
        self.body = b""  # whole while body_size <= KEEP_BODY_MAX, else None
        self.body_framing = "none"  # none, length or chunked (as the proxy sent it)
        self.chunk_sizes = []
        self.trailers = []
        self.complete = False  # the body was read to its end
        self.error = None  # why the upstream could not frame it
        self.own = False  # the daemon's own API call (see RecordingUpstream.is_own), not proxied
        self.proxied_index = 0  # position on its connection among requests that are not own
        self.received_at = time.monotonic()

    def values(self, name):
        """Every value of the header called name (case-insensitive), in order."""
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def header(self, name):
        """The value of the single header name, None when absent; raises when it is repeated."""
        vals = self.values(name)
        if len(vals) > 1:
            raise AssertionError(f"header {name} repeated: {vals}; request head: {self.head_raw!r}")
        return vals[0] if vals else None

    def has(self, name):
        return bool(self.values(name))

    def connection_tokens(self):
        toks = []
        for v in self.values("connection"):
            toks += [t.strip().lower() for t in v.split(",") if t.strip()]
        return toks

    def __repr__(self):
        return (
            f"<RecordedRequest conn={self.conn_index} #{self.index} head={self.head_raw!r} "
            f"body_size={self.body_size} framing={self.body_framing} complete={self.complete}"
            f"{' error=' + self.error if self.error else ''}>"
        )


class ConnRecord:
    """One connection the upstream accepted."""

    def __init__(self, index, sock, peer):
        self.index = index
        self.sock = sock
        self.peer = peer
        self.accepted_at = time.monotonic()
        self.requests = []
        self.raw = bytearray()  # the first KEEP_RAW_MAX bytes received
        self.raw_total = 0  # every byte received, tunnel bytes included
        self.tunnel_bytes = 0  # bytes echoed after a 101
        self.closed = threading.Event()
        self.closed_by = None  # "peer", "upstream" or "stop"
        self.thread = None
        self.sni = None  # over TLS: the server name the client sent
        self.tls_error = None  # over TLS: why the handshake failed

    def __repr__(self):
        return f"<ConnRecord #{self.index} requests={len(self.requests)} closed_by={self.closed_by}>"


class _Reader:
    """Buffered reads on a socket that record what they receive into the connection."""

    def __init__(self, sock, conn, upstream):
        self.sock = sock
        self.conn = conn
        self.up = upstream
        self.buf = bytearray()

    def fill(self, timeout=IO_TIMEOUT):
        """Reads more; returns False at EOF. Raises socket.timeout after timeout seconds."""
        self.sock.settimeout(timeout)
        data = self.sock.recv(262144)
        if not data:
            return False
        c = self.conn
        c.raw_total += len(data)
        room = KEEP_RAW_MAX - len(c.raw)
        if room > 0:
            c.raw += data[:room]
        self.buf += data
        return True

    def read_head(self, first_byte_timeout):
        """The bytes up to and including the blank line; None at EOF before any byte."""
        first = True
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end >= 0:
                head = bytes(self.buf[: end + 4])
                del self.buf[: end + 4]
                return head
            if len(self.buf) > HEAD_MAX:
                raise UpstreamError(f"request head over {HEAD_MAX} bytes: {bytes(self.buf[:200])!r}")
            timeout = first_byte_timeout if first and not self.buf else IO_TIMEOUT
            if not self.fill(timeout):
                if not self.buf:
                    return None
                raise UpstreamError(f"EOF inside a request head: {bytes(self.buf)!r}")
            first = False

    def read_line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[: i + 2]
                return line
            if len(self.buf) > 4096:
                raise UpstreamError(f"line too long in a chunked body: {bytes(self.buf[:100])!r}")
            if not self.fill():
                raise UpstreamError("EOF inside a chunked body")

    def consume(self, n, sink):
        """Reads exactly n bytes into sink(bytes)."""
        while n > 0:
            if not self.buf and not self.fill():
                raise UpstreamError(f"EOF with {n} body bytes still due")
            take = min(n, len(self.buf))
            sink(bytes(self.buf[:take]))
            del self.buf[:take]
            n -= take
            self.up._maybe_pause_body(self, take)


class _Ctx:
    """What an action needs: the socket, the request, the connection, the upstream."""

    def __init__(self, up, conn, reader, req):
        self.up = up
        self.conn = conn
        self.reader = reader
        self.req = req
        self.sock = conn.sock

    def send(self, data):
        self.sock.settimeout(IO_TIMEOUT)
        self.sock.sendall(data)

    def sleep(self, seconds):
        """Sleeps, but returns early (False) when the upstream is stopping."""
        return not self.up._stopping.wait(seconds)


def _head_bytes(status, reason, headers):
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines += [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


REASONS = {
    100: "Continue", 101: "Switching Protocols", 200: "OK", 201: "Created", 204: "No Content",
    206: "Partial Content", 301: "Moved Permanently", 302: "Found", 304: "Not Modified",
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 413: "Payload Too Large", 500: "Internal Server Error",
}


class Action:
    """Answers one request. run() returns True to keep the connection for another request."""

    def run(self, ctx):
        raise NotImplementedError


class Reply(Action):
    """A complete response.

    framing: "length" (Content-Length), "chunked", "close" (no length; the body ends when the
    upstream closes) or "none" (headers exactly as given, no body: 204, 304, or a HEAD answer
    with the Content-Length the GET would have). A HEAD request never gets body bytes.
    delay: seconds before the head; trickle: seconds between body pieces of piece bytes.
    """

    def __init__(self, status=200, headers=(), body=b"", framing="length", reason=None,
                 delay=0.0, trickle=0.0, piece=None, chunk_size=None, trailers=(), close=False):
        self.status = status
        self.headers = list(headers)
        self.body = body if isinstance(body, bytes) else body.encode()
        self.framing = framing
        self.reason = reason or REASONS.get(status, "Whatever")
        self.delay = delay
        self.trickle = trickle
        self.piece = piece
        self.chunk_size = chunk_size
        self.trailers = list(trailers)
        self.close = close

    def run(self, ctx):
        if self.delay and not ctx.sleep(self.delay):
            return False
        headers = list(self.headers)
        names = {k.lower() for k, _ in headers}
        body = self.body
        if self.framing == "length" and "content-length" not in names:
            headers.append(("Content-Length", str(len(body))))
        elif self.framing == "chunked" and "transfer-encoding" not in names:
            headers.append(("Transfer-Encoding", "chunked"))
        if self.close and "connection" not in names:
            headers.append(("Connection", "close"))
        ctx.send(_head_bytes(self.status, self.reason, headers))
        no_body = self.framing == "none" or ctx.req.method == "HEAD"
        if not no_body:
            if self.framing == "chunked":
                size = self.chunk_size or max(1, len(body))
                pieces = [body[i:i + size] for i in range(0, len(body), size)]
                out = [b"%x\r\n%s\r\n" % (len(p), p) for p in pieces]
                trailer = "".join(f"{k}: {v}\r\n" for k, v in self.trailers).encode("latin-1")
                out.append(b"0\r\n" + trailer + b"\r\n")
            else:
                out = [body]
            data = b"".join(out)
            if self.trickle:
                step = self.piece or 1
                for i in range(0, len(data), step):
                    ctx.send(data[i:i + step])
                    if not ctx.sleep(self.trickle):
                        return False
            else:
                ctx.send(data)
        return not (self.close or self.framing == "close")


class Stream(Action):
    """A large body of the repeating PATTERN, generated on the fly and never held whole.

    framing: "length", "chunked" (one chunk per 64 KiB block) or "close".
    """

    def __init__(self, size, framing="length", status=200, headers=()):
        self.size = size
        self.framing = framing
        self.status = status
        self.headers = list(headers)
        self.sent = 0  # body bytes handed to the socket so far

    def run(self, ctx):
        headers = [("Content-Type", "application/octet-stream")] + self.headers
        if self.framing == "length":
            headers.append(("Content-Length", str(self.size)))
        elif self.framing == "chunked":
            headers.append(("Transfer-Encoding", "chunked"))
        ctx.send(_head_bytes(self.status, REASONS.get(self.status, "OK"), headers))
        if ctx.req.method == "HEAD":
            return True
        mv = memoryview(PATTERN)
        left = self.size
        prefix = b"%x\r\n" % len(PATTERN)
        while left > 0:
            if ctx.up._stopping.is_set():
                return False
            n = min(left, len(PATTERN))
            if self.framing == "chunked":
                ctx.send((b"%x\r\n" % n) if n != len(PATTERN) else prefix)
                ctx.send(mv[:n])
                ctx.send(b"\r\n")
            else:
                ctx.send(mv[:n])
            left -= n
            self.sent += n
        if self.framing == "chunked":
            ctx.send(b"0\r\n\r\n")
        return self.framing != "close"


class Raw(Action):
    """Sends exactly these bytes; then closes the connection when close is set."""

    def __init__(self, data, close=False):
        self.data = data
        self.close = close

    def run(self, ctx):
        ctx.send(self.data)
        return not self.close


class Upgrade(Action):
    """Answers 101, optionally sends a greeting in the same write, then echoes until EOF."""

    def __init__(self, headers=(), greeting=b""):
        self.headers = list(headers) or [("Upgrade", "websocket"), ("Connection", "Upgrade")]
        self.greeting = greeting

    def run(self, ctx):
        ctx.send(_head_bytes(101, "Switching Protocols", self.headers) + self.greeting)
        r = ctx.reader
        while not ctx.up._stopping.is_set():
            if r.buf:
                data = bytes(r.buf)
                r.buf.clear()
                ctx.conn.tunnel_bytes += len(data)
                ctx.send(data)
                continue
            try:
                if not r.fill(timeout=0.2):
                    break
            except socket.timeout:
                continue
        return False


class Stall(Action):
    """Never answers; waits until the peer closes or the upstream stops."""

    def run(self, ctx):
        sock = ctx.sock
        while not ctx.up._stopping.is_set():
            ready, _, _ = select.select([sock], [], [], 0.1)
            if ready:
                try:
                    if not ctx.reader.fill(timeout=1.0):
                        ctx.conn.closed_by = "peer"
                        return False
                except (socket.timeout, OSError):
                    return False
        return False


class CloseMidBody(Action):
    """Sends a head declaring length bytes (or chunked), then sent bytes of body, then closes;
    or, with then="stall", stops sending and waits for the peer to give up."""

    def __init__(self, length, sent, framing="length", status=200, then="close"):
        self.length = length
        self.sent = sent
        self.framing = framing
        self.status = status
        self.then = then

    def run(self, ctx):
        headers = [("Content-Type", "application/octet-stream")]
        if self.framing == "length":
            headers.append(("Content-Length", str(self.length)))
        else:
            headers.append(("Transfer-Encoding", "chunked"))
        ctx.send(_head_bytes(self.status, "OK", headers))
        body = pattern_bytes(0, self.sent)
        if self.framing == "chunked":
            ctx.send(b"%x\r\n" % self.length + body)
        else:
            ctx.send(body)
        if self.then == "stall":
            Stall().run(ctx)
        return False


class CloseNoAnswer(Action):
    """Closes the connection right after reading the request, answering nothing."""

    def run(self, ctx):
        return False


def default_handler(req, conn):
    """200 with a short text body naming the request, for tests that only look at requests."""
    body = f"{req.method} {req.target} conn={conn.index} req={req.proxied_index}\n".encode()
    return Reply(200, [("Content-Type", "text/plain")], body)


class RecordingUpstream:
    def __init__(self, host="127.0.0.1", port=0, tls=None):
        self.host = host  # 127.0.0.1, or ::1 for an IPv6-only upstream
        self.tls = tls  # an ssl.SSLContext (server side) to speak TLS with, or None
        self.want_port = port  # 0: any free port
        self.port = None
        self.handler = default_handler
        # is_own(req) -> True marks requests the daemon makes on its own behalf (its qBittorrent
        # API client), as opposed to requests it proxies: they are answered by own_handler,
        # never take a queued action, and requests() and the counts below leave them out.
        self.is_own = None
        self.own_handler = default_handler
        self.idle_close_ms = None  # close a keep-alive connection idle this long
        self.answer_100_continue = True  # answer Expect: 100-continue before reading the body
        self.body_pause = None  # (after_bytes, seconds): stop reading a body once, for a while
        self.conns = []
        self.errors = []  # exceptions in the upstream's own code (not I/O errors): test bugs
        self.io_errors = []  # I/O errors seen (resets, broken pipes): expected in some tests
        self._script = []
        self._lock = threading.Condition()
        self._stopping = threading.Event()
        self._listener = None
        self._accept_thread = None

    # ---- life cycle ----

    def start(self):
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        s = socket.socket(family, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.host, self.want_port))
        s.listen(128)
        s.settimeout(0.1)
        self._listener = s
        self.port = s.getsockname()[1]
        self._accept_thread = threading.Thread(target=self._accept_loop, name=f"upstream-{self.port}",
                                               daemon=True)
        self._accept_thread.start()
        return self

    def stop(self, timeout=10.0):
        """Closes the listener and every connection and joins every thread; returns the stragglers."""
        self._stopping.set()
        with self._lock:
            conns = list(self.conns)
            self._lock.notify_all()
        for c in conns:
            try:
                c.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        deadline = time.monotonic() + timeout
        threads = [self._accept_thread] + [c.thread for c in conns]
        for t in threads:
            if t is not None:
                t.join(max(0.0, deadline - time.monotonic()))
        if self._listener:
            self._listener.close()
        for c in conns:
            try:
                c.sock.close()
            except OSError:
                pass
        return [t.name for t in threads if t is not None and t.is_alive()]

    @property
    def authority(self):
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    # ---- scripting ----

    def queue(self, *actions):
        """The next requests (in arrival order, any connection) get these actions, then the handler."""
        with self._lock:
            self._script.extend(actions)

    def _action_for(self, req, conn):
        with self._lock:
            if self._script:
                return self._script.pop(0)
        action = self.handler(req, conn)
        return action

    # ---- observation ----

    @property
    def connection_count(self):
        with self._lock:
            return len(self.conns)

    def requests(self, include_own=False):
        """Every request received (complete or not), in arrival order across connections."""
        with self._lock:
            reqs = [r for c in self.conns for r in c.requests if include_own or not r.own]
        return sorted(reqs, key=lambda r: r.received_at)

    def proxied_conns(self):
        """The connections that carried at least one request that is not own."""
        with self._lock:
            return [c for c in self.conns if any(not r.own for r in c.requests)]

    def conn_of(self, target):
        """The connection on which a request for target first arrived (not own), or None."""
        for r in self.requests():
            if r.target == target:
                return self.conns[r.conn_index]
        return None

    def wait_for(self, predicate, timeout=10.0):
        """Waits until predicate(self) is true; returns its value or None after timeout."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                value = predicate(self)
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._lock.wait(min(left, 0.05))

    def wait_requests(self, n, timeout=10.0, complete=True):
        """Waits until n requests arrived (with their bodies, when complete); returns them."""
        def enough(up):
            reqs = [r for c in up.conns for r in c.requests
                    if not r.own and (r.complete or not complete)]
            return len(reqs) >= n
        self.wait_for(enough, timeout)
        return self.requests()

    def _notify(self):
        with self._lock:
            self._lock.notify_all()

    # ---- serving ----

    def _accept_loop(self):
        while not self._stopping.is_set():
            try:
                sock, peer = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                if self._stopping.is_set():
                    return
                raise
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                if self._stopping.is_set():
                    sock.close()
                    return
                conn = ConnRecord(len(self.conns), sock, peer)
                self.conns.append(conn)
                t = threading.Thread(target=self._serve, args=(conn,),
                                     name=f"upstream-{self.port}-conn{conn.index}", daemon=True)
                conn.thread = t
                self._lock.notify_all()
            t.start()

    @staticmethod
    def _on_sni(sslsock, name, ctx):
        sslsock.qgs_conn.sni = name

    def _handshake(self, conn):
        """Makes the connection TLS (in its own thread, so a stalled client stalls nobody else)."""
        self.tls.sni_callback = self._on_sni
        sock = self.tls.wrap_socket(conn.sock, server_side=True, do_handshake_on_connect=False)
        sock.qgs_conn = conn
        conn.sock = sock
        sock.settimeout(IO_TIMEOUT)
        sock.do_handshake()

    def _serve(self, conn):
        if self.tls is not None:
            try:
                self._handshake(conn)
            except (OSError, ValueError) as e:
                conn.tls_error = repr(e)
                conn.closed_by = "peer"
                conn.sock.close()
                conn.closed.set()
                self._notify()
                return
        reader = _Reader(conn.sock, conn, self)
        try:
            while not self._stopping.is_set():
                idle = self.idle_close_ms
                first_timeout = idle / 1000.0 if idle else IO_TIMEOUT
                try:
                    head = reader.read_head(first_timeout)
                except socket.timeout:
                    conn.closed_by = "upstream"  # idle close, as qBittorrent does
                    break
                if head is None:
                    conn.closed_by = "peer"
                    break
                req = RecordedRequest(conn.index, len(conn.requests))
                req.head_raw = head
                try:
                    self._parse_head(req)
                except UpstreamError as e:
                    req.error = str(e)
                req.own = bool(self.is_own and not req.error and self.is_own(req))
                req.proxied_index = sum(1 for r in conn.requests if not r.own)
                with self._lock:
                    conn.requests.append(req)
                    self._lock.notify_all()
                try:
                    if req.error:
                        raise UpstreamError(req.error)
                    self._read_body(req, reader, conn)
                except UpstreamError as e:
                    req.error = str(e)
                    self._notify()
                    conn.sock.sendall(_head_bytes(400, "Bad Request", [("Content-Length", "0"),
                                                                       ("Connection", "close")]))
                    conn.closed_by = "upstream"
                    break
                req.complete = True
                self._notify()
                action = self.own_handler(req, conn) if req.own else self._action_for(req, conn)
                keep = action.run(_Ctx(self, conn, reader, req))
                if req.version == "HTTP/1.0" and "keep-alive" not in req.connection_tokens():
                    keep = False
                if "close" in req.connection_tokens():
                    keep = False
                if not keep:
                    conn.closed_by = conn.closed_by or "upstream"
                    break
        except (OSError, UpstreamError) as e:
            self.io_errors.append((conn.index, repr(e)))
            conn.closed_by = conn.closed_by or ("stop" if self._stopping.is_set() else "peer")
        except Exception as e:  # a bug in the upstream or a handler: the test must fail
            self.errors.append((conn.index, repr(e)))
            conn.closed_by = "upstream"
        finally:
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.sock.close()
            conn.closed.set()
            self._notify()

    @staticmethod
    def _parse_head(req):
        text = req.head_raw[:-4].decode("latin-1")
        if "\r\n" in text:
            lines = text.split("\r\n")
        else:
            lines = [text]
        req.request_line = lines[0]
        parts = lines[0].split(" ")
        if len(parts) != 3:
            raise UpstreamError(f"bad request line {lines[0]!r}")
        req.method, req.target, req.version = parts
        for line in lines[1:]:
            if not line or line[0] in " \t" or ":" not in line:
                raise UpstreamError(f"bad header line {line!r}")
            name, _, value = line.partition(":")
            if name != name.strip():
                raise UpstreamError(f"blank around a header name {line!r}")
            req.headers.append((name, value.strip(" \t")))

    def _read_body(self, req, reader, conn):
        te = [t.strip().lower() for v in req.values("transfer-encoding") for t in v.split(",")]
        cls = req.values("content-length")
        h = hashlib.sha256()
        kept = bytearray()
        reader._body_read = 0

        def sink(data):
            h.update(data)
            req.body_size += len(data)
            if len(kept) <= KEEP_BODY_MAX:
                kept.extend(data)

        if te and cls:
            raise UpstreamError("both Transfer-Encoding and Content-Length")
        expect = (req.header("expect") or "").lower() == "100-continue"
        if te:
            if te[-1] != "chunked":
                raise UpstreamError(f"Transfer-Encoding {te} without chunked last")
            req.body_framing = "chunked"
            if expect and self.answer_100_continue:
                conn.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            while True:
                line = reader.read_line()
                try:
                    size = int(line.split(b";")[0].strip(), 16)
                except ValueError:
                    raise UpstreamError(f"bad chunk size line {line!r}")
                req.chunk_sizes.append(size)
                if size == 0:
                    while True:
                        t = reader.read_line()
                        if not t:
                            break
                        req.trailers.append(t.decode("latin-1"))
                    break
                reader.consume(size, sink)
                if reader.read_line() != b"":
                    raise UpstreamError("chunk data longer than its size")
        elif cls:
            if len(set(cls)) != 1 or not cls[0].isdigit():
                raise UpstreamError(f"bad Content-Length {cls}")
            n = int(cls[0])
            req.body_framing = "length"
            if expect and self.answer_100_continue and n > 0:
                conn.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            reader.consume(n, sink)
        req.body_sha256 = h.hexdigest()
        req.body = bytes(kept) if req.body_size <= KEEP_BODY_MAX else None

    def _maybe_pause_body(self, reader, took):
        if not self.body_pause:
            return
        after, seconds = self.body_pause
        before = getattr(reader, "_body_read", 0)
        reader._body_read = before + took
        if before < after <= reader._body_read:
            self._stopping.wait(seconds)
