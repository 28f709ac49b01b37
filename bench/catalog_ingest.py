"""Catalog ingest benchmark: 500,000 channels (500 NVRs x 1,000 channels) through the BatchWriter.

Measures, in one run:
  * ours: catalog items (GB XML names, text values, as the catalog sync hands them over) enqueued device by
    device with `writer.upsert_channels`, until `writer.flush()` returns: seconds, channels/s;
  * baseline: the same rows, already converted to column tuples, written with raw `sqlite3` executemany
    (plain INSERT, 10,000 rows per transaction) into the same schema, same indexes, same PRAGMAs;
  * ratio ours / baseline, and peak RSS of the process.
With `--pg URL` the same is done on PostgreSQL (baseline: asyncpg executemany of a plain INSERT).
The PostgreSQL database must be empty (or pass --pg-reset to drop xueliang's tables first).

    .venv/bin/python bench/catalog_ingest.py [--devices 500 --channels 1000] [--pg postgresql://...]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import text

from xueliang.store.db import Database
from xueliang.store.normalize import channel_row

CIVIL = ["34010101", "34010202", "34020301", "34030401", "11010501", "44030601", "51010701", "32050801"]
RES = ["1920*1080", "1280x720", "704x576", "6", "5", "352x288"]


def device_id(d: int) -> str:
    return f"34020000001180{d:06d}"


def catalog(d: int, n: int, seed: int = 7) -> list[dict[str, Any]]:
    """The catalog of NVR number d: n cameras, 80 % geo-labelled inside China's bounding box."""
    rnd = random.Random(seed * 1_000_003 + d)
    dev = device_id(d)
    items: list[dict[str, Any]] = []
    for i in range(n):
        geo = rnd.random() < 0.8
        items.append({
            "DeviceID": f"3402{d:06d}131{i:07d}",
            "Name": f"Camera {d}-{i} {'Gate' if i % 7 == 0 else 'Road'}",
            "Manufacturer": "Acme", "Model": "IPC-X1", "Owner": "Owner", "CivilCode": CIVIL[(d + i) % len(CIVIL)],
            "Address": f"Street {i}", "Parental": "0", "ParentID": dev, "SafetyWay": "0", "RegisterWay": "1",
            "Secrecy": "0", "Status": "ON" if rnd.random() < 0.9 else "OFF",
            "Longitude": f"{rnd.uniform(73.5, 134.8):.6f}" if geo else "0",
            "Latitude": f"{rnd.uniform(18.2, 53.5):.6f}" if geo else "0",
            "Info": {"PTZType": str(rnd.choice((1, 3))), "Resolution": RES[i % len(RES)]},
            "ClassLevel": str(1 + i % 3),
        })
    return items


def all_catalogs(devices: int, channels: int) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    for d in range(devices):
        yield device_id(d), catalog(d, channels)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def ingest(url: str, devices: int, channels: int,
                 catalogs: list[tuple[str, list[dict[str, Any]]]] | None = None) -> tuple[float, Database]:
    """Our path; returns (seconds, open database).  Pass pre-generated catalogs to keep the (slow, random)
    test-data generation out of the timing."""
    db = Database(url)
    await db.open()
    source = catalogs if catalogs is not None else all_catalogs(devices, channels)
    t0 = time.perf_counter()
    for dev, items in source:
        db.writer.upsert_device({"device_id": dev, "name": f"NVR {dev}", "status": "online",
                                 "device_type": "nvr"})
        db.writer.upsert_channels(dev, items)
        await asyncio.sleep(0)  # the sync yields between catalog messages, as on the wire
    await db.writer.flush()
    return time.perf_counter() - t0, db


def baseline_rows(devices: int, channels: int) -> tuple[list[str], list[tuple[Any, ...]]]:
    """The same channels as column tuples (conversion not timed: the baseline is the database work only)."""
    now = time.time()
    from datetime import UTC, datetime

    ts = datetime.fromtimestamp(now, UTC).replace(tzinfo=None).isoformat(sep=" ")
    cols: list[str] | None = None
    out: list[tuple[Any, ...]] = []
    import json

    for dev, items in all_catalogs(devices, channels):
        for it in items:
            row = channel_row(dev, it, datetime.now(UTC))
            assert row is not None
            row["created_at"] = row["updated_at"] = ts
            if "extra" in row:
                row["extra"] = json.dumps(row["extra"])
            if cols is None:
                cols = sorted(row)
            out.append(tuple(row.get(c) for c in cols))
    assert cols is not None
    return cols, out


def sqlite_baseline(schema_from: Path, cols: list[str], rows: list[tuple[Any, ...]]) -> float:
    """Raw sqlite3 executemany into a copy of the migrated (empty) schema."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "baseline.db"
        src = sqlite3.connect(schema_from)
        dst = sqlite3.connect(path)
        # Same schema including the name-search FTS5 table and its triggers; its shadow tables
        # (<name>_data, _idx, _docsize, _config, _content) come with CREATE VIRTUAL TABLE.
        for (sql,) in src.execute("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%'"
                                  " AND NOT (type = 'table' AND name LIKE '%\\_fts\\_%' ESCAPE '\\')"):
            dst.execute(sql)
        src.close()
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON", "cache_size=-65536"):
            dst.execute(f"PRAGMA {pragma}")
        # the devices exist (as in our run), so the same foreign-key checks happen
        dst.executemany("INSERT INTO devices (device_id, status, created_at, updated_at) VALUES (?, 'online', ?, ?)",
                        [(d, "2024-01-01 00:00:00.000000", "2024-01-01 00:00:00.000000")
                         for d in sorted({r[cols.index("device_id")] for r in rows})])
        dst.commit()
        sql = f"INSERT INTO channels ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
        t0 = time.perf_counter()
        for i in range(0, len(rows), 10_000):
            with dst:
                dst.executemany(sql, rows[i:i + 10_000])
        elapsed = time.perf_counter() - t0
        dst.close()
    return elapsed


async def pg_baseline(url: str, cols: list[str], rows: list[tuple[Any, ...]]) -> float:
    from datetime import datetime

    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        # a real (logged) table with the same indexes and foreign key as channels, dropped afterwards
        await conn.execute("DROP TABLE IF EXISTS bench_baseline")
        await conn.execute("CREATE TABLE bench_baseline (LIKE channels INCLUDING ALL)")
        await conn.execute("ALTER TABLE bench_baseline ADD FOREIGN KEY (device_id) REFERENCES devices (device_id)")
        idx = cols.index("created_at"), cols.index("updated_at")
        fixed = []
        for r in rows:
            lr = list(r)
            for j in idx:
                lr[j] = datetime.fromisoformat(lr[j] + "+00:00")
            fixed.append(tuple(lr))
        sql = f"INSERT INTO bench_baseline ({', '.join(cols)}) VALUES ({', '.join(f'${i + 1}' for i in range(len(cols)))})"
        t0 = time.perf_counter()
        for i in range(0, len(fixed), 10_000):
            async with conn.transaction():
                await conn.executemany(sql, fixed[i:i + 10_000])
        elapsed = time.perf_counter() - t0
        await conn.execute("DROP TABLE bench_baseline")
        return elapsed
    finally:
        await conn.close()


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", type=int, default=500)
    ap.add_argument("--channels", type=int, default=1000)
    ap.add_argument("--pg", help="PostgreSQL URL (empty database) to measure too")
    ap.add_argument("--pg-reset", action="store_true", help="drop xueliang's tables in --pg first")
    ap.add_argument("--keep", help="keep the SQLite database at this path (for bench/api_lists.py --db)")
    args = ap.parse_args()
    total = args.devices * args.channels
    print(f"catalog ingest: {args.devices} devices x {args.channels} channels = {total:,} channels")

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.keep) if args.keep else Path(tmp) / "ours.db"
        if path.exists():
            path.unlink()
        # an empty migrated schema for the baseline, built before anything else is in memory
        schema = Path(tmp) / "schema.db"
        sdb = Database(f"sqlite:///{schema}")
        await sdb.open()
        await sdb.close()

        rss0 = peak_rss_mb()
        catalogs = list(all_catalogs(args.devices, args.channels))  # generated before the clock starts
        rss_data = peak_rss_mb()
        print(f"  test data       : {rss_data - rss0:8.0f} MB of catalog dicts in memory (not timed)")
        secs, db = await ingest(f"sqlite:///{path}", args.devices, args.channels, catalogs)
        _, n = await db.repo.list_channels(size=1)
        stats = dict(db.writer.stats)
        await db.close()
        rss_ours = peak_rss_mb()
        assert n == total, (n, total)
        print(f"  sqlite ours     : {secs:8.2f} s  {total / secs:10,.0f} channels/s  "
              f"(batches {stats['batches']}, failed rows {stats['rows_failed']}); peak RSS {rss_ours:,.0f} MB "
              f"(+{rss_ours - rss_data:,.0f} MB over the test data)")

        cols, rows = baseline_rows(args.devices, args.channels)
        base = sqlite_baseline(schema, cols, rows)
        print(f"  sqlite baseline : {base:8.2f} s  {total / base:10,.0f} channels/s  (raw sqlite3 executemany)")
        print(f"  sqlite ratio    : {secs / base:8.2f} x baseline time")

        if args.pg:
            pdb = Database(args.pg)
            if args.pg_reset:
                async with pdb.engine.begin() as conn:
                    for t in ("channels", "devices", "status_events", "alarms", "positions", "users",
                              "audit_log", "snapshots", "alembic_version"):
                        await conn.execute(text(f"DROP TABLE IF EXISTS {t} CASCADE"))
            await pdb.close()
            psecs, pdb = await ingest(args.pg, args.devices, args.channels, catalogs)
            _, pn = await pdb.repo.list_channels(size=1)
            pbase = await pg_baseline(pdb.async_url, cols, rows)
            await pdb.close()
            print(f"  pg ours         : {psecs:8.2f} s  {total / psecs:10,.0f} channels/s  ({pn:,} rows)")
            print(f"  pg baseline     : {pbase:8.2f} s  {total / pbase:10,.0f} channels/s  (asyncpg executemany)")
            print(f"  pg ratio        : {psecs / pbase:8.2f} x baseline time")
        print(f"  peak RSS (whole run, incl. baseline rows in memory): {peak_rss_mb():,.0f} MB")


if __name__ == "__main__":
    asyncio.run(main())
