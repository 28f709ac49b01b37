"""SIPp as the device: digest REGISTER, GB2312 keepalive, answering a Catalog query (marker `sipp`)."""

from __future__ import annotations

import asyncio
import time

import pytest

from .sipp_driver import SCENARIOS, run_sipp

pytestmark = pytest.mark.sipp

DEV = "34020000001320000077"
NVR = "34020000001180000078"


async def test_sipp_register_digest(gb_server, tmp_path):
    g = await gb_server()
    g.gb.auto_query = False
    res = await run_sipp("register.xml", g.port, tmp_path, keys={"dev": DEV},
                         extra=["-au", DEV, "-ap", "12345678"])
    assert res.rc == 0, (res.stdout[-2000:], res.errors[-2000:])
    dev = g.gb.table.get(DEV)
    assert dev is not None and dev.online and dev.gb_version == "2016"
    assert g.gb.stats["register_challenges"] >= 1 and g.gb.stats["registrations"] == 1
    await g.db.writer.flush()
    assert (await g.db.repo.get_device(DEV))["status"] == "online"


async def test_sipp_register_wrong_password_fails(gb_server, tmp_path):
    g = await gb_server()
    res = await run_sipp("register.xml", g.port, tmp_path, keys={"dev": DEV}, timeout=5,
                         extra=["-au", DEV, "-ap", "not-the-password"])
    assert res.rc != 0
    assert g.gb.table.get(DEV) is None and g.gb.stats["register_failures"] == 1


async def test_sipp_keepalive_gb2312(gb_server, tmp_path):
    g = await gb_server()
    g.gb.auto_query = False
    res = await run_sipp("keepalive.xml", g.port, tmp_path, keys={"dev": DEV},
                         extra=["-au", DEV, "-ap", "12345678"])
    assert res.rc == 0, (res.stdout[-2000:], res.errors[-2000:])
    assert g.gb.stats["keepalives"] == 1


async def test_sipp_device_answers_catalog(gb_server, tmp_path):
    g = await gb_server()
    g.gb.auto_query = False
    ch1, ch2 = "34020000001310000781", "34020000001310000782"
    task = asyncio.create_task(run_sipp(
        "catalog_device.xml", g.port, tmp_path, keys={"dev": NVR, "chan1": ch1, "chan2": ch2},
        extra=["-au", NVR, "-ap", "12345678", "-oocsf", str(SCENARIOS / "catalog_answer.xml")]))
    deadline = time.monotonic() + 5
    while g.gb.table.get(NVR) is None and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert g.gb.table.get(NVR) is not None, "SIPp device did not register"
    await g.gb.refresh_catalog(NVR)
    res = await task
    assert res.rc == 0, (res.stdout[-2000:], res.errors[-2000:])
    prog = g.gb.catalog_progress(NVR)
    assert prog is not None and prog["state"] == "done" and prog["received"] == 2, prog
    await g.db.writer.flush()
    items, total = await g.db.repo.list_channels(page=1, size=10, device_id=NVR)
    assert total == 2
    by_id = {c["channel_id"]: c for c in items}
    assert by_id[ch1]["status"] == "online" and by_id[ch1]["name"] == "Gate 1"
    assert by_id[ch2]["status"] == "offline" and by_id[ch2]["ptz_type"] == 1
