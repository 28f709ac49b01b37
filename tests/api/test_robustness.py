"""Random JSON (hypothesis) thrown at every endpoint that takes a body: never a 500.

Runs the app and a real platform on an event loop in a helper thread (anyio blocking portal), so
hypothesis drives plain synchronous examples.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xueliang.api.app import create_app

from .support import ADMIN_PW, CHANNELS, DEV_ONLINE, close_platform, make_platform

CH = CHANNELS[3]
ENDPOINTS: list[tuple[str, str, list[str]]] = [
    ("POST", "/api/v1/auth/password", ["old_password", "new_password"]),
    ("POST", "/api/v1/devices", ["device_id", "name", "password", "transport", "stream_transport", "class_level",
                                 "district", "owner_unit"]),
    ("PATCH", f"/api/v1/devices/{DEV_ONLINE}", ["name", "transport", "stream_transport", "class_level"]),
    ("POST", f"/api/v1/devices/{DEV_ONLINE}/guard", ["arm"]),
    ("POST", f"/api/v1/devices/{DEV_ONLINE}/config", ["name", "expiration", "heartbeat_interval",
                                                      "heartbeat_count"]),
    ("PATCH", f"/api/v1/channels/{CH}", ["name", "longitude", "latitude", "class_level", "district",
                                         "stream_transport", "resolution"]),
    ("POST", f"/api/v1/channels/{CH}/ptz", ["command", "speed"]),
    ("POST", f"/api/v1/channels/{CH}/preset", ["op", "index"]),
    ("POST", f"/api/v1/channels/{CH}/record", ["start"]),
    ("POST", f"/api/v1/channels/{CH}/home_position", ["enabled", "preset", "reset_time"]),
    ("POST", "/api/v1/channels/pull", ["name", "url", "longitude", "latitude", "civil_code"]),
    ("POST", "/api/v1/users", ["username", "password", "role"]),
    ("PATCH", "/api/v1/users/oper", ["role", "password", "disabled", "unlock"]),
]

scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
           | st.floats(allow_nan=False) | st.text(max_size=30)
           | st.sampled_from(["left", "udp", "tcp-active", "set", "admin", "rtsp://h/x", "34020000001320000009"]))
json_values = st.recursive(scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c,
                                                                                         max_size=4), max_leaves=12)


def _bodies(keys: list[str]) -> st.SearchStrategy[Any]:
    shaped = st.fixed_dictionaries({}, optional={k: json_values for k in keys})
    return shaped | json_values


class Harness:
    def __init__(self, portal: BlockingPortal, tmp: Path) -> None:
        self.portal = portal
        self.platform = portal.call(make_platform, tmp)
        app = create_app(self.platform)
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                                        base_url="http://testserver")
        r = self.request("POST", "/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PW})
        assert r.status_code == 200
        self.headers = {"Authorization": f"Bearer {r.json()['access_token']}",
                        "Content-Type": "application/json"}

    def request(self, method: str, url: str, **kw: Any) -> httpx.Response:
        return self.portal.call(lambda: self.client.request(method, url, **kw))

    def close(self) -> None:
        self.portal.call(self.client.aclose)
        self.portal.call(close_platform, self.platform)


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    with start_blocking_portal() as portal:
        h = Harness(portal, tmp_path_factory.mktemp("robust"))
        try:
            yield h
        finally:
            h.close()


def _check(r: httpx.Response, what: str) -> None:
    assert r.status_code != 500, f"{what} -> 500: {r.text[:300]}"
    assert r.headers.get("content-type", "").startswith("application/json") or r.status_code in (201, 204), what
    if r.status_code >= 400:
        body = r.json()
        assert isinstance(body.get("detail"), str) and isinstance(body.get("code"), str), (what, body)


@pytest.mark.parametrize("method,path,keys", ENDPOINTS, ids=[f"{m} {p}" for m, p, _ in ENDPOINTS])
def test_random_json_never_500(harness: Harness, method: str, path: str, keys: list[str]) -> None:
    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(body=_bodies(keys))
    def run(body: Any) -> None:
        r = harness.request(method, path, content=json.dumps(body), headers=harness.headers)
        _check(r, f"{method} {path} {body!r}"[:300])

    run()


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(raw=st.binary(max_size=200), path=st.sampled_from([p for _, p, _ in ENDPOINTS if "password" not in p]))
def test_garbage_bytes_never_500(harness: Harness, raw: bytes, path: str) -> None:
    r = harness.request("POST", path, content=raw, headers=harness.headers)
    _check(r, f"POST {path} {raw!r}"[:300])


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(query=st.dictionaries(st.sampled_from(["page", "size", "status", "q", "sort", "device_id", "parent_id",
                                              "civil_code", "has_position", "class_level", "since",
                                              "acknowledged"]),
                             st.text(max_size=25), max_size=5),
       path=st.sampled_from(["/api/v1/devices", "/api/v1/channels", "/api/v1/alarms", "/api/v1/positions",
                             "/api/v1/audit", f"/api/v1/devices/{DEV_ONLINE}/channels"]))
def test_random_queries_never_500(harness: Harness, query: dict[str, str], path: str) -> None:
    r = harness.request("GET", path, params=query, headers=harness.headers)
    _check(r, f"GET {path} {query!r}"[:300])
    if r.status_code == 200:
        body = r.json()
        assert isinstance(body["items"], list) and isinstance(body["total"], int)
