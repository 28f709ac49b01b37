"""BatchWriter against real SQLite and PostgreSQL: partial upserts, merges, batching, history, audit chain."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from _store_data import NVR, cam
from sqlalchemy import event, select, text, update

from xueliang.store.db import Database
from xueliang.store.models import AuditLog, StatusEvent


async def test_partial_device_upsert_keeps_other_columns(db: Database) -> None:
    w = db.writer
    w.upsert_device({"device_id": NVR, "name": "NVR", "host": "127.0.0.1", "port": 5061, "password": "pw",
                     "vendor_field": "x"})
    await w.flush()
    w.upsert_device({"device_id": NVR, "keepalive_at": datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)})
    await w.flush()
    dev = await db.repo.get_device(NVR)
    assert dev is not None
    assert dev["name"] == "NVR" and dev["host"] == "127.0.0.1" and dev["port"] == 5061
    assert dev["keepalive_at"] == "2024-01-02T03:04:05+00:00"
    assert dev["extra"] == {"vendor_field": "x"}
    assert "password" not in dev  # never handed to the API
    runtime = {d["device_id"]: d for d in await db.repo.runtime_devices()}
    assert runtime[NVR]["password"] == "pw"


async def test_channel_upsert_merges_extra_and_never_deletes(db: Database) -> None:
    w = db.writer
    w.upsert_channels(NVR, [cam(1, GrassrootsCode="34020001", Longitude="117.2", Latitude="31.8"),
                            cam(2)])
    await w.flush()
    # second catalog: channel 2 missing (partial response), channel 1 without position but with a new field
    w.upsert_channels(NVR, [{"DeviceID": cam(1)["DeviceID"], "Name": "Renamed", "PointType": "1"}])
    await w.flush()
    items, total = await db.repo.list_channels(device_id=NVR)
    assert total == 2  # nothing deleted
    one = next(i for i in items if i["channel_id"] == cam(1)["DeviceID"])
    assert one["name"] == "Renamed"
    assert one["longitude"] == 117.2 and one["latitude"] == 31.8  # absent keys left as they were
    assert one["extra"] == {"GrassrootsCode": "34020001", "PointType": "1"}
    assert one["manufacturer"] == "Acme"
    assert one["type_code"] == 131
    dev = await db.repo.get_device(NVR)
    assert dev is not None and dev["status"] == "offline"  # stub device made for the FK


async def test_duplicates_in_one_batch_are_merged(db: Database) -> None:
    db.writer.upsert_channels(NVR, [cam(1, Name="first"), cam(1, Name="second", Extra1="a"), cam(1, Extra2="b")])
    await db.writer.flush()
    items, total = await db.repo.list_channels()
    assert total == 1
    assert items[0]["name"] == "Camera 1"  # the last row gave Name again (cam default)
    assert items[0]["extra"] == {"Extra1": "a", "Extra2": "b"}


async def test_10000_channel_catalog_in_few_round_trips(db: Database) -> None:
    statements: list[tuple[str, bool]] = []

    def count(conn: Any, cursor: Any, statement: str, params: Any, context: Any, executemany: bool) -> None:
        statements.append((statement.split(None, 1)[0].upper(), executemany))

    event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    try:
        rows = [cam(i, Longitude=str(100 + i / 1000), Latitude="30.5") for i in range(10_000)]
        t0 = time.perf_counter()
        db.writer.upsert_device({"device_id": NVR, "name": "big NVR"})
        db.writer.upsert_channels(NVR, rows)
        await db.writer.flush()
        elapsed = time.perf_counter() - t0
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", count)
    _, total = await db.repo.list_channels()
    assert total == 10_000
    inserts = [s for s in statements if s[0] == "INSERT"]
    assert 1 <= len(inserts) <= 4, statements
    assert len(statements) <= 8, statements
    assert elapsed < 20


async def test_status_change_history_and_columns(db: Database) -> None:
    w = db.writer
    w.upsert_device({"device_id": NVR})
    w.upsert_channels(NVR, [cam(1), cam(2)])
    await w.flush()
    t0 = datetime(2025, 5, 1, 8, 0, tzinfo=UTC)
    w.status_change("device", NVR, "online", t0, reason="register")
    w.status_change("channel", str(cam(1)["DeviceID"]), "offline", t0 + timedelta(seconds=1), device_id=NVR)
    w.status_change("device", NVR, "offline", t0 + timedelta(minutes=3), reason="keepalive timeout")
    w.status_change("channel", str(cam(2)["DeviceID"]), "OFF", t0 + timedelta(minutes=4))  # no device_id
    await w.flush()
    dev = await db.repo.get_device(NVR)
    assert dev is not None
    assert dev["status"] == "offline"
    assert dev["last_online_at"] == t0.isoformat()
    ch1 = await db.repo.get_channel(str(cam(1)["DeviceID"]))
    ch2 = await db.repo.get_channel(str(cam(2)["DeviceID"]))
    assert ch1 is not None and ch1["status"] == "offline"
    assert ch2 is not None and ch2["status"] == "offline"
    hist = await db.repo.status_history("device", NVR)
    assert [(h["status"], h["reason"]) for h in hist] == [("online", "register"), ("offline", "keepalive timeout")]
    async with db.engine.connect() as conn:
        n = (await conn.execute(select(StatusEvent.id))).all()
    assert len(n) == 4


async def test_positions_move_channel_and_alarms(db: Database) -> None:
    w = db.writer
    w.upsert_channels(NVR, [cam(1)])
    await w.flush()
    cid = str(cam(1)["DeviceID"])
    w.add_position({"device_id": NVR, "channel_id": cid, "time": "2025-05-01T08:00:00", "longitude": "120.5",
                    "latitude": "30.25", "speed": "12.5", "direction": "90"})
    w.add_alarm({"device_id": NVR, "channel_id": cid, "priority": "1", "method": "5", "type": "2",
                 "description": "motion", "time": datetime.now(UTC), "vendor": "v"})
    await w.flush()
    ch = await db.repo.get_channel(cid)
    assert ch is not None and (ch["longitude"], ch["latitude"]) == (120.5, 30.25)
    pos, n = await db.repo.list_positions(page=1, size=10, channel_id=cid)
    assert n == 1 and pos[0]["speed"] == 12.5 and pos[0]["time"] == "2025-05-01T08:00:00+00:00"
    alarms, n = await db.repo.list_alarms(page=1, size=10, device_id=NVR)
    assert n == 1 and alarms[0]["priority"] == 1 and alarms[0]["extra"] == {"vendor": "v"}
    assert (await db.repo.summary())["alarms_today"] == 1
    assert await db.repo.ack_alarm(alarms[0]["id"], "admin")
    unacked, n = await db.repo.list_alarms(page=1, size=10, acknowledged=False)
    assert n == 0 and unacked == []


async def test_one_bad_row_loses_only_itself(db: Database) -> None:
    w = db.writer
    w.upsert_channels(NVR, [cam(1), cam(2, Weird=object()), cam(3)])  # object() cannot be stored as JSON
    w.audit("admin", "x", "y")
    await w.flush()
    items, total = await db.repo.list_channels()
    assert total == 2
    assert {i["channel_id"] for i in items} == {cam(1)["DeviceID"], cam(3)["DeviceID"]}
    assert w.stats["rows_failed"] == 1 and w.stats["batch_failures"] == 1
    assert await db.repo.verify_audit_chain() == (True, None)


async def test_audit_chain_and_tamper_detection(db: Database) -> None:
    w = db.writer
    for i in range(5):
        w.audit("admin", "channel.play", f"3402000000131000000{i}", {"n": i, "ip": "10.0.0.1", "f": 0.1, "big": 1e20, "one": 1.0, "tiny": 1e-7, "l": [2.5, "x"]},
                source="127.0.0.1")
    await w.flush()
    assert await db.repo.verify_audit_chain() == (True, None)
    async with db.engine.begin() as conn:
        ids = [r[0] for r in (await conn.execute(select(AuditLog.id).order_by(AuditLog.id))).all()]
        await conn.execute(update(AuditLog).where(AuditLog.id == ids[2]).values(user="mallory"))
    assert await db.repo.verify_audit_chain() == (False, ids[2])
    async with db.engine.begin() as conn:  # put it back: intact again
        await conn.execute(update(AuditLog).where(AuditLog.id == ids[2]).values(user="admin"))
    assert await db.repo.verify_audit_chain() == (True, None)
    async with db.engine.begin() as conn:  # delete a row: the next one no longer links
        await conn.execute(text("DELETE FROM audit_log WHERE id = :i"), {"i": ids[1]})
    assert await db.repo.verify_audit_chain() == (False, ids[2])


async def test_enqueue_never_blocks_and_flushes_by_time(db: Database) -> None:
    w = db.writer
    t0 = time.perf_counter()
    for i in range(3000):
        w.audit("u", "a", str(i))
    assert time.perf_counter() - t0 < 0.5  # appends only
    # without flush(): the 50 ms timer / 2000-op threshold gets it written
    for _ in range(100):
        await asyncio.sleep(0.05)
        if w.pending == 0 and (await db.repo.list_audit(page=1, size=1))[1] == 3000:
            break
    assert (await db.repo.list_audit(page=1, size=1))[1] == 3000
    assert await db.repo.verify_audit_chain() == (True, None)


async def test_flush_covers_everything_enqueued_before_it(db: Database) -> None:
    w = db.writer

    async def producer(tag: str) -> None:
        for r in range(10):
            for i in range(120):
                w.audit("u", "a", f"{tag}-{r}-{i}")
            await asyncio.sleep(0)

    background = asyncio.create_task(producer("bg"))
    for r in range(10):
        for i in range(130):
            w.audit("u", "b", f"fg-{r}-{i}")
        await w.flush()
        _, n = await db.repo.list_audit(page=1, size=1, action="b")
        assert n == (r + 1) * 130  # everything before the flush() is committed when it returns
    await background
    await w.flush()
    _, n = await db.repo.list_audit(page=1, size=1)
    assert n == 10 * 130 + 10 * 120
    assert await db.repo.verify_audit_chain() == (True, None)


async def test_connection_loss_loses_nothing(db: Database) -> None:
    """PostgreSQL kills the writer's connections mid-ingest (as a restart or failover would): every row lands."""
    if db.dialect != "postgresql":
        pytest.skip("PostgreSQL only: needs server-side connection termination")
    import asyncpg

    w = db.writer
    rows = [cam(i) for i in range(60_000)]
    w.upsert_channels(NVR, rows)
    w.audit("admin", "bulk", "catalog")
    url = db.async_url.replace("postgresql+asyncpg://", "postgresql://")
    killer = await asyncpg.connect(url)
    killed = 0
    try:
        for _ in range(6):
            await asyncio.sleep(0.15)
            killed += len(await killer.fetch(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"))
    finally:
        await killer.close()
    await asyncio.wait_for(w.flush(), 60)
    _, total = await db.repo.list_channels(size=1)
    assert total == 60_000
    assert w.stats["rows_failed"] == 0
    assert await db.repo.verify_audit_chain() == (True, None)
    assert killed >= 1
