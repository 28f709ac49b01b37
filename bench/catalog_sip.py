"""Catalog ingest over real SIP, and memory per registered channel, with `xueliang serve` as a process.

The simulator (this process) registers D devices with C channels each; the platform queries every
catalog by itself and stores it. Measured: seconds from the first REGISTER until every channel is
in the store, and the platform's RSS growth per channel. Baseline in the same run: a raw sqlite3
`executemany` of the same number of channel rows (the floor any ingest path stands on).

    .venv/bin/python bench/catalog_sip.py --devices 500 --channels 1000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from e2e.conftest import free_port, free_port_range

from xueliang.sim.runner import SimNetwork

PASSWORD = "bench-admin-pass-1"


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def raw_sqlite_baseline(n: int, tmp: str) -> float:
    db = sqlite3.connect(os.path.join(tmp, "baseline.db"))
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE c (device_id TEXT, channel_id TEXT, name TEXT, civil_code TEXT, status TEXT, "
               "longitude REAL, latitude REAL, UNIQUE(device_id, channel_id))")
    rows = [(f"dev{i // 1000}", f"{i:020d}", f"camera {i}", "340104", "online", 117.2, 31.8) for i in range(n)]
    t = time.perf_counter()
    for k in range(0, n, 2000):
        db.executemany("INSERT INTO c VALUES (?,?,?,?,?,?,?) ON CONFLICT DO NOTHING", rows[k:k + 2000])
        db.commit()
    return time.perf_counter() - t


async def main(args: argparse.Namespace) -> None:
    total = args.devices * args.channels
    with tempfile.TemporaryDirectory() as tmp:
        base_s = raw_sqlite_baseline(total, tmp)
        http, sip = free_port(), free_port()
        env = dict(os.environ, XUELIANG_ADMIN_PASSWORD=PASSWORD, XUELIANG_KEEPALIVE_INTERVAL="60",
                   XUELIANG_CATALOG_TIMEOUT="60")
        exe = str(Path(sys.executable).with_name("xueliang"))
        proc = subprocess.Popen([exe, "serve", "--http-port", str(http), "--sip-host", "127.0.0.1",
                                 "--sip-port", str(sip), "--media-ports", free_port_range(10),
                                 "--data-dir", os.path.join(tmp, "var"), "--log-level", "warning"],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http}", timeout=30) as client:
                for _ in range(200):
                    try:
                        if (await client.get("/healthz")).status_code == 200:
                            break
                    except httpx.HTTPError:
                        await asyncio.sleep(0.1)
                r = await client.post("/api/v1/auth/login", json={"username": "admin", "password": PASSWORD})
                auth = {"Authorization": "Bearer " + r.json()["access_token"]}
                await asyncio.sleep(1.0)
                rss0 = rss_kb(proc.pid)
                net = SimNetwork(f"127.0.0.1:{sip}", devices=args.devices, channels=args.channels, keepalive=60,
                                 shared=True, catalog_page=args.page)
                t0 = time.perf_counter()
                await net.start(wait_registered=600)
                t_reg = time.perf_counter() - t0
                stored = 0
                deadline = time.perf_counter() + args.timeout
                last_change = time.perf_counter()
                while time.perf_counter() < deadline:
                    r = await client.get("/api/v1/channels", params={"size": 1}, headers=auth)
                    now_stored = r.json()["total"]
                    if now_stored != stored:
                        stored, last_change = now_stored, time.perf_counter()
                    if stored >= total or time.perf_counter() - last_change > args.stall:
                        break  # all in, or the sims gave up on pages (loaded host): report what came
                    await asyncio.sleep(0.5)
                t_all = time.perf_counter() - t0
                await asyncio.sleep(1.0)
                rss1 = rss_kb(proc.pid)
                await asyncio.sleep(args.settle)  # after the writer's post-burst trim
                rss2 = rss_kb(proc.pid)
                await net.stop()
        finally:
            proc.terminate()
            proc.wait(30)
    print(f"catalog over SIP: {args.devices} devices x {args.channels} channels, {args.page} items per MESSAGE")
    print(f"  all devices registered in {t_reg:.1f} s ({args.devices / t_reg:.0f} registrations/s)")
    print(f"  {stored:,} of {total:,} channels stored in {t_all:.1f} s ({stored / t_all:,.0f} channels/s)")
    print(f"  baseline raw sqlite3 executemany of {total:,} rows: {base_s:.1f} s -> ratio {t_all / base_s:.1f}x")
    print(f"  platform RSS {rss0 / 1024:.0f} MB -> {rss1 / 1024:.0f} MB: "
          f"{(rss1 - rss0) * 1024 / max(stored, 1):,.0f} bytes per registered channel")
    print(f"  after {args.settle:.0f} s settle: {rss2 / 1024:.0f} MB: "
          f"{(rss2 - rss0) * 1024 / max(stored, 1):,.0f} bytes per registered channel")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=50)
    ap.add_argument("--channels", type=int, default=1000)
    ap.add_argument("--page", type=int, default=20, help="catalog items per MESSAGE")
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--stall", type=float, default=90, help="stop waiting after this long without progress")
    ap.add_argument("--settle", type=float, default=5, help="seconds before the second RSS reading")
    asyncio.run(main(ap.parse_args()))
