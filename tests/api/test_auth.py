"""Login, lockout, token checks and roles over the real app and a real SQLite store."""

from __future__ import annotations

import httpx
import pytest

from .support import ADMIN_PW, OPERATOR_PW, VIEWER_PW, ApiTestPlatform, login


async def _audit_rows(platform: ApiTestPlatform) -> list[dict]:
    await platform.db.writer.flush()
    items, _ = await platform.db.repo.list_audit(page=1, size=1000)
    return items


async def test_login_ok_and_me(client: httpx.AsyncClient, platform: ApiTestPlatform) -> None:
    r = await client.post("/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PW})
    assert r.status_code == 200
    body = r.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 12 * 3600
    assert body["user"] == {"username": "admin", "role": "admin"}
    me = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200 and me.json() == {"username": "admin", "role": "admin"}
    rows = await _audit_rows(platform)
    logins = [a for a in rows if a["action"] == "login"]
    assert logins and logins[0]["user"] == "admin"
    assert ADMIN_PW not in str(rows)


async def test_login_bad(client: httpx.AsyncClient, platform: ApiTestPlatform) -> None:
    r = await client.post("/api/v1/auth/login", json={"username": "admin", "password": "wrong-password"})
    assert r.status_code == 401
    assert r.json()["code"] == "unauthorized" and "detail" in r.json()
    r = await client.post("/api/v1/auth/login", json={"username": "nobody", "password": "wrong-password"})
    assert r.status_code == 401
    r = await client.post("/api/v1/auth/login", json={"username": "admin"})
    assert r.status_code == 422 and r.json()["code"] == "validation_error"
    rows = await _audit_rows(platform)
    failed = [a for a in rows if a["action"] == "login.failed"]
    assert len(failed) == 2
    assert "wrong-password" not in str(rows)


async def test_lockout_after_five_failures(client: httpx.AsyncClient, platform: ApiTestPlatform) -> None:
    for _ in range(5):
        r = await client.post("/api/v1/auth/login", json={"username": "view", "password": "bad-password"})
        assert r.status_code == 401
    r = await client.post("/api/v1/auth/login", json={"username": "view", "password": VIEWER_PW})
    assert r.status_code == 429 and r.json()["code"] == "locked"
    assert int(r.headers["Retry-After"]) > 200
    row = await platform.db.repo.get_user("view")
    assert row is not None and row["locked_until"]
    # an admin can unlock
    admin = await login(client, "admin", ADMIN_PW)
    r = await client.patch("/api/v1/users/view", json={"unlock": True}, headers=admin)
    assert r.status_code == 200
    await login(client, "view", VIEWER_PW)


async def test_failures_reset_on_success(client: httpx.AsyncClient, platform: ApiTestPlatform) -> None:
    for _ in range(4):
        await client.post("/api/v1/auth/login", json={"username": "oper", "password": "bad-password"})
    await login(client, "oper", OPERATOR_PW)
    row = await platform.db.repo.get_user("oper")
    assert row is not None and not row["failed_logins"]


@pytest.mark.parametrize("path", [
    "/api/v1/devices", "/api/v1/channels", "/api/v1/devices/34020000001320000001", "/api/v1/summary",
    "/api/v1/alarms", "/api/v1/positions", "/api/v1/streams", "/api/v1/users", "/api/v1/audit",
    "/api/v1/system", "/api/v1/auth/me", "/api/v1/map/clusters?west=0&south=0&east=1&north=1&zoom=3",
    "/api/v1/tree/civil", "/api/v1/tree/groups", "/api/v1/events",
])
async def test_token_required(client: httpx.AsyncClient, path: str) -> None:
    r = await client.get(path)
    assert r.status_code == 401, (path, r.text)
    assert r.json()["code"] == "unauthorized"
    r = await client.get(path, headers={"Authorization": "Bearer not.a.token"})
    assert r.status_code == 401


async def test_token_not_accepted_in_query_on_normal_endpoints(client: httpx.AsyncClient,
                                                               admin: dict[str, str]) -> None:
    token = admin["Authorization"].split()[1]
    r = await client.get(f"/api/v1/devices?token={token}")
    assert r.status_code == 401


async def test_roles(client: httpx.AsyncClient, viewer: dict[str, str], operator: dict[str, str],
                     admin: dict[str, str]) -> None:
    ch = "34020000001310000001"
    # viewers look but do not touch
    assert (await client.get("/api/v1/channels", headers=viewer)).status_code == 200
    r = await client.post(f"/api/v1/channels/{ch}/ptz", json={"command": "left", "speed": 10}, headers=viewer)
    assert r.status_code == 403 and r.json()["code"] == "forbidden"
    assert (await client.get("/api/v1/users", headers=viewer)).status_code == 403
    # operators control but do not administer
    r = await client.post(f"/api/v1/channels/{ch}/ptz", json={"command": "left", "speed": 10}, headers=operator)
    assert r.status_code == 200
    assert (await client.get("/api/v1/audit", headers=operator)).status_code == 403
    r = await client.post("/api/v1/users", json={"username": "x1", "password": "long-enough-1"}, headers=operator)
    assert r.status_code == 403
    # admins do everything
    assert (await client.get("/api/v1/audit", headers=admin)).status_code == 200
    r = await client.post("/api/v1/users", json={"username": "x1", "password": "long-enough-1", "role": "operator"},
                          headers=admin)
    assert r.status_code == 201 and r.json()["role"] == "operator" and "password_hash" not in r.json()
    r = await client.post("/api/v1/users", json={"username": "x1", "password": "long-enough-1"}, headers=admin)
    assert r.status_code == 409
    users = (await client.get("/api/v1/users", headers=admin)).json()
    assert {u["username"] for u in users["items"]} >= {"admin", "oper", "view", "x1"}
    assert all("password_hash" not in u for u in users["items"])


async def test_change_password_invalidates_old_tokens(client: httpx.AsyncClient, viewer: dict[str, str]) -> None:
    r = await client.post("/api/v1/auth/password", json={"old_password": "wrong-one-1", "new_password": "x" * 12},
                          headers=viewer)
    assert r.status_code == 403
    r = await client.post("/api/v1/auth/password", json={"old_password": VIEWER_PW, "new_password": "short"},
                          headers=viewer)
    assert r.status_code == 422
    r = await client.post("/api/v1/auth/password", json={"old_password": VIEWER_PW, "new_password": "view"},
                          headers=viewer)
    assert r.status_code == 422
    r = await client.post("/api/v1/auth/password", json={"old_password": VIEWER_PW, "new_password": "brand-new-pw-9"},
                          headers=viewer)
    assert r.status_code == 200
    new = {"Authorization": f"Bearer {r.json()['access_token']}"}
    assert (await client.get("/api/v1/auth/me", headers=viewer)).status_code == 401
    assert (await client.get("/api/v1/auth/me", headers=new)).status_code == 200
    await login(client, "view", "brand-new-pw-9")


async def test_disabled_user_rejected(client: httpx.AsyncClient, admin: dict[str, str],
                                      viewer: dict[str, str]) -> None:
    r = await client.patch("/api/v1/users/view", json={"disabled": True}, headers=admin)
    assert r.status_code == 200
    assert (await client.get("/api/v1/auth/me", headers=viewer)).status_code == 401
    r = await client.post("/api/v1/auth/login", json={"username": "view", "password": VIEWER_PW})
    assert r.status_code == 401
