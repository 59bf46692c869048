"""A fake Gluetun HTTP control server on 127.0.0.1, answering as Gluetun's own code does.

    g = FakeGluetun(version="3.41.0", ports=[40001])          # listening on a free port
    g.url                                                      # "http://127.0.0.1:PORT"
    g.ports = []                                               # forwarding down
    g.roles = [apikey_role("k", [PORTFORWARD])]                # as a user's config.toml
    g.delay = 3.0; g.garbage = b'{"port":"abc"}'; g.down(); g.up()
    g.requests                                                 # every request, in order
    g.stop()

Written from Gluetun's sources (the mirror's tags v3.40.0, v3.41.0 and master at b1193252;
internal/server/{handler,handlerv0,handlerv1,openvpn,portforward,wrappers,helpers}.go,
internal/server/middlewares/auth/*.go, internal/portforward/{loop.go,service/*.go}), not from its
documentation. What it models:

Versions (`version`):
  "3.40"    v3.40.0-v3.40.4: GET /v1/openvpn/portforwarded answers {"port":N} for 0 or 1 port
            (0 = none) and {"ports":[a,b]} for several; /v1/portforward does not exist (the router's
            default answers 400 "GET /portforward not found", but no role may even list the route:
            Gluetun refuses such a config.toml at start, so it is always 401 here).
  "3.41.0"  v3.41.0-v3.41.1 (the v3.41 branch): GET /v1/portforward answers the same shapes;
            GET /v1/openvpn/portforwarded is a 301 to /v1/portforward (http.Redirect).
  "3.41.2"  the v3.41 routes and auth with the body of master's commit 763c5be1 ("use port and
            ports for both"): always {"port":first-or-0,"ports":[...]}. No tag in the mirror has
            this yet; the name is the release the lead expects it in.
  "master"  master at b1193252: the 763c5be1 body, plus commit 0c3e5d94 (no default role: every
            route needs a configured role) and 3b9c9b24 (the auth middleware answers 404 for a path
            that is no route and 405 for a method the path does not take, before any role check),
            and PUT /v1/portforward (sets the ports).

Ports (`ports`): a list, [] or None. Gluetun's GetPortsForwarded returns nil while no
port-forwarding service exists (never started) and a non-nil empty slice once one has run and
stopped (service/stop.go sets s.ports = nil, GetPortsForwarded copies it into make(..., 0)). With
the "port and ports" body that is "ports":null for None and "ports":[] for []; the older bodies
say {"port":0} for both.

Auth (`roles`, `default_role`): `roles=None` is "no /gluetun/auth/config.toml": 3.40 and 3.41 then
add their built-in "public" role (auth none) listing DEFAULT_PUBLIC_ROUTES[version] (3.40's lists
GET /v1/openvpn/portforwarded, 3.41's adds GET /v1/portforward); master adds none. A list of Role
is a config.toml: the defaults are not added, so a route no role lists is 401. `default_role` is
HTTP_CONTROL_SERVER_AUTH_DEFAULT_ROLE (3.41 and later): a Role whose routes become every valid
route no configured role lists. Roles are validated as Gluetun does at start (a route that is not
valid for the version raises ValueError, like Gluetun refusing to start). Per request: the route
key is "METHOD path" (path without the query); no role lists it -> 401 "Unauthorized\\n"; roles
list it but none authorizes -> 401 (with WWW-Authenticate when a basic role saw no credentials).
apikey: the X-API-Key header, or when that is empty the api_key query parameter. basic: HTTP basic
auth, compared as Gluetun does (the digest of username+password concatenated). Roles with an equal
checker are deduplicated per route, as lookup.go does.

Routing after auth follows the request URI (path AND query, trailing "/" trimmed), as Gluetun's
handlers do: so GET /v1/openvpn/portforwarded?api_key=K on 3.40 is 400 "route
/portforwarded?api_key=K not supported" (the exact-match switch sees the query), while
/v1/portforward?api_key=K works (a prefix match). Handlers this fake does not need (vpn, dns,
updater, publicip, openvpn status/settings) answer 501 "not modelled by fake_gluetun\\n".

Wire format: errors as Go's http.Error (text/plain; charset=utf-8, X-Content-Type-Options: nosniff,
the message and "\\n"); JSON as Go's json.Encoder (compact, "\\n"), with the Content-Type Go sniffs
for it: text/plain; charset=utf-8 (Gluetun sets none); redirects as http.Redirect (Location, text/html,
'<a href="...">Moved Permanently</a>.\\n\\n'); no Server header; Content-Length on every answer.

Test knobs: `delay` (seconds between computing the answer, when the request has arrived, and
sending it: what Gluetun said then arrives late, as over a slow link), `garbage` (bytes or str: the
200 body the port route answers instead of its JSON), `reply` ((status, [(header, value)], body):
the answer to every request, auth or not: something that is not Gluetun, such as a proxy's login
redirect), down() (stop listening and drop open
connections: connects are refused) and up() (listen again on the same port). Every request is
recorded (Recorded: monotonic time, method, path, query, headers, status) in `requests`.
"""

import base64
import hashlib
import http.server
import json
import socket
import ssl
import threading
import time
import urllib.parse
from dataclasses import dataclass, field

from conftest import free_port, wait_until

VERSIONS = ("3.40", "3.41.0", "3.41.2", "master")

PORTFORWARD = "GET /v1/portforward"  # the route from 3.41.0
OPENVPN_PORTFORWARDED = "GET /v1/openvpn/portforwarded"  # the route up to 3.40, a 301 from 3.41.0

# internal/server/middlewares/auth/settings.go validRoutes
_VALID_340 = (
    "GET /openvpn/actions/restart", "GET /unbound/actions/restart", "GET /updater/restart",
    "GET /v1/version", "GET /v1/vpn/status", "PUT /v1/vpn/status", "GET /v1/vpn/settings",
    "PUT /v1/vpn/settings", "GET /v1/openvpn/status", "PUT /v1/openvpn/status",
    "GET /v1/openvpn/portforwarded", "GET /v1/openvpn/settings", "GET /v1/dns/status",
    "PUT /v1/dns/status", "GET /v1/updater/status", "PUT /v1/updater/status", "GET /v1/publicip/ip",
)
_VALID_341 = _VALID_340 + ("GET /openvpn/portforwarded", "GET /openvpn/settings", "GET /v1/portforward")
VALID_ROUTES = {
    "3.40": frozenset(_VALID_340),
    "3.41.0": frozenset(_VALID_341),
    "3.41.2": frozenset(_VALID_341),
    "master": frozenset(_VALID_341 + ("PUT /v1/portforward",)),
}

# settings.go SetDefaults: the "public" role (auth none) added when no role is configured
_PUBLIC_340 = (
    "GET /openvpn/actions/restart", "GET /unbound/actions/restart", "GET /updater/restart",
    "GET /v1/version", "GET /v1/vpn/status", "PUT /v1/vpn/status", "GET /v1/openvpn/status",
    "PUT /v1/openvpn/status", "GET /v1/openvpn/portforwarded", "GET /v1/dns/status",
    "PUT /v1/dns/status", "GET /v1/updater/status", "PUT /v1/updater/status", "GET /v1/publicip/ip",
)
_PUBLIC_341 = _PUBLIC_340 + ("GET /openvpn/portforwarded", "GET /v1/portforward")
DEFAULT_PUBLIC_ROUTES = {"3.40": _PUBLIC_340, "3.41.0": _PUBLIC_341, "3.41.2": _PUBLIC_341, "master": ()}


@dataclass
class Role:
    """One [[roles]] entry of Gluetun's config.toml."""

    name: str
    auth: str  # "none", "apikey" or "basic"
    routes: list = field(default_factory=list)
    apikey: str = ""
    username: str = ""
    password: str = ""

    def checker_key(self):
        """What Gluetun's checker.equal() compares: the method and its digest."""
        if self.auth == "apikey":
            return ("apikey", hashlib.sha256(self.apikey.encode()).digest())
        if self.auth == "basic":
            return ("basic", hashlib.sha256((self.username + self.password).encode()).digest())
        return ("none",)


def apikey_role(key, routes=(PORTFORWARD,), name="qbit-gluetun-sync"):
    return Role(name, "apikey", list(routes), apikey=key)


def basic_role(username, password, routes=(PORTFORWARD,), name="qbit-gluetun-sync"):
    return Role(name, "basic", list(routes), username=username, password=password)


def none_role(routes=(PORTFORWARD,), name="open"):
    return Role(name, "none", list(routes))


@dataclass
class Recorded:
    t: float  # time.monotonic() when the request head had been read
    method: str
    path: str  # decoded, without the query
    query: str  # raw, without "?"
    target: str  # the request target as sent
    headers: dict  # lower-case name -> value (the first one when repeated)
    status: int = 0  # what the fake answered (0 until answered)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, fake, port):
        self.fake = fake
        self.conns = set()
        self.conns_lock = threading.Lock()
        super().__init__(("127.0.0.1", port), _Handler)

    def get_request(self):
        conn, addr = super().get_request()
        if self.fake.tls is not None:
            # Gluetun's control server behind TLS (HTTP_CONTROL_SERVER's own, or a proxy in front).
            conn.settimeout(10)
            try:
                conn = self.fake.tls.wrap_socket(conn, server_side=True)
            except (OSError, ssl.SSLError) as e:
                self.fake.tls_errors.append(repr(e))
                conn.close()
                raise OSError("TLS handshake failed") from e
        with self.conns_lock:
            self.conns.add(conn)
        return conn, addr

    def shutdown_request(self, request):
        with self.conns_lock:
            self.conns.discard(request)
        super().shutdown_request(request)

    def drop_connections(self):
        with self.conns_lock:
            conns = list(self.conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class FakeGluetun:
    def __init__(self, version="3.41.0", ports=None, roles=None, default_role=None, start=True, tls=None):
        self.lock = threading.Lock()
        self.tls = tls  # a server-side ssl.SSLContext: https:// instead of http://
        self.tls_errors = []  # handshakes that failed, as the fake saw them
        self.version = version
        self.ports = ports
        self.roles = roles
        self.default_role = default_role
        self.delay = 0.0
        self.garbage = None
        self.reply = None
        self.requests = []
        self.port = free_port()
        self._server = None
        self._thread = None
        self._stopping = threading.Event()
        self.check_config()
        if start:
            self.up()

    # -- configuration

    @property
    def url(self):
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def check_config(self):
        """Raises ValueError where Gluetun would refuse to start with this configuration."""
        if self.version not in VERSIONS:
            raise ValueError(f"unknown version {self.version!r}; one of {VERSIONS}")
        self._roles()

    def _roles(self):
        """The effective roles, as server.go's setupAuthMiddleware builds them."""
        valid = VALID_ROUTES[self.version]
        roles = list(self.roles or [])
        if self.default_role is not None:
            if self.version == "3.40":
                raise ValueError("HTTP_CONTROL_SERVER_AUTH_DEFAULT_ROLE came with 3.41.0")
            listed = {r for role in roles for r in role.routes}
            roles.append(Role(self.default_role.name, self.default_role.auth, sorted(valid - listed),
                              self.default_role.apikey, self.default_role.username, self.default_role.password))
        if not roles:
            roles = [Role("public", "none", list(DEFAULT_PUBLIC_ROUTES[self.version]))] \
                if DEFAULT_PUBLIC_ROUTES[self.version] else []
        for role in roles:
            if role.auth not in ("none", "apikey", "basic"):
                raise ValueError(f"role {role.name}: authentication method not supported: {role.auth}")
            if role.auth == "apikey" and not role.apikey:
                raise ValueError(f"role {role.name}: api key is empty")
            if role.auth == "basic" and not (role.username and role.password):
                raise ValueError(f"role {role.name}: username or password is empty")
            for route in role.routes:
                if route not in valid:
                    raise ValueError(f"role {role.name}: route not supported by the control server: {route}")
        return roles

    def _route_to_roles(self):
        """lookup.go settingsToLookupMap: per route, the roles, skipping one whose checker equals
        one already listed for that route."""
        table = {}
        for role in self._roles():
            for route in role.routes:
                listed = table.setdefault(route, [])
                if all(r.checker_key() != role.checker_key() for r in listed):
                    listed.append(role)
        return table

    # -- life

    def up(self):
        """Listens (again) on self.port."""
        assert self._server is None, "already up"
        self._stopping.clear()
        self._server = _Server(self, self.port)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def down(self):
        """Stops listening and drops every open connection: a connect is refused from now on."""
        if self._server is None:
            return
        self._stopping.set()  # ends a pending delay
        server, self._server = self._server, None
        server.shutdown()
        server.server_close()
        server.drop_connections()
        self._thread.join(5)

    def stop(self):
        self.down()

    # -- what it was asked

    def recorded(self, path=None):
        with self.lock:
            return [r for r in self.requests if path is None or r.path == path]

    def paths(self):
        return [r.path for r in self.recorded()]

    def wait_requests(self, count, timeout=5.0, path=None, message=None):
        """Waits until at least count requests (to path, when given) were answered; returns them."""
        def enough():
            done = [r for r in self.recorded(path) if r.status]
            return done if len(done) >= count else None
        return wait_until(enough, timeout, message=message or (
            lambda: f"fake Gluetun: {len(self.recorded(path))} requests to {path or 'any path'}, "
                    f"{count} expected: {self.paths()}"))

    # -- answers

    def answer(self, method, target, headers, body):
        """(status, [(header, value)], body bytes) for one request, as Gluetun would answer it."""
        if self.reply is not None:
            return self.reply
        split = urllib.parse.urlsplit(target)
        path = urllib.parse.unquote(split.path)
        # middlewares/auth/middleware.go
        if self.version == "master":
            routes = VALID_ROUTES["master"]
            if not any(r.split(" ", 1)[1] == path for r in routes):
                return go_error(404, "Not Found")
            if f"{method} {path}" not in routes:
                return go_error(405, "Method Not Allowed")
        roles = self._route_to_roles().get(f"{method} {path}", [])
        if not roles:
            return go_error(401, "Unauthorized")
        extra = []
        if not any(self._authorized(role, headers, split.query, extra) for role in roles):
            return go_error(401, "Unauthorized", extra)
        return self._route(method, target, body)

    @staticmethod
    def _authorized(role, headers, query, extra):
        if role.auth == "none":
            return True
        if role.auth == "apikey":  # apikey.go
            key = headers.get("x-api-key", "")
            if key == "":
                key = (urllib.parse.parse_qs(query, keep_blank_values=True, encoding="latin-1").get("api_key")
                       or [""])[0]
            return hashlib.sha256(key.encode("latin-1")).digest() == role.checker_key()[1]
        credentials = basic_auth(headers.get("authorization", ""))  # basic.go
        if credentials is None:
            if ("WWW-Authenticate", BASIC_CHALLENGE) not in extra:
                extra.append(("WWW-Authenticate", BASIC_CHALLENGE))
            return False
        user, password = credentials
        return hashlib.sha256((user + password).encode("latin-1")).digest() == role.checker_key()[1]

    def _route(self, method, target, body):
        """handler.go, handlerv0.go, handlerv1.go, openvpn.go, portforward.go: by the request URI."""
        uri = target[:-1] if target.endswith("/") else target
        if not uri.startswith("/v1/") and uri != "/v1":
            return self._v0(method, uri)
        uri = uri[len("/v1"):]
        if uri.startswith("/openvpn"):
            uri = uri[len("/openvpn"):]
            if uri != "/portforwarded":
                if uri in ("/status", "/settings"):
                    return go_error(501, "not modelled by fake_gluetun")
                return go_error(400, f"route {uri} not supported")
            if method != "GET":
                return go_error(400, f"method {method} not supported")
            if self.version == "3.40":
                return self._ports_json()
            return go_redirect(301, "/v1/portforward")
        if uri.startswith("/portforward") and self.version != "3.40":
            if method == "GET":
                return self._ports_json()
            if method == "PUT" and self.version == "master":
                return self._set_ports(body)
            return go_error(400, f"method {method} not supported")
        if uri == "/version" and method == "GET":
            return go_json({"version": f"v{self.version}", "commit": "fake", "created": "fake"})
        if any(uri.startswith(p) for p in ("/vpn", "/dns", "/updater", "/publicip")):
            return go_error(501, "not modelled by fake_gluetun")
        return go_error(400, f"{method} {uri} not found")

    def _v0(self, method, uri):
        if method != "GET":
            return go_error(400, "unversioned API: only supports GET method")
        if uri == "/openvpn/portforwarded":
            return go_redirect(308, "/v1/openvpn/portforwarded" if self.version == "3.40" else "/v1/portforward")
        return go_error(400, "unversioned API: requested URI not found")

    def _ports_json(self):
        if self.garbage is not None:
            data = self.garbage.encode("latin-1") if isinstance(self.garbage, str) else bytes(self.garbage)
            return 200, [("Content-Type", "text/plain; charset=utf-8")], data
        ports = self.ports
        if self.version in ("3.40", "3.41.0"):  # portWrapper / portsWrapper
            if not ports:
                return go_json({"port": 0})
            if len(ports) == 1:
                return go_json({"port": ports[0]})
            return go_json({"ports": list(ports)})
        # 763c5be1: portsWrapper{Port, Ports}; nil slice -> null, empty non-nil slice -> []
        return go_json({"port": ports[0] if ports else 0, "ports": None if ports is None else list(ports)})

    def _set_ports(self, body):
        try:
            data = json.loads(body)
            ports = data.get("ports")
            assert ports is None or all(isinstance(p, int) and 0 <= p <= 65535 for p in ports)
        except (ValueError, AttributeError, AssertionError, TypeError):
            return go_error(400, "failed setting forwarded ports")
        if self.ports is None:  # loop.go: no service to set them on
            return go_error(500, "failed setting forwarded ports")
        self.ports = list(ports or [])
        return 200, [], b""


BASIC_CHALLENGE = 'Basic realm="restricted", charset="UTF-8"'


def basic_auth(value):
    """Go's Request.BasicAuth: (user, password) or None."""
    prefix = "Basic "
    if len(value) < len(prefix) or value[:len(prefix)].lower() != prefix.lower():
        return None
    try:
        decoded = base64.b64decode(value[len(prefix):], validate=True).decode("latin-1")
    except ValueError:
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def go_error(status, message, extra_headers=()):
    """net/http.Error."""
    headers = list(extra_headers) + [("Content-Type", "text/plain; charset=utf-8"),
                                     ("X-Content-Type-Options", "nosniff")]
    return status, headers, (message + "\n").encode()


def go_json(value):
    """json.NewEncoder(w).Encode(value), with the Content-Type net/http sniffs for it."""
    return 200, [("Content-Type", "text/plain; charset=utf-8")], (json.dumps(value, separators=(",", ":")) + "\n").encode()


def go_redirect(status, location):
    """net/http.Redirect for a GET, to an absolute path."""
    text = {301: "Moved Permanently", 308: "Permanent Redirect"}[status]
    body = f'<a href="{location}">{text}</a>.\n\n'.encode()
    return status, [("Location", location), ("Content-Type", "text/html; charset=utf-8")], body


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _any(self):
        fake = self.server.fake
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        split = urllib.parse.urlsplit(self.path)
        headers = {}
        for name, value in self.headers.items():
            headers.setdefault(name.lower(), value)
        rec = Recorded(time.monotonic(), self.command, urllib.parse.unquote(split.path), split.query, self.path,
                       headers)
        with fake.lock:
            fake.requests.append(rec)
        with fake.lock:
            status, hdrs, data = fake.answer(self.command, self.path, headers, body)
        if fake.delay and fake._stopping.wait(fake.delay):
            self.close_connection = True
            return
        self.send_response_only(status)
        self.send_header("Date", self.date_time_string())
        for name, value in hdrs:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        rec.status = status
        try:
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
        except OSError:  # the client gave up (a timeout): nothing to tell it
            self.close_connection = True

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _any
