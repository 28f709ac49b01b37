"""API read-path benchmark with 500,000 channels: p50/p99 of the Repository calls behind the console.

Measured in one run against a baseline of a `SELECT 1` round trip through the same engine:
list_channels (first page, status filter, name text search, ID prefix, civil-code prefix, deep page),
list_devices, summary(), map_clusters at zoom 5 / 10 / 15, group_tree.

    .venv/bin/python bench/api_lists.py                      # builds 500 x 1,000 channels in a temp SQLite
    .venv/bin/python bench/api_lists.py --db /tmp/big.db     # reuse a DB from catalog_ingest.py --keep
    .venv/bin/python bench/api_lists.py --url postgresql://... [--load]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from catalog_ingest import ingest

from xueliang.store.db import Database


async def measure(fn: Callable[[], Awaitable[Any]], n: int) -> tuple[float, float]:
    """(p50, p99) in milliseconds over n calls after 3 warm-up calls."""
    for _ in range(3):
        await fn()
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        await fn()
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.99))]


async def run(db: Database, n: int, only: list[str] | None = None) -> None:
    repo = db.repo
    _, total = await repo.list_channels(size=1)
    print(f"channels in the database: {total:,}  ({db.dialect})")
    deep_page = max(1, total // 20 - 5)
    cases: list[tuple[str, Callable[[], Awaitable[Any]], int]] = [
        ("SELECT 1 (baseline)", repo.ping, n),
        ("list_channels page 1", lambda: repo.list_channels(page=1, size=20), n),
        ("list_channels status=online", lambda: repo.list_channels(page=1, size=20, status="online"), n),
        ("list_channels status=offline p5", lambda: repo.list_channels(page=5, size=20, status="offline"), n),
        ("list_channels q=name text", lambda: repo.list_channels(page=1, size=20, q="Gate"), max(10, n // 5)),
        # name search (trigram index, migration 0002): a common word (1 in 7 rows), a rare one, 2 chars (scan)
        ("list_channels q=gate (71,500 hits)", lambda: repo.list_channels(page=1, size=20, q="gate"), n),
        ("list_channels q=Gate status=online", lambda: repo.list_channels(page=1, size=20, q="Gate",
                                                                          status="online"), max(10, n // 5)),
        ("list_channels q=Camera 417-9 (111)", lambda: repo.list_channels(page=1, size=20, q="Camera 417-9"), n),
        ("list_channels q=417-99 R (1 hit)", lambda: repo.list_channels(page=1, size=20, q="417-99 R"), n),
        ("list_channels q=Ga (2 chars: LIKE)", lambda: repo.list_channels(page=1, size=20, q="Ga"),
         max(10, n // 5)),
        ("list_channels q=ID prefix", lambda: repo.list_channels(page=1, size=20, q="3402000123"), n),
        ("list_channels civil_code=3401", lambda: repo.list_channels(page=1, size=20, civil_code="3401"), n),
        ("list_channels device_id", lambda: repo.list_channels(page=1, size=50,
                                                                  device_id="34020000001180000042"), n),
        (f"list_channels deep page {deep_page}", lambda: repo.list_channels(page=deep_page, size=20),
         max(10, n // 5)),
        ("list_channels sort=-name", lambda: repo.list_channels(page=1, size=20, sort="-name"), n),
        ("list_devices page 1", lambda: repo.list_devices(page=1, size=20), n),
        ("summary()", repo.summary, max(10, n // 5)),
        ("map_clusters zoom 5 (China, cached)", lambda: repo.map_clusters(73.5, 18.0, 135.0, 53.6, 5),
         max(10, n // 5)),
        ("map_clusters zoom 5 (China, cold)", lambda: cold(repo.map_clusters(73.5, 18.0, 135.0, 53.6, 5)), 10),
        ("map_clusters zoom 10", lambda: repo.map_clusters(116.0, 39.5, 117.4, 40.2, 10), n),
        ("map_clusters zoom 15", lambda: repo.map_clusters(116.38, 39.90, 116.42, 39.92, 15), n),
        ("group_tree civil_code root", lambda: repo.group_tree("civil_code"), max(10, n // 5)),
    ]
    async def cold(aw: Awaitable[Any]) -> Any:
        """The low-zoom cache emptied first: what one request per cache TTL pays."""
        repo._cache.clear()
        return await aw

    base = None
    print(f"{'call':38s} {'p50 ms':>9s} {'p99 ms':>9s} {'p50 / SELECT 1 p50':>19s}")
    for name, fn, count in cases:
        if only and not any(o in name for o in only):
            continue
        p50, p99 = await measure(fn, count)
        if base is None:
            base = p50
        print(f"{name:38s} {p50:9.2f} {p99:9.2f} {p50 / base:19.1f}   (n={count})", flush=True)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", help="existing SQLite file with channels (catalog_ingest.py --keep)")
    ap.add_argument("--url", help="database URL (SQLite or PostgreSQL)")
    ap.add_argument("--load", action="store_true", help="load 500 x 1,000 channels into --url first")
    ap.add_argument("--devices", type=int, default=500)
    ap.add_argument("--channels", type=int, default=1000)
    ap.add_argument("-n", type=int, default=200, help="samples per cheap call (expensive ones take n/5)")
    ap.add_argument("--only", action="append", help="run only the calls whose label contains this (repeatable)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.db:
            url = f"sqlite:///{Path(args.db).resolve()}"
            load = False
        elif args.url:
            url, load = args.url, args.load
        else:
            url, load = f"sqlite:///{tmp}/api.db", True
        if load:
            secs, db = await ingest(url, args.devices, args.channels)
            await db.close()
            print(f"loaded {args.devices * args.channels:,} channels in {secs:.1f} s")
        db = Database(url)
        t0 = time.perf_counter()
        await db.open()
        print(f"open (migrations to head): {time.perf_counter() - t0:.1f} s")
        try:
            await run(db, args.n, args.only)
        finally:
            await db.close()


if __name__ == "__main__":
    asyncio.run(main())
