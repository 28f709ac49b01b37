"""The simulator against a tiny registrar written here, over real SIP sockets on 127.0.0.1.

The registrar challenges and accepts REGISTER (digest), answers MESSAGE/NOTIFY with 200 and
collects the decoded MANSCDP bodies, and can send queries, controls, SUBSCRIBE and INVITE to the
devices: enough to prove what the simulator does on the wire.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from sim_registrar import PLATFORM_ID, Registrar

from xueliang.gb28181 import manscdp as mc
from xueliang.gb28181.manscdp import Manscdp, catalog_items
from xueliang.gb28181.ptz import command_ptz, preset_cmd
from xueliang.gb28181.sdp import parse_sdp, play_offer
from xueliang.sim.device import SimDevice
from xueliang.sim.runner import SimNetwork
from xueliang.sip.dialog import dialog_from_2xx
from xueliang.sip.message import Request, Response


@pytest.fixture
async def registrar() -> AsyncIterator[Registrar]:
    r = Registrar()
    await r.start()
    yield r
    await r.endpoint.close()


async def _until(pred: Callable[[], bool], timeout: float = 3.0) -> None:
    """Poll a device-side condition (bounded): the registrar's view can be ahead of the device's."""
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "device-side condition not met in time"
        await asyncio.sleep(0.02)


def _dev(reg: Registrar, device_id: str = "34020000001180000001", **kw: Any) -> SimDevice:
    kw.setdefault("keepalive", 0.2)
    return SimDevice(device_id, server=reg.endpoint.local_address, **kw)


async def test_register_keepalive_unregister_md5(registrar: Registrar) -> None:
    dev = _dev(registrar, gb_version="2016")
    await dev.start(wait_registered=5)
    try:
        reg = registrar.registrations[dev.device_id]
        assert reg.gb_ver == "2.0" and reg.expires == 3600
        assert [s for d, s, _ in registrar.register_log if d == dev.device_id] == [401, 200]
        kas = await registrar.wait_for(lambda: len(registrar.bodies("Keepalive", dev.device_id)) >= 3, 5)
        assert kas
        ka = registrar.bodies("Keepalive", dev.device_id)[0]
        assert ka.root == "Notify" and ka.fields["Status"] == "OK" and ka.encoding == "gb18030"
    finally:
        await dev.stop()
    assert (dev.device_id, 200, 0) in registrar.register_log  # unregistered with Expires: 0
    assert dev.device_id not in registrar.registrations


async def test_register_sha256_2022_over_tcp() -> None:
    r = Registrar(algorithm="SHA-256")
    await r.start()
    dev = _dev(r, "34020000001320000007", kind="ipc", gb_version="2022", transport="tcp")
    try:
        await dev.start(wait_registered=5)
        reg = r.registrations[dev.device_id]
        assert reg.gb_ver == "3.0" and reg.transport == "tcp"
        _, resp = await r.send(
            dev.device_id, dev.device_id, "MESSAGE", mc.catalog_query(r.next_sn(), dev.device_id)
        )
        assert resp.status == 200
        pages = await r.wait_for(lambda: r.bodies("Catalog", dev.device_id, "Response"), 5)
        total, items = catalog_items(pages[0])
        assert total == 1 and items[0]["DeviceID"] == dev.device_id  # an IPC is its own channel
        assert items[0]["GrassrootsCode"] and items[0]["RecordSaveDays"] == "30"  # 2022 fields
    finally:
        await dev.stop()
        await r.endpoint.close()


async def test_wrong_password_is_refused_and_retried(registrar: Registrar) -> None:
    dev = _dev(registrar, faults={"wrong_password"})
    await dev.start()
    try:
        await registrar.wait_for(lambda: any(s == 403 for d, s, _ in registrar.register_log), 5)
        await _until(lambda: dev.last_register_status == 403)  # the 403 is on its way back
        assert not dev.registered.is_set()
        dev.faults.discard("wrong_password")  # fixed at run time: the back-off retry succeeds
        await asyncio.wait_for(dev.registered.wait(), 5)
    finally:
        await dev.stop()


async def _catalog(reg: Registrar, dev: SimDevice, pages: int, timeout: float = 5.0) -> list[Manscdp]:
    sn = reg.next_sn()
    _, resp = await reg.send(dev.device_id, dev.device_id, "MESSAGE", mc.catalog_query(sn, dev.device_id))
    assert resp.status == 200
    return await reg.wait_for(
        lambda: (lambda got: got if len(got) >= pages else None)(
            [m for m in reg.bodies("Catalog", dev.device_id, "Response") if m.sn == sn]
        ),
        timeout,
    )


async def test_catalog_pages_gb2312_chinese_names(registrar: Registrar) -> None:
    dev = _dev(registrar, channels=10, catalog_page=4)
    await dev.start(wait_registered=5)
    try:
        got = await _catalog(registrar, dev, 3)
        await asyncio.sleep(0.2)
        assert len([m for m in registrar.bodies("Catalog", dev.device_id) if m.sn == got[0].sn]) == 3
        ids: list[str] = []
        for m in got:
            total, items = catalog_items(m)
            assert total == 10 and m.encoding == "gb18030"
            ids += [i["DeviceID"] for i in items]
        assert len(ids) == 10 and len(set(ids)) == 10
        assert all(i.startswith("3402000000131") for i in ids)
        _, first = catalog_items(got[0])
        assert first[0]["Name"] == "东门入口 1" and first[0]["ParentID"] == dev.device_id
        assert float(first[0]["Longitude"]) > 100 and first[0]["CivilCode"] == "340200"
        dev.faults.add("utf8")
        again = await _catalog(registrar, dev, 3)
        assert {m.encoding for m in again} == {"utf-8"}
    finally:
        await dev.stop()


@pytest.mark.parametrize(
    ("fault", "pages", "check"),
    [
        ("sumnum_wrong", 2, lambda total, n, uniq: total == 8 + 3 and n == 8),
        ("sumnum_zero", 2, lambda total, n, uniq: total == 0 and n == 8),
        ("catalog_half", 1, lambda total, n, uniq: total == 8 and n == 4),
        ("duplicates", 3, lambda total, n, uniq: total == 8 and n == 12 and uniq == 8),
    ],
)
async def test_catalog_faults(
    registrar: Registrar, fault: str, pages: int, check: Callable[..., bool]
) -> None:
    dev = _dev(registrar, channels=8, catalog_page=4, faults={fault})
    await dev.start(wait_registered=5)
    try:
        got = await _catalog(registrar, dev, pages)
        await asyncio.sleep(0.3)  # nothing more arrives
        got = [m for m in registrar.bodies("Catalog", dev.device_id) if m.sn == got[0].sn]
        assert len(got) == pages
        ids = [i["DeviceID"] for m in got for i in catalog_items(m)[1]]
        total = catalog_items(got[0])[0]
        assert check(total, len(ids), len(set(ids))), (fault, total, len(ids))
    finally:
        await dev.stop()


async def test_ptz_presets_and_controls_reach_device(registrar: Registrar) -> None:
    dev = _dev(registrar, channels=2)
    await dev.start(wait_registered=5)
    cam = dev.channels[0].channel_id
    try:
        sn = registrar.next_sn()
        await registrar.send(dev.device_id, cam, "MESSAGE", mc.ptz_control(sn, cam, command_ptz("left", 100)))
        resp = await registrar.wait_for(
            lambda: [m for m in registrar.bodies("DeviceControl", cam, "Response") if m.sn == sn], 5
        )
        assert resp[0].fields["Result"] == "OK"
        rec = dev.received_controls[-1]
        assert rec["device_id"] == cam and rec["ptz"]["command"] == "left" and rec["ptz"]["pan_speed"] == 100

        for body in (
            mc.ptz_control(registrar.next_sn(), cam, preset_cmd("set", 5)),
            mc.guard_control(registrar.next_sn(), dev.device_id, True),
            mc.record_control(registrar.next_sn(), cam, True),
            mc.iframe_control(registrar.next_sn(), cam),
            mc.home_position(registrar.next_sn(), cam, enabled=True, preset=5),
            mc.device_config(registrar.next_sn(), dev.device_id, name="新名字", heartbeat_interval=1),
        ):
            await registrar.send(dev.device_id, cam, "MESSAGE", body)
        await registrar.wait_for(lambda: len(dev.received_controls) >= 7, 5)
        assert (
            dev.guard_armed and cam in dev.recording and dev.name == "新名字" and dev.keepalive_interval == 1
        )
        assert dev.presets[cam] == {5: "预置位 5"}

        sn = registrar.next_sn()
        await registrar.send(dev.device_id, cam, "MESSAGE", mc.preset_query(sn, cam))
        pq = await registrar.wait_for(
            lambda: [m for m in registrar.bodies("PresetQuery", cam) if m.sn == sn], 5
        )
        assert pq[0].fields["PresetList"] == [{"PresetID": "5", "PresetName": "预置位 5"}]

        bad = mc.ptz_control(registrar.next_sn(), cam, "A50F0100000000B6")  # bad checksum
        await registrar.send(dev.device_id, cam, "MESSAGE", bad)
        await registrar.wait_for(lambda: "error" in dev.received_controls[-1], 5)
    finally:
        await dev.stop()


async def test_queries_device_info_status_config(registrar: Registrar) -> None:
    dev = _dev(registrar, channels=3)
    await dev.start(wait_registered=5)
    try:
        for build, cmd in (
            (mc.device_info_query, "DeviceInfo"),
            (mc.device_status_query, "DeviceStatus"),
            (mc.config_download_query, "ConfigDownload"),
        ):
            sn = registrar.next_sn()
            await registrar.send(dev.device_id, dev.device_id, "MESSAGE", build(sn, dev.device_id))
            got = await registrar.wait_for(
                lambda c=cmd, s=sn: [m for m in registrar.bodies(c) if m.sn == s], 5
            )
            assert got[0].root == "Response" and got[0].fields["Result"] == "OK"
        info = registrar.bodies("DeviceInfo")[0]
        assert info.fields["Channel"] == "3" and info.fields["Manufacturer"] == "xueliang-sim"
        cfg = registrar.bodies("ConfigDownload")[0]
        assert cfg.fields["BasicParam"]["SIPServerID"] == PLATFORM_ID
    finally:
        await dev.stop()


async def test_teleboot_reregisters_with_new_call_id(registrar: Registrar) -> None:
    dev = _dev(registrar, reboot_delay=0.2)
    await dev.start(wait_registered=5)
    try:
        first = registrar.registrations[dev.device_id].call_id
        await registrar.send(
            dev.device_id, dev.device_id, "MESSAGE", mc.teleboot(registrar.next_sn(), dev.device_id)
        )
        await registrar.wait_for(
            lambda: (
                dev.device_id in registrar.registrations
                and registrar.registrations[dev.device_id].call_id != first
            ),
            5,
        )
        await _until(lambda: dev.register_count == 2)
    finally:
        await dev.stop()


async def test_silent_device_stops_answering_and_keepalives(registrar: Registrar) -> None:
    dev = _dev(registrar)
    await dev.start(wait_registered=5)
    try:
        await registrar.wait_for(lambda: registrar.bodies("Keepalive", dev.device_id), 5)
        dev.faults.add("silent")
        await asyncio.sleep(0.3)
        n = len(registrar.bodies("Keepalive", dev.device_id))
        await asyncio.sleep(0.6)
        assert len(registrar.bodies("Keepalive", dev.device_id)) == n
        from xueliang.sip.errors import SipTimeout

        with pytest.raises(SipTimeout):
            await registrar.send(
                dev.device_id, dev.device_id, "MESSAGE", mc.device_info_query(1, dev.device_id), timeout=1.0
            )
        dev.faults.discard("silent")
        await registrar.wait_for(lambda: len(registrar.bodies("Keepalive", dev.device_id)) > n, 5)
    finally:
        await dev.stop()


async def test_subscribe_catalog_and_alarm_position_notifies(registrar: Registrar) -> None:
    dev = _dev(registrar, channels=5, catalog_page=2)
    await dev.start(wait_registered=5)
    try:
        sn = registrar.next_sn()
        _, resp = await registrar.send(
            dev.device_id,
            dev.device_id,
            "SUBSCRIBE",
            mc.catalog_query(sn, dev.device_id),
            headers=[("Event", "Catalog"), ("Expires", "60")],
        )
        assert resp.status == 200 and resp.headers.get("Expires") == "60"
        notes = await registrar.wait_for(
            lambda: (lambda g: g if len(g) >= 3 else None)(
                [m for meth, m in registrar.messages if meth == "NOTIFY" and m.cmd_type == "Catalog"]
            ),
            5,
        )
        assert sum(len(catalog_items(m)[1]) for m in notes) == 5
        assert catalog_items(notes[0])[1][0]["Event"] == "ADD"

        _, resp = await registrar.send(
            dev.device_id,
            dev.device_id,
            "SUBSCRIBE",
            mc.alarm_query(registrar.next_sn(), dev.device_id),
            headers=[("Event", "Alarm"), ("Expires", "60")],
        )
        assert resp.status == 200
        cam = dev.channels[1]
        assert await dev.send_alarm(cam.channel_id, description="越界", alarm_type=2) == 200
        alarms = await registrar.wait_for(lambda: len(registrar.bodies("Alarm", cam.channel_id)) >= 2, 5)
        assert alarms
        a = registrar.bodies("Alarm", cam.channel_id)[0]
        assert a.fields["AlarmDescription"] == "越界" and float(a.fields["Latitude"]) == pytest.approx(
            cam.latitude
        )
        assert {meth for meth, m in registrar.messages if m.cmd_type == "Alarm"} == {"MESSAGE", "NOTIFY"}

        assert await dev.send_position(cam.channel_id, longitude=116.5, latitude=39.9, speed=12.5) == 200
        pos = registrar.bodies("MobilePosition", cam.channel_id)[-1]
        assert pos.fields["Longitude"] == "116.5" and pos.fields["Speed"] == "12.5"

        _, resp = await registrar.send(
            dev.device_id,
            dev.device_id,
            "SUBSCRIBE",
            mc.mobile_position_query(registrar.next_sn(), dev.device_id, 1),
            headers=[("Event", "MobilePosition"), ("Expires", "60")],
        )
        await registrar.wait_for(
            lambda: [
                m for meth, m in registrar.messages if meth == "NOTIFY" and m.cmd_type == "MobilePosition"
            ],
            5,
        )
    finally:
        await dev.stop()


async def _invite(
    reg: Registrar, dev: SimDevice, channel: str, offer_transport: str = "udp", ssrc: str = "0200000001"
) -> tuple[Request, Response]:
    offer = play_offer(
        origin_user=PLATFORM_ID, address="127.0.0.1", port=39999, ssrc=ssrc, transport=offer_transport
    )
    return await reg.send(
        dev.device_id,
        channel,
        "INVITE",
        offer.to_bytes(),
        content_type="application/sdp",
        headers=[("Subject", f"{channel}:{ssrc},{PLATFORM_ID}:0")],
    )


async def test_invite_signalling_without_media(registrar: Registrar) -> None:
    dev = _dev(registrar, channels=2)
    await dev.start(wait_registered=5)
    cam = dev.channels[0].channel_id
    try:
        req, resp = await _invite(registrar, dev, cam)
        assert resp.status == 200 and resp.content_type == "application/sdp"
        ans = parse_sdp(resp.body)
        assert (
            ans.ssrc == "0200000001"
            and ans.direction == "sendonly"
            and ans.origin_user == cam
            and ans.port > 0
        )
        dialog = dialog_from_2xx(req, resp)
        reg = registrar.registrations[dev.device_id]
        registrar.endpoint.send_ack(dialog.make_ack(), reg.source)
        bye = dialog.make_request("BYE")
        resp = await registrar.endpoint.request(bye, reg.source, timeout=5)
        assert resp.status == 200 and not dev.calls

        dev.faults.add("wrong_ssrc")
        _, resp = await _invite(registrar, dev, cam, "tcp-passive", ssrc="0200000002")
        ans = parse_sdp(resp.body)
        assert resp.status == 200 and ans.ssrc != "0200000002"
        assert ans.transport == "tcp" and ans.setup == "active"  # platform listens -> device connects
    finally:
        await dev.stop()


async def test_shared_host_network_unique_channel_ids(registrar: Registrar) -> None:
    host, port = registrar.endpoint.local_address
    net = SimNetwork(f"{host}:{port}", devices=5, channels=3, keepalive=0.3, shared=True)
    await net.start(wait_registered=5)
    try:
        assert len(registrar.registrations) == 5
        assert {r.source for r in registrar.registrations.values()} == {net.host.endpoint.local_address}
        ids = [c.channel_id for d in net.devices for c in d.channels]
        assert len(ids) == 15 and len(set(ids)) == 15
        d2 = net.devices[2]
        assert d2.device_id == "34020000001180000003" and d2.channels[0].channel_id == "34020000001310000007"
        got = await _catalog(registrar, d2, 1)
        assert [i["DeviceID"] for i in catalog_items(got[0])[1]] == [c.channel_id for c in d2.channels]
        assert net.stats()["registered"] == 5
    finally:
        await net.stop()
    assert not registrar.registrations


async def test_lower_platform_catalog_tree(registrar: Registrar) -> None:
    dev = _dev(registrar, "34020000002000000009", kind="platform", channels=6, catalog_page=10)
    await dev.start(wait_registered=5)
    try:
        got = await _catalog(registrar, dev, 1)
        _, items = catalog_items(got[0])
        kinds = [i["DeviceID"][10:13] for i in items]
        assert kinds.count("215") == 1 and kinds.count("216") == 2 and kinds.count("131") == 6
        orgs = {i["DeviceID"] for i in items if i["DeviceID"][10:13] == "216"}
        assert all(i["ParentID"] in orgs for i in items if i["DeviceID"][10:13] == "131")
    finally:
        await dev.stop()


async def test_three_lost_keepalives_trigger_reregister(registrar: Registrar) -> None:
    dev = _dev(registrar, keepalive=0.1, request_timeout=0.3)
    await dev.start(wait_registered=5)
    try:
        registrar.drop_messages = True  # REGISTER still answered: the device re-registers at once
        await _until(lambda: dev.register_count >= 2, 5)
        assert [s for d, s, _ in registrar.register_log].count(200) >= 2
        registrar.drop_messages = False
        n = len(registrar.bodies("Keepalive", dev.device_id))
        await registrar.wait_for(lambda: len(registrar.bodies("Keepalive", dev.device_id)) > n, 5)
    finally:
        await dev.stop()


async def test_send_before_ack_fault_starts_media_at_200(registrar: Registrar) -> None:
    pytest.importorskip("xueliang.sim.media", reason="media sender not present")
    import socket

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    dev = _dev(registrar, "34020000001320000003", kind="ipc", media=True, faults={"send_before_ack"})
    await dev.start(wait_registered=5)
    try:
        offer = play_offer(
            origin_user=PLATFORM_ID, address="127.0.0.1", port=sock.getsockname()[1], ssrc="0200000021"
        )
        _, resp = await registrar.send(
            dev.device_id, dev.device_id, "INVITE", offer.to_bytes(), content_type="application/sdp"
        )
        assert resp.status == 200
        # no ACK sent: media must flow anyway (field devices that send before the ACK)
        data = await asyncio.get_running_loop().run_in_executor(None, sock.recv, 4096)
        assert int.from_bytes(data[8:12], "big") == 200000021
    finally:
        sock.close()
        await dev.stop()
