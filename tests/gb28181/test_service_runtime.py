"""Keepalive, offline detection, catalog sync (with vendor faults), controls, notifies, restart, INVITE."""

from __future__ import annotations

import asyncio

import pytest

from xueliang.gb28181.errors import GbError, GbTimeout
from xueliang.gb28181.sdp import Sdp
from xueliang.sim.device import SimDevice

NVR = "34020000001180000001"
IPC = "34020000001320000009"


def keepalive_body(device_id: str, status: str = "ON") -> bytes:
    return (b'<?xml version="1.0" encoding="GB2312"?>\r\n<Notify>\r\n<CmdType>Keepalive</CmdType>\r\n'
            b"<SN>7</SN>\r\n<DeviceID>" + device_id.encode() + b"</DeviceID>\r\n<Status>"
            + status.encode() + b"</Status>\r\n</Notify>\r\n")


async def start_sim(p, device_id=NVR, **kw):
    kw.setdefault("kind", "nvr")
    kw.setdefault("channels", 4)
    sim = SimDevice(device_id, server=p.address, **kw)
    await sim.start(wait_registered=5)
    return sim


async def channel_rows(p, device_id):
    await p.flush()
    items, _ = await p.db.repo.list_channels(page=1, size=1000, device_id=device_id)
    return {c["channel_id"]: c for c in items}


async def test_keepalive_gb2312_status_on_and_fixture(platform, raw_ua, fixtures_dir):
    p = await platform()
    ua = await raw_ua("34010000001310000001", p.address)
    _, final = await ua.register()
    assert final.status == 200
    before = p.gb.stats["keepalives"]
    resp = await ua.send(ua.request("MESSAGE", body=keepalive_body("34010000001310000001", "ON")))
    assert resp.status == 200 and resp.to_tag
    assert resp.call_id and resp.cseq[1] == "MESSAGE"
    # the field fixture's body (Status OK, no encoding declared)
    raw = (fixtures_dir / "sip" / "05_keepalive_status_ok.txt").read_bytes()
    body = raw.split(b"\r\n\r\n", 1)[1]
    resp = await ua.send(ua.request("MESSAGE", body=body))
    assert resp.status == 200
    assert p.gb.stats["keepalives"] == before + 2


async def test_offline_after_missed_keepalives_then_back_with_catalog(platform, wait):
    p = await platform(keepalive_interval=0.2, keepalive_timeout_count=3)
    sub = p.events.subscribe(types={"device.status"})
    sim = await start_sim(p, keepalive=0.1)
    try:
        await wait(lambda: any(q.cmd_type == "Catalog" for q in sim.received_queries))
        await wait(lambda: (p.gb.catalog_progress(NVR) or {}).get("state") == "done")
        assert any(q.cmd_type == "DeviceInfo" for q in sim.received_queries)
        sim.faults.add("silent")
        await wait(lambda: not p.gb.table.get(NVR).online, timeout=3.0)
        rows = await channel_rows(p, NVR)
        assert rows and all(r["status"] == "offline" for r in rows.values())
        assert (await p.db.repo.get_device(NVR))["status"] == "offline"
        catalogs = sum(1 for q in sim.received_queries if q.cmd_type == "Catalog")
        sim.faults.discard("silent")
        await wait(lambda: p.gb.table.get(NVR).online, timeout=3.0)
        await wait(lambda: sum(1 for q in sim.received_queries if q.cmd_type == "Catalog") > catalogs)
        await wait(lambda: (p.gb.catalog_progress(NVR) or {}).get("state") == "done")
        events = []
        while not sub._queue.empty():
            events.append(sub._queue.get_nowait())
        states = [(e.data["status"], e.data["reason"]) for e in events]
        assert states[:3] == [("online", "register"), ("offline", "keepalive timeout"), ("online", "keepalive")]
    finally:
        await sim.stop()


async def test_catalog_pages_mapped_and_stored(platform, wait):
    p = await platform()
    sim = await start_sim(p, channels=10, catalog_page=3, gb_version="2022")
    try:
        await wait(lambda: (p.gb.catalog_progress(NVR) or {}).get("state") == "done")
        prog = p.gb.catalog_progress(NVR)
        assert prog["received"] == 10 and prog["total"] == 10
        rows = await channel_rows(p, NVR)
        assert set(rows) == sim.channel_ids
        one = rows[sorted(rows)[0]]
        assert one["status"] == "online" and one["civil_code"] == "340200" and one["ptz_type"] == 1
        assert one["longitude"] and one["latitude"] and one["parent_id"] == NVR
        assert one["name"].startswith(("东门", "西门", "南广场", "北停车场", "大厅", "走廊", "仓库", "机房"))
        assert (one.get("extra") or {}).get("GrassrootsCode")   # 2022 field kept
        assert p.gb.channel_map[one["channel_id"]] == NVR
    finally:
        await sim.stop()


@pytest.mark.parametrize("fault,state", [("sumnum_wrong", "timeout"), ("catalog_half", "timeout"),
                                         ("duplicates", "done"), ("sumnum_zero", "done")])
async def test_catalog_faults_finish_and_never_wipe(platform, wait, fault, state):
    p = await platform(catalog_timeout=0.5)
    sim = await start_sim(p, channels=8, catalog_page=2)
    try:
        await wait(lambda: (p.gb.catalog_progress(NVR) or {}).get("state") == "done")
        full = await channel_rows(p, NVR)
        assert len(full) == 8
        sim.faults.add(fault)
        await p.gb.refresh_catalog(NVR)
        with pytest.raises(RuntimeError):
            await p.gb.refresh_catalog(NVR)   # one sync at a time
        await wait(lambda: p.gb.catalog_progress(NVR)["state"] != "running", timeout=4.0)
        prog = p.gb.catalog_progress(NVR)
        assert prog["state"] == state, prog
        if fault == "catalog_half":
            assert 0 < prog["received"] < 8
        rows = await channel_rows(p, NVR)
        assert set(rows) == set(full)          # nothing deleted by a partial or odd sync
    finally:
        await sim.stop()


async def test_ptz_and_controls_reach_device(platform, wait):
    p = await platform()
    sim = await start_sim(p)
    try:
        await wait(lambda: (p.gb.catalog_progress(NVR) or {}).get("state") == "done")
        cam = sorted(sim.channel_ids)[0]
        res = await p.gb.ptz(cam, "left", 200)
        assert res["result"] == "OK"
        await wait(lambda: sim.received_controls)
        ctl = sim.received_controls[-1]
        assert ctl["device_id"] == cam and ctl["ptz"]["pan"] == -1
        await p.gb.preset(cam, "set", 3)
        await wait(lambda: sim.presets.get(cam, {}).get(3))
        presets = await p.gb.preset_query(cam)
        assert [int(x["PresetID"]) for x in presets] == [3]
        assert (await p.gb.guard(NVR, True))["result"] == "OK"
        assert sim.guard_armed
        assert (await p.gb.record(cam, True))["result"] == "OK"
        assert cam in sim.recording
        info = await p.gb.device_info(NVR)
        assert info["Manufacturer"] == "xueliang-sim"
        status = await p.gb.device_status(NVR)
        assert status["result"] == "OK"
        cfg = await p.gb.config_download(NVR)
        assert cfg["BasicParam"]["DeviceID"] == NVR
        res = await p.gb.device_config(NVR, heartbeat_interval=30, heartbeat_count=4)
        assert res["result"] == "OK" and p.gb.table.get(NVR).heartbeat_interval == 30.0
        rec = await p.gb.record_info(cam, "2026-01-01T00:00:00", "2026-01-01T01:00:00")
        assert rec["sum_num"] == 1 and len(rec["items"]) == 1
        assert (await p.gb.iframe(cam))["result"] == "OK"
        await p.flush()
        dev = await p.db.repo.get_device(NVR)
        assert dev["manufacturer"] == "xueliang-sim" and dev["heartbeat_interval"] == 30
        with pytest.raises(GbError, match="2016"):
            await p.gb.ptz_precise(cam, 10.0, 5.0, 1.0)
        with pytest.raises(LookupError):
            await p.gb.ptz("34020000001310099999", "left", 10)
    finally:
        await sim.stop()


async def test_control_timeout_is_clean(platform):
    p = await platform(command_timeout=0.5)
    sim = await start_sim(p, kind="ipc", device_id=IPC, channels=1)
    try:
        sim.faults.add("silent")
        with pytest.raises(GbTimeout, match=IPC):
            await p.gb.device_info(IPC)
        assert not p.gb.commands.pending
        assert p.gb.stats["timeouts"] >= 1
    finally:
        sim.faults.discard("silent")
        await sim.stop()


async def test_alarm_and_position_persisted(platform, wait):
    p = await platform()
    sub = p.events.subscribe(types={"alarm", "position"})
    sim = await start_sim(p)
    try:
        cam = sorted(sim.channel_ids)[0]
        assert await sim.send_alarm(cam, priority=2, description="越界") == 200
        assert await sim.send_position(cam, longitude=117.5, latitude=31.9, speed=12.5) == 200
        await p.flush()
        await wait(lambda: p.gb.stats["alarms"] == 1 and p.gb.stats["positions"] == 1)
        await p.flush()
        alarms, n = await p.db.repo.list_alarms(page=1, size=10, device_id=NVR)
        assert n == 1 and alarms[0]["channel_id"] == cam and alarms[0]["priority"] == 2
        assert alarms[0]["description"] == "越界"
        pos, n = await p.db.repo.list_positions(page=1, size=10, device_id=NVR)
        assert n == 1 and pos[0]["longitude"] == 117.5 and pos[0]["speed"] == 12.5
        got = [await asyncio.wait_for(sub.get(), 2.0) for _ in range(2)]
        types = {e.type for e in got if e is not None}
        assert types == {"alarm", "position"}
    finally:
        await sim.stop()


async def test_restart_keeps_device_online_without_reregister(platform, wait):
    p = await platform()
    sim = await start_sim(p, keepalive=0.2)
    await wait(lambda: (p.gb.catalog_progress(NVR) or {}).get("state") == "done")
    port = p.port
    registers = sim.register_count
    await p.stop()
    q = await platform()          # same database file
    await q.stop()
    q.port = port
    await q.start()
    try:
        dev = q.gb.table.get(NVR)
        assert dev is not None and dev.online
        cam = sorted(sim.channel_ids)[0]
        assert q.gb.channel_map.get(cam) == NVR or await wait(lambda: q.gb.channel_map.get(cam) == NVR) is None
        before = q.gb.stats["keepalives"]
        await wait(lambda: q.gb.stats["keepalives"] > before, timeout=3.0)
        assert sim.register_count == registers
        assert q.gb.stats["unknown_device"] == 0
        res = await q.gb.ptz(cam, "stop", 0)
        assert res["result"] == "OK"
    finally:
        await sim.stop()


async def test_invite_ack_bye_and_device_bye(platform, wait):
    p = await platform()
    ended = []
    p.gb.on_session_ended = lambda s, reason: ended.append((s, reason))
    sim = await start_sim(p)
    try:
        await wait(lambda: (p.gb.catalog_progress(NVR) or {}).get("state") == "done")
        cam = sorted(sim.channel_ids)[0]
        offer = Sdp(session="Play", origin_user="34020000002000000001", address="127.0.0.1", port=30000,
                    ssrc="0200000001")
        sess = await p.gb.invite(NVR, cam, offer, transport="udp")
        assert sess.answer.port > 0 and sess.remote_tag
        await wait(lambda: sim.calls)
        await p.gb.bye(sess)
        await wait(lambda: not sim.calls)
        sess2 = await p.gb.invite(NVR, cam, offer, transport="udp")
        await wait(lambda: sim.calls)
        assert await sim.bye(next(iter(sim.calls))) == 200
        await wait(lambda: ended)
        assert ended[0][0] is sess2 and "BYE" in ended[0][1]
    finally:
        await sim.stop()


async def test_catalog_subscription_notify(platform, wait):
    p = await platform()
    sim = await start_sim(p, channels=3)
    try:
        await wait(lambda: (p.gb.catalog_progress(NVR) or {}).get("state") == "done")
        sub = await p.gb.subscribe(NVR, "Catalog", expires=60)
        assert sub.remote_tag
        await wait(lambda: p.gb.stats["notifies"] >= 1)
        assert await p.gb.unsubscribe(NVR, "Catalog")
    finally:
        await sim.stop()


async def test_catalog_notify_del_marks_deleted(platform, wait):
    from xueliang.gb28181 import manscdp as mc

    p = await platform()
    sim = await start_sim(p, channels=2)
    try:
        await wait(lambda: (p.gb.catalog_progress(NVR) or {}).get("state") == "done")
        cam = sorted(sim.channel_ids)[0]
        body = mc.catalog_notify(99, NVR, [{"DeviceID": cam}], sum_num=1, event="DEL")
        assert (await sim.send_message(body)).status == 200
        await wait(lambda: cam not in p.gb.channel_map)
        rows = await channel_rows(p, NVR)
        assert rows[cam]["status"] == "offline" and rows[cam]["extra"]["deleted"] is True
    finally:
        await sim.stop()


async def test_keepalive_path_does_not_write(platform, raw_ua):
    p = await platform()
    p.gb.auto_query = False
    ua = await raw_ua(IPC, p.address)
    await ua.register()
    await p.flush()
    ops = p.db.writer.stats["ops"]
    for _ in range(20):
        assert (await ua.send(ua.request("MESSAGE", body=keepalive_body(IPC)))).status == 200
    assert p.db.writer.stats["ops"] == ops
    await asyncio.sleep(0)


async def test_fast_keepalive_answer_is_a_complete_response(platform, raw_ua):
    """The pre-built 200 must be a full message (blank line included) with the request's headers."""
    import socket

    p = await platform()
    p.gb.auto_query = False
    ua = await raw_ua(IPC, p.address)
    await ua.register()
    req = ua.request("MESSAGE", body=keepalive_body(IPC))
    req.headers.insert_first("Via", "SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bK-fast-1;rport")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.setblocking(False)
        s.sendto(req.to_bytes(), p.address)
        data, _ = await asyncio.wait_for(asyncio.get_running_loop().sock_recvfrom(s, 65535), 2.0)
    assert data.startswith(b"SIP/2.0 200 OK\r\n") and data.endswith(b"Content-Length: 0\r\n\r\n")
    assert b"rport=" in data and b"received=127.0.0.1" in data
    assert f";tag={p.gb.tag}".encode() in data and b"CSeq: " in data and b"Call-ID: " in data


async def test_invite_refused_488_and_message_refused(platform, raw_ua):
    p = await platform()
    p.gb.auto_query = False
    ua = await raw_ua(IPC, p.address)
    await ua.register()
    ua.answer["INVITE"] = 488
    offer = Sdp(session="Play", origin_user="34020000002000000001", address="127.0.0.1", port=30002,
                ssrc="0200000002")
    with pytest.raises(GbError) as err:
        await p.gb.invite(IPC, IPC, offer, transport="udp")
    assert err.value.status == 488
    subject = [i.request.headers.get("Subject") for i in ua.received if i.request.method == "INVITE"]
    assert subject == [f"{IPC}:0200000002,34020000002000000001:0"]
    ua.answer["MESSAGE"] = 486
    with pytest.raises(GbError) as err:
        await p.gb.reboot(IPC)
    assert err.value.status == 486 and not isinstance(err.value, TimeoutError)


async def test_device_over_tcp_controls_use_its_connection(platform, wait):
    p = await platform()
    sim = await start_sim(p, transport="tcp", channels=2)
    try:
        assert p.gb.table.get(NVR).transport == "tcp"
        await wait(lambda: (p.gb.catalog_progress(NVR) or {}).get("state") == "done")
        cam = sorted(sim.channel_ids)[0]
        assert (await p.gb.ptz(cam, "zoom_in", 50))["result"] == "OK"
        await wait(lambda: sim.received_controls)
    finally:
        await sim.stop()


async def test_broadcast_notify(platform, raw_ua):
    p = await platform()
    p.gb.auto_query = False
    ua = await raw_ua(IPC, p.address)
    await ua.register()
    res = await p.gb.broadcast(IPC, IPC)
    assert res["answer"] == "200"
    body = [i.request.body for i in ua.received if i.request.method == "MESSAGE"][-1]
    assert b"<CmdType>Broadcast</CmdType>" in body and b"<SourceID>34020000002000000001</SourceID>" in body
    assert f"<TargetID>{IPC}</TargetID>".encode() in body


async def test_start_writes_offline_for_lapsed_registrations(platform):
    from datetime import UTC, datetime, timedelta

    p = await platform()
    long_ago = datetime.now(UTC) - timedelta(hours=3)
    await p.db.repo.add_device({"device_id": IPC, "status": "online", "host": "127.0.0.1", "port": 5999,
                                "expires": 3600, "registered_at": long_ago})
    fresh = "34020000001320000010"
    await p.db.repo.add_device({"device_id": fresh, "status": "online", "host": "127.0.0.1", "port": 5998,
                                "expires": 3600, "registered_at": datetime.now(UTC) - timedelta(minutes=5)})
    port = p.port
    await p.stop()
    p.port = port
    await p.start()
    assert p.gb.table.get(IPC) is None
    assert p.gb.table.get(fresh) is not None and p.gb.table.get(fresh).online
    await p.flush()
    assert (await p.db.repo.get_device(IPC))["status"] == "offline"
    assert (await p.db.repo.get_device(fresh))["status"] == "online"


async def test_mobile_position_subscription_notifies_are_stored(platform, wait):
    p = await platform()
    sim = await start_sim(p, channels=1)
    try:
        sub = await p.gb.subscribe(NVR, "MobilePosition", expires=60, Interval=1)
        assert sub.active and sub.remote_tag
        await wait(lambda: p.gb.stats["positions"] >= 1, timeout=5.0)
        await p.flush()
        _, n = await p.db.repo.list_positions(page=1, size=5, device_id=NVR)
        assert n >= 1
        await p.gb.stop()      # unsubscribes (Expires: 0)
        await wait(lambda: not sim.subscriptions or all(
            s.task is None or s.task.done() for s in sim.subscriptions.values()), timeout=3.0)
    finally:
        await sim.stop()
