"""Repository reads on SQLite and PostgreSQL: lists, filters, sorts, paging, trees, map, summary, users."""

from __future__ import annotations

import pytest
from _store_data import NVR, cam

from xueliang.store.db import Database
from xueliang.store.models import utcnow

PLATFORM = "34020000002000000002"
BG = "34020000002150000001"
VO1 = "34020000002160000001"
VO2 = "34020000002160000002"


async def _load(db: Database) -> None:
    """40 cameras on an NVR with varied attributes, plus a lower platform with a business-group tree."""
    w = db.writer
    w.upsert_device({"device_id": NVR, "name": "NVR one", "status": "online"})
    w.upsert_device({"device_id": PLATFORM, "name": "Lower platform", "status": "offline"})
    rows = []
    for i in range(40):
        rows.append(cam(
            i,
            Name=f"{'Gate' if i % 4 == 0 else 'Road'} camera {i:02d}",
            Status="ON" if i % 2 == 0 else "OFF",
            CivilCode=["34020001", "34020002", "34030001", "35010001"][i % 4],
            Longitude="0" if i >= 30 else str(117.0 + (i % 10) * 0.001),
            Latitude="0" if i >= 30 else str(31.0 + (i // 10) * 0.001),
            ClassLevel=str(1 + i % 3),
            Resolution="1920*1080" if i % 5 == 0 else ("352x288" if i % 5 == 1 else "5"),
            District="Shushan" if i < 10 else "Baohe",
        ))
    w.upsert_channels(NVR, rows)
    w.upsert_channels(PLATFORM, [
        {"DeviceID": BG, "Name": "Transport"},
        {"DeviceID": VO1, "Name": "North", "ParentID": BG, "BusinessGroupID": BG},
        {"DeviceID": VO2, "Name": "South", "ParentID": BG, "BusinessGroupID": BG},
        {"DeviceID": "34020000001310009001", "Name": "P1", "ParentID": VO1, "BusinessGroupID": BG, "Status": "ON"},
        {"DeviceID": "34020000001310009002", "Name": "P2", "ParentID": VO1, "BusinessGroupID": BG},
        {"DeviceID": "34020000001310009003", "Name": "P3", "ParentID": VO2, "BusinessGroupID": BG},
        {"DeviceID": "3402", "Name": "Hefei"},
    ])
    await w.flush()


async def test_lists_filters_sorts_paging(db: Database) -> None:
    await _load(db)
    repo = db.repo
    items, total = await repo.list_channels(device_id=NVR, page=1, size=15)
    assert total == 40 and len(items) == 15
    assert [i["channel_id"] for i in items] == sorted(i["channel_id"] for i in items)
    page3, total3 = await repo.list_channels(device_id=NVR, page=3, size=15)
    assert total3 == 40 and len(page3) == 10
    assert page3[-1]["channel_id"] == cam(39)["DeviceID"]

    online, n = await repo.list_channels(device_id=NVR, status="online", size=100)
    assert n == 20 and all(c["status"] == "online" for c in online)
    _, n = await repo.list_channels(civil_code="3402")  # prefix: province/city code lists everything below
    assert n == 20
    _, n = await repo.list_channels(civil_code="34020001")
    assert n == 10
    _, n = await repo.list_channels(class_level=2, device_id=NVR)
    assert n == 13
    _, n = await repo.list_channels(district="Shushan")
    assert n == 10
    _, n = await repo.list_channels(has_position=True)
    assert n == 30
    _, n = await repo.list_channels(has_position=False, device_id=NVR)
    assert n == 10
    _, n = await repo.list_channels(parent_id=VO1)
    assert n == 2
    _, n = await repo.list_channels(business_group_id=BG)
    assert n == 5

    gate, n = await repo.list_channels(q="gate")  # name substring, any case
    assert n == 10 and all("Gate" in c["name"] for c in gate)
    _, n = await repo.list_channels(q="3402000000131000000")  # ID prefix: cameras 0..9
    assert n == 10
    _, n = await repo.list_channels(q="50%_")  # LIKE wildcards are literal
    assert n == 0

    by_name, _ = await repo.list_channels(device_id=NVR, sort="-name", size=3)
    assert [c["name"] for c in by_name] == ["Road camera 39", "Road camera 38", "Road camera 37"]
    by_status, _ = await repo.list_channels(device_id=NVR, sort="status", size=1)
    assert by_status[0]["status"] == "offline"
    with pytest.raises(ValueError):
        await repo.list_channels(sort="password")
    with pytest.raises(ValueError):
        await repo.list_devices(sort="name; drop table devices")

    devices, n = await repo.list_devices()
    assert n == 2 and {d["device_id"] for d in devices} == {NVR, PLATFORM}
    devices, n = await repo.list_devices(status="online")
    assert n == 1 and devices[0]["name"] == "NVR one"
    devices, n = await repo.list_devices(q="lower", sort="-name")
    assert n == 1 and devices[0]["device_id"] == PLATFORM


async def test_resolution_and_hd_summary(db: Database) -> None:
    await _load(db)
    ch = await db.repo.get_channel(str(cam(0)["DeviceID"]))
    assert ch is not None and ch["resolution"] == "1920x1080" and ch["resolution_width"] == 1920
    ch = await db.repo.get_channel(str(cam(2)["DeviceID"]))
    assert ch is not None and ch["resolution"] == "1280x720"  # GB 2016 code 5 = 720P
    s = await db.repo.summary()
    assert s["devices"] == {"total": 2, "online": 1}
    # 40 NVR cameras + 3 platform cameras; the business group, virtual orgs and civil node are not counted
    assert s["channels"] == {"total": 43, "online": 21}
    assert s["class_levels"]["1"] == {"total": 14, "online": 7}
    assert s["class_levels"]["2"]["total"] == 13 and s["class_levels"]["3"]["total"] == 13
    assert s["geo_labelled"] == 30
    assert s["hd"] == 32  # all but i % 5 == 1 (352x288): 1080p or GB code 5 (720p)
    assert s["alarms_today"] == 0


async def test_map_clusters(db: Database) -> None:
    await _load(db)
    repo = db.repo
    coarse = await repo.map_clusters(73, 18, 135, 54, zoom=5)
    assert sum(c["count"] for c in coarse) == 30
    assert len(coarse) == 1 and coarse[0]["online"] == 15
    assert 117.0 <= coarse[0]["lng"] <= 117.01 and 31.0 <= coarse[0]["lat"] <= 31.003
    fine = await repo.map_clusters(116.99, 30.99, 117.02, 31.01, zoom=18)
    assert len(fine) == 30 and all(c["count"] == 1 for c in fine)
    one = next(c for c in fine if c["channel_id"] == cam(11)["DeviceID"])
    assert one["name"] == "Road camera 11" and one["status"] == "offline"
    assert abs(one["lng"] - 117.001) < 1e-9 and abs(one["lat"] - 31.001) < 1e-9
    limited = await repo.map_clusters(116.99, 30.99, 117.02, 31.01, zoom=18, limit=7)
    assert len(limited) == 7
    outside = await repo.map_clusters(0.5, 0.5, 10, 10, zoom=10)
    assert outside == []  # the 0/0 "unlabelled" channels never show up


async def test_group_trees_and_children(db: Database) -> None:
    await _load(db)
    repo = db.repo
    provinces = await repo.group_tree("civil_code")
    assert [(p["code"], p["count"]) for p in provinces] == [("34", 30), ("35", 10)]
    assert provinces[0]["online"] == 20 and provinces[0]["level"] == "province"
    cities = await repo.group_tree("civil_code", "34")
    assert [(c["code"], c["count"], c["name"]) for c in cities] == [("3402", 20, "Hefei"), ("3403", 10, "3403")]
    grass = await repo.group_tree("civil_code", "340200")
    assert [(g["code"], g["level"]) for g in grass] == [("34020001", "grassroots"), ("34020002", "grassroots")]
    assert await repo.group_tree("civil_code", "34020001") == []

    groups = await repo.group_tree("business_group")
    assert [(g["id"], g["name"], g["count"], g["online"]) for g in groups] == [(BG, "Transport", 3, 1)]
    orgs = await repo.group_tree("business_group", BG)
    assert [(o["id"], o["name"], o["count"]) for o in orgs] == [(VO1, "North", 2), (VO2, "South", 1)]
    with pytest.raises(ValueError):
        await repo.group_tree("colour")

    top = await repo.channel_children(NVR)
    assert len(top) == 40 and not any(t["has_children"] for t in top)
    ptop = await repo.channel_children(PLATFORM)
    assert {t["channel_id"] for t in ptop} == {BG, "3402"}
    assert next(t for t in ptop if t["channel_id"] == BG)["has_children"]
    kids = await repo.channel_children(PLATFORM, VO1)
    assert [k["name"] for k in kids] == ["P1", "P2"]


async def test_device_and_channel_edits(db: Database) -> None:
    await _load(db)
    repo = db.repo
    dev = await repo.add_device({"device_id": "34020000001320000009", "name": "IPC", "password": "s3cret"})
    assert dev["status"] == "offline" and "password" not in dev
    with pytest.raises(ValueError):
        await repo.add_device({"device_id": "34020000001320000009"})
    upd = await repo.update_device("34020000001320000009", {"name": "IPC 9", "heartbeat_interval": "30"})
    assert upd is not None and upd["name"] == "IPC 9" and upd["heartbeat_interval"] == 30
    assert await repo.update_device("nope", {"name": "x"}) is None

    cid = str(cam(5)["DeviceID"])
    ch = await repo.update_channel(cid, {"name": "Lobby", "Longitude": "118.5", "note": "moved"})
    assert ch is not None and ch["name"] == "Lobby" and ch["longitude"] == 118.5 and ch["extra"] == {"note": "moved"}
    assert await repo.update_channel("00000000000000000000", {"name": "x"}) is None

    pull = await repo.add_pull_channel({"name": "Lobby RTSP", "pull_url": "rtsp://127.0.0.1:8554/lobby"})
    assert pull["source"] == "pull" and pull["device_id"] == "pull" and len(pull["channel_id"]) == 20
    pull2 = await repo.add_pull_channel({"name": "Second", "pull_url": "rtmp://127.0.0.1/live/x"})
    assert pull2["channel_id"] != pull["channel_id"]
    with pytest.raises(ValueError):
        await repo.add_pull_channel({"name": "no url"})

    assert await repo.delete_device(NVR)
    assert not await repo.delete_device(NVR)
    _, n = await repo.list_channels(device_id=NVR)
    assert n == 0
    assert await repo.get_device(NVR) is None


async def test_users(db: Database) -> None:
    repo = db.repo
    u = await repo.create_user("admin", "$argon2id$hash", "admin")
    assert u["username"] == "admin" and "password_hash" not in u
    with pytest.raises(ValueError):
        await repo.create_user("admin", "x", "viewer")
    await repo.create_user("bob", "h2", "viewer")
    await repo.update_user("bob", {"failed_logins": 3, "disabled": True})
    bob = await repo.get_user("bob")
    assert bob is not None and bob["failed_logins"] == 3 and bob["disabled"] is True
    assert bob["password_hash"] == "h2"
    with pytest.raises(ValueError):
        await repo.update_user("bob", {"is_root": True})
    assert [x["username"] for x in await repo.list_users()] == ["admin", "bob"]
    assert await repo.get_user("carol") is None
    assert await repo.delete_user("bob")
    await repo.ping()


async def test_low_zoom_map_cache(db: Database) -> None:
    await _load(db)
    repo = db.repo
    repo.map_cache_ttl = 60.0
    first = await repo.map_clusters(73, 18, 135, 54, zoom=4)
    assert sum(c["count"] for c in first) == 30
    online = sum(c["online"] for c in first)
    some = str(cam(0)["DeviceID"])
    db.writer.status_change("channel", some, "offline" if online else "online", utcnow(), device_id=NVR)
    await db.writer.flush()
    cached = await repo.map_clusters(73, 18, 135, 54, zoom=4)
    assert cached == first  # a status change: served from the cache, refreshed behind
    db.writer.upsert_channels(NVR, [cam(100, Longitude="121.47", Latitude="31.23")])
    await db.writer.flush()
    fresh = await repo.map_clusters(73, 18, 135, 54, zoom=4)  # a catalog change drops the cache
    assert sum(c["count"] for c in fresh) == 31
    live = await repo.map_clusters(73, 18, 135, 54, zoom=9)  # higher zoom: always live
    assert sum(c["count"] for c in live) == 31
    # a box that excludes the cluster centroids gets nothing from the cached world view either
    repo.map_cache_ttl = 60.0
    assert await repo.map_clusters(0.5, 0.5, 10, 10, zoom=3) == []
