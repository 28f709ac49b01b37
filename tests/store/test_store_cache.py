"""Whole-table aggregates (dashboard summary, top of the civil tree, low-zoom map) are served
stale-while-revalidate: at once from the cache, recomputed behind, never older than 10 ttl."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from _store_data import NVR, cam

from xueliang.store.db import Database


async def test_summary_served_stale_then_refreshed(tmp_path) -> None:
    db = Database(f"sqlite:///{tmp_path}/x.db", summary_ttl=0.3)
    await db.open()
    try:
        db.writer.upsert_device({"device_id": NVR, "name": "nvr", "status": "online"})
        db.writer.upsert_channels(NVR, [cam(i) for i in range(5)])
        await db.writer.flush()
        assert (await db.repo.summary())["channels"]["total"] == 5
        db.writer.upsert_channels(NVR, [cam(i) for i in range(5, 9)])
        await db.writer.flush()
        assert (await db.repo.summary())["channels"]["total"] == 5  # within ttl: the cached answer
        await asyncio.sleep(0.35)
        assert (await db.repo.summary())["channels"]["total"] == 5  # stale answer at once, refresh started
        for _ in range(50):
            await asyncio.sleep(0.02)
            if (await db.repo.summary())["channels"]["total"] == 9:
                break
        assert (await db.repo.summary())["channels"]["total"] == 9
        tree = await db.repo.group_tree("civil_code")
        assert sum(n["count"] for n in tree) == 9
        # Older than 10 ttl: recomputed before answering, never served.
        db.writer.status_change("channel", str(cam(0)["DeviceID"]), "offline", datetime.now(UTC), device_id=NVR)
        await db.writer.flush()
        await asyncio.sleep(3.1)
        assert (await db.repo.summary())["channels"]["online"] == 8
    finally:
        await db.close()
