"""The fake Gluetun control server (fake_gluetun.py) answers as Gluetun's sources say, so the
daemon's tests against it mean something. Each case names the source it comes from (the mirror's
tags v3.40.0 / v3.41.0 and master); no daemon and no qBittorrent here."""

import base64

import pytest
import requests

from fake_gluetun import OPENVPN_PORTFORWARDED, PORTFORWARD, FakeGluetun, apikey_role, basic_role, none_role


@pytest.fixture
def gluetun():
    made = []

    def make(**kwargs):
        g = FakeGluetun(**kwargs)
        made.append(g)
        return g

    yield make
    for g in made:
        g.stop()


def get(g, path, **kwargs):
    return requests.get(g.url + path, allow_redirects=False, timeout=5, **kwargs)


@pytest.mark.parametrize("ports,body", [
    (None, '{"port":0}\n'), ([], '{"port":0}\n'), ([40001], '{"port":40001}\n'),
    ([40001, 40002], '{"ports":[40001,40002]}\n')])
def test_340_old_route_bodies(gluetun, ports, body):
    """v3.40.0 openvpn.go getPortForwarded: portWrapper for 0 or 1 port, portsWrapper for more."""
    r = get(gluetun(version="3.40", ports=ports), "/v1/openvpn/portforwarded")
    assert (r.status_code, r.text) == (200, body)
    assert r.headers["Content-Type"] == "text/plain; charset=utf-8"  # sniffed by net/http
    assert "Server" not in r.headers


def test_340_new_route_is_unauthorized_by_default(gluetun):
    """v3.40.0: GET /v1/portforward is in no role (not even a valid route): 401 from the middleware."""
    r = get(gluetun(version="3.40", ports=[40001]), "/v1/portforward")
    assert (r.status_code, r.text) == (401, "Unauthorized\n")
    assert r.headers["X-Content-Type-Options"] == "nosniff"


def test_340_refuses_a_role_listing_the_new_route():
    """v3.40.0 settings.go Role.validate: the route is not in validRoutes, Gluetun does not start."""
    with pytest.raises(ValueError, match="route not supported"):
        FakeGluetun(version="3.40", roles=[apikey_role("k", [PORTFORWARD])], start=False)


@pytest.mark.parametrize("version", ["3.41.0", "3.41.2"])
def test_341_old_route_redirects(gluetun, version):
    """v3.41.0 openvpn.go: http.Redirect(w, r, "/v1/portforward", 301)."""
    r = get(gluetun(version=version, ports=[40001]), "/v1/openvpn/portforwarded")
    assert r.status_code == 301
    assert r.headers["Location"] == "/v1/portforward"
    assert r.text == '<a href="/v1/portforward">Moved Permanently</a>.\n\n'


@pytest.mark.parametrize("version,ports,body", [
    ("3.41.0", [], '{"port":0}\n'), ("3.41.0", [40001, 40002], '{"ports":[40001,40002]}\n'),
    ("3.41.2", None, '{"port":0,"ports":null}\n'), ("3.41.2", [], '{"port":0,"ports":[]}\n'),
    ("3.41.2", [40001], '{"port":40001,"ports":[40001]}\n'),
    ("3.41.2", [40001, 40002], '{"port":40001,"ports":[40001,40002]}\n')])
def test_341_new_route_bodies(gluetun, version, ports, body):
    """v3.41.0 portforward.go (old shapes); master 763c5be1 (port and ports, nil slice -> null)."""
    r = get(gluetun(version=version, ports=ports), "/v1/portforward")
    assert (r.status_code, r.text) == (200, body)


def test_configured_roles_drop_the_defaults(gluetun):
    """settings.go SetDefaults: gosettings.DefaultSlice only fills an empty list."""
    g = gluetun(version="3.41.0", ports=[40001], roles=[apikey_role("key1", [OPENVPN_PORTFORWARDED])])
    assert get(g, "/v1/portforward", headers={"X-API-Key": "key1"}).status_code == 401
    assert get(g, "/v1/openvpn/portforwarded", headers={"X-API-Key": "key1"}).status_code == 301
    assert get(g, "/v1/openvpn/portforwarded").status_code == 401


def test_apikey_header_then_query(gluetun):
    """apikey.go: X-API-Key, else ?api_key=; the exact-match openvpn router then sees the query."""
    g = gluetun(version="3.40", ports=[40001], roles=[apikey_role("key1", [OPENVPN_PORTFORWARDED])])
    assert get(g, "/v1/openvpn/portforwarded", headers={"X-API-Key": "key1"}).text == '{"port":40001}\n'
    assert get(g, "/v1/openvpn/portforwarded", headers={"X-API-Key": "nope"}).status_code == 401
    r = get(g, "/v1/openvpn/portforwarded?api_key=key1")
    assert (r.status_code, r.text) == (400, "route /portforwarded?api_key=key1 not supported\n")
    g2 = gluetun(version="3.41.2", ports=[40001], roles=[apikey_role("key1")])
    assert get(g2, "/v1/portforward?api_key=key1").status_code == 200  # a prefix match


def test_basic(gluetun):
    """basic.go: WWW-Authenticate only when no credentials were sent; user+password concatenated."""
    g = gluetun(version="3.41.2", ports=[40001], roles=[basic_role("me", "pw")])
    r = get(g, "/v1/portforward")
    assert r.status_code == 401 and r.headers["WWW-Authenticate"] == 'Basic realm="restricted", charset="UTF-8"'
    r = get(g, "/v1/portforward", auth=("me", "wrong"))
    assert r.status_code == 401 and "WWW-Authenticate" not in r.headers
    assert get(g, "/v1/portforward", auth=("me", "pw")).status_code == 200
    assert get(g, "/v1/portforward", auth=("mep", "w")).status_code == 200  # the same digest
    bad = base64.b64encode(b"no-colon").decode()
    assert get(g, "/v1/portforward", headers={"Authorization": "Basic " + bad}).status_code == 401


def test_master_needs_a_role_and_answers_404_405_first(gluetun):
    """master 0c3e5d94 (no default role) and 3b9c9b24 (404/405 before roles)."""
    g = gluetun(version="master", ports=[40001])
    assert get(g, "/v1/portforward").status_code == 401
    assert get(g, "/v1/nothing").status_code == 404
    assert requests.delete(g.url + "/v1/portforward", timeout=5).status_code == 405
    g.roles = [apikey_role("k", [PORTFORWARD, "PUT /v1/portforward"])]
    r = requests.put(g.url + "/v1/portforward", json={"ports": [40005]}, headers={"X-API-Key": "k"}, timeout=5)
    assert r.status_code == 200
    assert get(g, "/v1/portforward", headers={"X-API-Key": "k"}).text == '{"port":40005,"ports":[40005]}\n'


def test_version_is_public_by_default(gluetun):
    """settings.go SetDefaults lists GET /v1/version; handlerv1.go getVersion encodes BuildInformation."""
    g = gluetun(version="3.41.0")
    assert get(g, "/v1/version").json()["version"] == "v3.41.0"
    g.roles = [none_role(["GET /v1/vpn/status"])]
    assert get(g, "/v1/version").status_code == 401


def test_knobs_and_record(gluetun):
    g = gluetun(version="3.41.2", ports=[40001])
    g.garbage = "not json"
    assert get(g, "/v1/portforward", headers={"X-Test": "1"}).text == "not json"
    rec = g.recorded()[-1]
    assert (rec.method, rec.path, rec.status, rec.headers["x-test"]) == ("GET", "/v1/portforward", 200, "1")
    g.down()
    with pytest.raises(requests.ConnectionError):
        get(g, "/v1/portforward")
    g.up()
    g.garbage = None
    g.delay = 0.3
    r = get(g, "/v1/portforward")
    assert r.status_code == 200 and r.elapsed.total_seconds() >= 0.3
