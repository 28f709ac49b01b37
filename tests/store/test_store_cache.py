"""Whole-table aggregates (dashboard summary, top of the civil tree, low-zoom map) are served
stale-while-revalidate for status changes, and dropped at once when devices or channels change."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from _store_data import NVR, cam

from xueliang.store.db import Database


async def test_summary_cache_stale_for_status_fresh_for_catalog(tmp_path) -> None:
    db = Database(f"sqlite:///{tmp_path}/x.db", summary_ttl=0.3)
    await db.open()
    try:
        db.writer.upsert_device({"device_id": NVR, "name": "nvr", "status": "online"})
        db.writer.upsert_channels(NVR, [cam(i) for i in range(5)])
        await db.writer.flush()
        assert (await db.repo.summary())["channels"] == {"total": 5, "online": 5}
        # A catalog change invalidates: the next reader sees it at once.
        db.writer.upsert_channels(NVR, [cam(i) for i in range(5, 9)])
        await db.writer.flush()
        assert (await db.repo.summary())["channels"]["total"] == 9
        assert sum(n["count"] for n in await db.repo.group_tree("civil_code")) == 9
        # A status change is served from the cache within ttl, then refreshed behind.
        db.writer.status_change("channel", str(cam(0)["DeviceID"]), "offline", datetime.now(UTC), device_id=NVR)
        await db.writer.flush()
        assert (await db.repo.summary())["channels"]["online"] == 9
        await asyncio.sleep(0.35)
        assert (await db.repo.summary())["channels"]["online"] == 9  # stale answer at once, refresh started
        for _ in range(50):
            await asyncio.sleep(0.02)
            if (await db.repo.summary())["channels"]["online"] == 8:
                break
        assert (await db.repo.summary())["channels"]["online"] == 8
        # Older than 10 ttl: recomputed before answering, never served.
        db.writer.status_change("channel", str(cam(1)["DeviceID"]), "offline", datetime.now(UTC), device_id=NVR)
        await db.writer.flush()
        await asyncio.sleep(3.1)
        assert (await db.repo.summary())["channels"]["online"] == 7
    finally:
        await db.close()


async def test_map_warmed_empty_then_catalog_arrives(tmp_path) -> None:
    """The start-up warm-up runs before devices sync: their catalog must not stay hidden behind it."""
    db = Database(f"sqlite:///{tmp_path}/y.db", map_cache_ttl=60)
    await db.open()
    try:
        await db.repo.warm_map()
        assert await db.repo.map_clusters(-180, -90, 180, 90, 3) == []
        db.writer.upsert_device({"device_id": NVR, "name": "nvr", "status": "online"})
        db.writer.upsert_channels(NVR, [cam(i, Longitude="117.2", Latitude="31.8") for i in range(4)])
        await db.writer.flush()
        clusters = await db.repo.map_clusters(-180, -90, 180, 90, 3)
        assert sum(c["count"] for c in clusters) == 4
    finally:
        await db.close()
