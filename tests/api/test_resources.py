"""Devices, channels, controls, alarms, overview: paging, filters, sort, 400/404/409/422/502/504."""

from __future__ import annotations

import httpx
import pytest

from .support import CHANNELS, DEV_BROKEN, DEV_OFFLINE, DEV_ONLINE, DEV_SLOW, ApiTestPlatform

H = dict[str, str]


async def test_devices_list_filters_sort(client: httpx.AsyncClient, viewer: H) -> None:
    r = await client.get("/api/v1/devices", headers=viewer)
    assert r.status_code == 200
    body = r.json()
    assert body["total"] == 4 and len(body["items"]) == 4
    assert all("password" not in d for d in body["items"])
    assert all({"device_id", "name", "status"} <= d.keys() for d in body["items"])
    r = await client.get("/api/v1/devices?status=offline", headers=viewer)
    assert [d["device_id"] for d in r.json()["items"]] == [DEV_OFFLINE]
    r = await client.get("/api/v1/devices?sort=-device_id&size=2&page=1", headers=viewer)
    ids = [d["device_id"] for d in r.json()["items"]]
    assert ids == sorted([DEV_ONLINE, DEV_OFFLINE, DEV_SLOW, DEV_BROKEN], reverse=True)[:2]
    assert r.json()["total"] == 4
    r = await client.get(f"/api/v1/devices?q={DEV_ONLINE}", headers=viewer)
    assert r.json()["total"] == 1


@pytest.mark.parametrize("query", ["page=0", "size=0", "size=1001", "page=x", "status=maybe", "sort=password",
                                   "sort=name;drop"])
async def test_devices_bad_params_422(client: httpx.AsyncClient, viewer: H, query: str) -> None:
    r = await client.get(f"/api/v1/devices?{query}", headers=viewer)
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["code"] == "validation_error" and isinstance(body["detail"], str) and body["detail"]


async def test_device_detail_404_400(client: httpx.AsyncClient, viewer: H) -> None:
    r = await client.get(f"/api/v1/devices/{DEV_ONLINE}", headers=viewer)
    assert r.status_code == 200
    d = r.json()
    assert d["has_password"] is True and "password" not in d
    assert d["catalog_progress"]["state"] == "done"
    assert d["live"] == {"device_id": DEV_ONLINE, "online": True}
    r = await client.get("/api/v1/devices/34020000001320009999", headers=viewer)
    assert r.status_code == 404 and r.json() == {"detail": "device 34020000001320009999 not found", "code": "not_found"}
    for bad in ("abc", "1234", "3402000000132000000112345", "34020000001320000001x"):
        r = await client.get(f"/api/v1/devices/{bad}", headers=viewer)
        assert r.status_code == 400, bad
        assert r.json()["code"] == "bad_id"


async def test_device_create_patch_delete(client: httpx.AsyncClient, operator: H, viewer: H,
                                          platform: ApiTestPlatform) -> None:
    new = "34020000001110000077"
    body = {"device_id": new, "name": "gate NVR", "password": "s3cret", "transport": "tcp",
            "stream_transport": "tcp-passive", "class_level": 1, "district": "Siming", "owner_unit": "Bureau"}
    assert (await client.post("/api/v1/devices", json=body, headers=viewer)).status_code == 403
    r = await client.post("/api/v1/devices", json=body, headers=operator)
    assert r.status_code == 201, r.text
    assert r.json()["has_password"] is True and "password" not in r.json()
    assert (await client.post("/api/v1/devices", json=body, headers=operator)).status_code == 409
    r = await client.post("/api/v1/devices", json={**body, "device_id": "12ab"}, headers=operator)
    assert r.status_code == 422
    r = await client.post("/api/v1/devices", json={**body, "device_id": "34020000001110000078", "color": "red"},
                          headers=operator)
    assert r.status_code == 422  # unknown fields are refused, not ignored
    r = await client.patch(f"/api/v1/devices/{new}", json={"name": "renamed"}, headers=operator)
    assert r.status_code == 200 and r.json()["name"] == "renamed" and r.json()["district"] == "Siming"
    assert (await client.patch("/api/v1/devices/34020000001110000099", json={"name": "x"},
                               headers=operator)).status_code == 404
    assert (await client.delete(f"/api/v1/devices/{new}", headers=operator)).status_code == 204
    assert (await client.delete(f"/api/v1/devices/{new}", headers=operator)).status_code == 404
    forgets = [c for c in platform.gb.calls if c[0] == "forget_device"]
    assert [(c[1][0], c[2]["deleted"]) for c in forgets] == [(new, False), (new, False), (new, True)]
    await platform.db.writer.flush()
    actions = [a["action"] for a in (await platform.db.repo.list_audit(page=1, size=100))[0]]
    assert {"device.create", "device.update", "device.delete"} <= set(actions)
    assert "s3cret" not in str(await platform.db.repo.list_audit(page=1, size=100))


async def test_device_channels_tree(client: httpx.AsyncClient, viewer: H) -> None:
    r = await client.get(f"/api/v1/devices/{DEV_ONLINE}/channels", headers=viewer)
    assert r.status_code == 200
    top = r.json()["items"]
    assert len(top) == 20
    first = next(c for c in top if c["channel_id"] == CHANNELS[0])
    assert first["has_children"] is True
    r = await client.get(f"/api/v1/devices/{DEV_ONLINE}/channels?parent_id={CHANNELS[0]}", headers=viewer)
    assert {c["channel_id"] for c in r.json()["items"]} == set(CHANNELS[20:])
    assert (await client.get("/api/v1/devices/34020000001320009999/channels", headers=viewer)).status_code == 404


async def test_catalog_refresh_and_device_commands(client: httpx.AsyncClient, operator: H,
                                                   platform: ApiTestPlatform) -> None:
    r = await client.post(f"/api/v1/devices/{DEV_ONLINE}/catalog/refresh", headers=operator)
    assert r.status_code == 202 and r.json() == {"status": "started"}
    r = await client.post(f"/api/v1/devices/{DEV_OFFLINE}/catalog/refresh", headers=operator)
    assert r.status_code == 409 and r.json()["code"] == "device_offline"
    r = await client.post("/api/v1/devices/34020000001320009999/catalog/refresh", headers=operator)
    assert r.status_code == 404
    r = await client.get(f"/api/v1/devices/{DEV_SLOW}/info", headers=operator)
    assert r.status_code == 504 and DEV_SLOW in r.json()["detail"]
    r = await client.post(f"/api/v1/devices/{DEV_BROKEN}/reboot", headers=operator)
    assert r.status_code == 502 and r.json()["code"] == "device_error"
    assert (await client.post(f"/api/v1/devices/{DEV_ONLINE}/reboot", headers=operator)).status_code == 200
    r = await client.post(f"/api/v1/devices/{DEV_ONLINE}/guard", json={"arm": True}, headers=operator)
    assert r.status_code == 200
    assert (await client.post(f"/api/v1/devices/{DEV_ONLINE}/guard", json={"arm": "maybe"},
                              headers=operator)).status_code == 422
    r = await client.get(f"/api/v1/devices/{DEV_ONLINE}/info", headers=operator)
    assert r.json()["Manufacturer"] == "Test"
    r = await client.get(f"/api/v1/devices/{DEV_ONLINE}/status", headers=operator)
    assert r.json()["Online"] == "ONLINE"
    r = await client.post(f"/api/v1/devices/{DEV_ONLINE}/config", json={"heartbeat_interval": 30},
                          headers=operator)
    assert r.status_code == 200
    assert (await client.post(f"/api/v1/devices/{DEV_ONLINE}/config", json={}, headers=operator)).status_code == 422
    r = await client.get(f"/api/v1/devices/{DEV_ONLINE}/config/BasicParam", headers=operator)
    assert r.status_code == 200 and "BasicParam" in r.json()
    assert (await client.get(f"/api/v1/devices/{DEV_ONLINE}/config/Basic%20Param",
                             headers=operator)).status_code == 400
    names = [c[0] for c in platform.gb.calls]
    assert names == ["refresh_catalog", "reboot", "guard", "device_info", "device_status", "device_config",
                     "config_download"]
    assert platform.gb.calls[2][1] == (DEV_ONLINE, True)
    assert platform.gb.calls[5][2] == {"heartbeat_interval": 30}


async def test_channels_list_filters(client: httpx.AsyncClient, viewer: H) -> None:
    r = await client.get("/api/v1/channels?size=5", headers=viewer)
    body = r.json()
    assert body["total"] == 25 and len(body["items"]) == 5
    r = await client.get("/api/v1/channels?size=5&page=6", headers=viewer)
    assert r.json()["items"] == [] and r.json()["total"] == 25
    r = await client.get("/api/v1/channels?status=online&size=100", headers=viewer)
    assert r.json()["total"] == 13 and all(c["status"] == "online" for c in r.json()["items"])
    r = await client.get("/api/v1/channels?has_position=true&size=100", headers=viewer)
    assert r.json()["total"] == 10
    r = await client.get(f"/api/v1/channels?parent_id={CHANNELS[0]}", headers=viewer)
    assert r.json()["total"] == 5
    r = await client.get("/api/v1/channels?civil_code=3402", headers=viewer)
    assert r.json()["total"] == 25
    r = await client.get("/api/v1/channels?civil_code=3502", headers=viewer)
    assert r.json()["total"] == 0
    r = await client.get("/api/v1/channels?sort=-name&size=1", headers=viewer)
    assert r.json()["items"][0]["name"] == "camera 24"
    r = await client.get("/api/v1/channels?q=camera%2001", headers=viewer)
    assert r.json()["total"] == 1
    for bad in ("has_position=perhaps", "device_id=12", "class_level=x", "sort=pull_url", "size=5000"):
        r = await client.get(f"/api/v1/channels?{bad}", headers=viewer)
        assert r.status_code == 422, bad


async def test_channel_patch_position(client: httpx.AsyncClient, operator: H, viewer: H) -> None:
    ch = CHANNELS[15]
    r = await client.get(f"/api/v1/channels/{ch}", headers=viewer)
    assert r.status_code == 200 and r.json()["longitude"] is None
    r = await client.patch(f"/api/v1/channels/{ch}", json={"longitude": 118.1, "latitude": 24.5, "name": "gate"},
                           headers=operator)
    assert r.status_code == 200, r.text
    assert (r.json()["longitude"], r.json()["latitude"], r.json()["name"]) == (118.1, 24.5, "gate")
    r = await client.get(f"/api/v1/channels/{ch}", headers=viewer)
    assert r.json()["latitude"] == 24.5
    for bad in ({"longitude": 200, "latitude": 1}, {"longitude": 1.0}, {"latitude": "north", "longitude": 1},
                {"status": "online"}):
        r = await client.patch(f"/api/v1/channels/{ch}", json=bad, headers=operator)
        assert r.status_code == 422, bad
    assert (await client.patch(f"/api/v1/channels/{ch}", json={"name": "x"}, headers=viewer)).status_code == 403
    assert (await client.patch("/api/v1/channels/34020000001310009999", json={"name": "x"},
                               headers=operator)).status_code == 404
    assert (await client.get("/api/v1/channels/nope", headers=viewer)).status_code == 400


async def test_channel_controls(client: httpx.AsyncClient, operator: H, platform: ApiTestPlatform) -> None:
    ch = CHANNELS[1]
    r = await client.post(f"/api/v1/channels/{ch}/ptz", json={"command": "zoom_in", "speed": 200}, headers=operator)
    assert r.status_code == 200 and r.json()["result"] == "OK"
    for bad in ({"command": "spin", "speed": 1}, {"command": "left", "speed": 256}, {"command": "left", "speed": -1},
                {}):
        assert (await client.post(f"/api/v1/channels/{ch}/ptz", json=bad, headers=operator)).status_code == 422
    r = await client.post(f"/api/v1/channels/{ch}/preset", json={"op": "call", "index": 3}, headers=operator)
    assert r.status_code == 200
    assert (await client.post(f"/api/v1/channels/{ch}/preset", json={"op": "call", "index": 0},
                              headers=operator)).status_code == 422
    r = await client.get(f"/api/v1/channels/{ch}/presets", headers=operator)
    assert r.json()["items"][0]["PresetName"] == "gate"
    assert (await client.post(f"/api/v1/channels/{ch}/record", json={"start": True}, headers=operator)).status_code == 200
    assert (await client.post(f"/api/v1/channels/{ch}/iframe", headers=operator)).status_code == 200
    assert (await client.post(f"/api/v1/channels/{ch}/home_position", headers=operator)).status_code == 200
    r = await client.post(f"/api/v1/channels/{ch}/home_position", json={"enabled": True, "preset": 2,
                                                                        "reset_time": 30}, headers=operator)
    assert r.status_code == 200
    assert (await client.post("/api/v1/channels/34020000001310009999/ptz", json={"command": "stop", "speed": 0},
                              headers=operator)).status_code == 404
    calls = [(c[0], c[1][1:]) for c in platform.gb.calls]
    assert calls == [("ptz", ("zoom_in", 200)), ("preset", ("call", 3)), ("preset_query", ()), ("record", (True,)),
                     ("iframe", ()), ("home_position", (True, 1, 60)), ("home_position", (True, 2, 30))]


async def test_pull_channel(client: httpx.AsyncClient, operator: H) -> None:
    r = await client.post("/api/v1/channels/pull", json={"name": "lobby", "url": "rtsp://u:pw@10.0.0.5/stream1"},
                          headers=operator)
    assert r.status_code == 201, r.text
    ch = r.json()
    assert len(ch["channel_id"]) == 20 and ch["source"] == "pull"
    assert "pw" not in ch["pull_url"] and ch["pull_url"].startswith("rtsp://***@")
    r = await client.get(f"/api/v1/channels/{ch['channel_id']}", headers=operator)
    assert r.status_code == 200 and r.json()["name"] == "lobby"
    r = await client.post("/api/v1/channels/pull", json={"name": "x", "url": "file:///etc/passwd"}, headers=operator)
    assert r.status_code == 422


async def test_alarms_and_overview(client: httpx.AsyncClient, operator: H, viewer: H) -> None:
    r = await client.get("/api/v1/alarms", headers=viewer)
    assert r.status_code == 200 and r.json()["total"] == 1
    alarm = r.json()["items"][0]
    assert (await client.get("/api/v1/alarms?acknowledged=false", headers=viewer)).json()["total"] == 1
    assert (await client.get("/api/v1/alarms?since=yesterday", headers=viewer)).status_code == 422
    assert (await client.get("/api/v1/alarms?since=2000-01-01T00:00:00Z", headers=viewer)).json()["total"] == 1
    assert (await client.post(f"/api/v1/alarms/{alarm['id']}/ack", headers=viewer)).status_code == 403
    r = await client.post(f"/api/v1/alarms/{alarm['id']}/ack", headers=operator)
    assert r.status_code == 200 and r.json()["acknowledged"] is True
    assert (await client.get("/api/v1/alarms?acknowledged=false", headers=viewer)).json()["total"] == 0
    assert (await client.post("/api/v1/alarms/999999/ack", headers=operator)).status_code == 404
    assert (await client.post("/api/v1/alarms/abc/ack", headers=operator)).status_code == 422
    r = await client.get("/api/v1/positions", headers=viewer)
    assert r.status_code == 200 and r.json() == {"items": [], "total": 0}
    r = await client.get("/api/v1/summary", headers=viewer)
    assert r.status_code == 200
    s = r.json()
    assert s["devices_online_live"] == 1 and s["streams_active"] == 0
    r = await client.get("/api/v1/map/clusters?west=117&south=24&east=119&north=25&zoom=5", headers=viewer)
    assert r.status_code == 200
    assert sum(c["count"] for c in r.json()["items"]) == 10
    for bad in ("west=117&south=24&east=119&north=25", "west=117&south=26&east=119&north=25&zoom=3",
                "west=-200&south=24&east=119&north=25&zoom=3", "west=117&south=24&east=119&north=25&zoom=40"):
        r = await client.get(f"/api/v1/map/clusters?{bad}", headers=viewer)
        assert r.status_code == 422, bad
    r = await client.get("/api/v1/tree/civil", headers=viewer)
    assert r.status_code == 200 and r.json()["total"] >= 1
    assert (await client.get("/api/v1/tree/civil?parent=34", headers=viewer)).status_code == 200
    assert (await client.get("/api/v1/tree/civil?parent=x'--", headers=viewer)).status_code == 422
    assert (await client.get("/api/v1/tree/groups", headers=viewer)).status_code == 200


async def test_system_health_metrics(client: httpx.AsyncClient, viewer: H, admin: H) -> None:
    r = await client.get("/api/v1/system", headers=viewer)
    assert r.status_code == 200
    s = r.json()
    assert s["sip_id"] == "34020000002000000001" and s["uptime"] >= 0
    flat = str(s["settings"])
    assert "secret_key" not in s["settings"] and "sip_password" not in s["settings"]
    assert "test-secret-key" not in flat
    r = await client.get("/healthz")
    assert r.status_code == 200
    h = r.json()
    assert h["status"] == "ok" and h["db"]["ok"] is True and h["devices_online"] == 1 and h["sip"]["received"] == 7
    r = await client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert "xueliang_devices_online 1.0" in text
    assert 'xueliang_sip_messages_total{kind="received"} 7.0' in text
    assert "xueliang_streams_active 0.0" in text
    from prometheus_client.parser import text_string_to_metric_families

    samples = [(smp.name, tuple(sorted(smp.labels.items()))) for fam in text_string_to_metric_families(text)
               for smp in fam.samples]
    assert len(samples) == len(set(samples)), "duplicate series make Prometheus reject the scrape"
    assert ("xueliang_channels_total", ()) in samples


async def test_openapi_and_console(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/openapi.json")
    assert r.status_code == 200
    paths = r.json()["paths"]
    for p in ("/api/v1/auth/login", "/api/v1/devices", "/api/v1/channels/{channel_id}/play",
              "/api/v1/devices/{device_id}/catalog/refresh", "/api/v1/channels/{channel_id}/ptz"):
        assert p in paths
    r = await client.get("/api/v1/nothing-here")
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    r = await client.get("/")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
