"""The console at 500,000 channels, in headless Chromium: map first render and pan/zoom, tree search,
dashboard; and p50/p99 of the API calls those pages make, against a same-run `GET /healthz` baseline.

Needs a database with the channels (positions included), e.g. from the catalog benchmark:

    .venv/bin/python bench/catalog_ingest.py --keep /tmp/xl500k.db
    .venv/bin/python bench/console_map.py --db /tmp/xl500k.db
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from e2e.conftest import free_port, free_port_range

PASSWORD = "bench-admin-pass-1"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
MARKERS = ".leaflet-marker-pane .xl-cl, .leaflet-marker-pane .xl-pt"


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


async def api_latencies(client: httpx.AsyncClient, auth: dict[str, str], n: int) -> list[tuple[str, float, float]]:
    calls = {
        "GET /healthz (baseline)": ("/healthz", {}),
        "channels page 1": ("/api/v1/channels", {"size": 50}),
        "channels status=online": ("/api/v1/channels", {"size": 50, "status": "online"}),
        "channels q=ID prefix": ("/api/v1/channels", {"size": 50, "q": "3402000000131"}),
        "channels q=name": ("/api/v1/channels", {"size": 50, "q": "camera 4711"}),
        "devices page 1": ("/api/v1/devices", {"size": 50}),
        "device channels (tree level)": ("/api/v1/devices/{dev}/channels", {}),
        "summary": ("/api/v1/summary", {}),
        "tree civil root": ("/api/v1/tree/civil", {}),
        "map zoom 5 (city and beyond)": ("/api/v1/map/clusters",
                                         {"west": 100, "south": 20, "east": 130, "north": 45, "zoom": 5}),
        "map zoom 12": ("/api/v1/map/clusters",
                        {"west": 117.1, "south": 31.7, "east": 117.4, "north": 31.95, "zoom": 12}),
    }
    dev = (await client.get("/api/v1/devices", params={"size": 1}, headers=auth)).json()["items"][0]["device_id"]
    out = []
    for name, (path, params) in calls.items():
        times = []
        for _ in range(n):
            t = time.perf_counter()
            r = await client.get(path.format(dev=dev), params=params, headers=auth)
            times.append(time.perf_counter() - t)
            assert r.status_code == 200, (name, r.status_code, r.text[:200])
        out.append((name, pct(times, 50) * 1000, pct(times, 99) * 1000))
    return out


async def browser(base: str, channel_id: str, name: str) -> dict[str, float]:
    from playwright.async_api import async_playwright

    out: dict[str, float] = {}
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = await b.new_page(viewport={"width": 1440, "height": 900}, base_url=base)
        await page.goto("/")
        await page.wait_for_url("**/login**")
        await page.locator("input[data-test=login-username], [data-test=login-username] input").first.fill("admin")
        await page.locator("input[data-test=login-password], [data-test=login-password] input").first.fill(PASSWORD)
        t = time.perf_counter()
        await page.click("[data-test=login-submit]")
        await page.wait_for_function(
            "() => /[1-9]/.test(document.querySelector('[data-test=kpi-channels] .value')?.textContent || '')",
            timeout=60000)
        out["dashboard after login"] = time.perf_counter() - t
        t = time.perf_counter()
        await page.click("[data-test=nav-map]")
        await page.wait_for_selector(MARKERS, timeout=60000)
        out["map first render"] = time.perf_counter() - t
        for i, key in enumerate(["zoom in", "zoom in", "zoom out"]):
            before = await page.evaluate("() => performance.getEntriesByType('resource').length")
            t = time.perf_counter()
            sel = ".leaflet-control-zoom-in" if key == "zoom in" else ".leaflet-control-zoom-out"
            await page.click(sel)
            await page.wait_for_function(
                f"() => performance.getEntriesByType('resource').slice({before})"
                ".some(e => e.name.includes('/map/clusters') && e.responseEnd > 0)", timeout=30000)
            await page.wait_for_selector(MARKERS, timeout=30000)
            out[f"map {key} #{i + 1}"] = time.perf_counter() - t
            # Untimed: let the zoom animation finish (Leaflet ignores drags while it runs).
            await page.wait_for_function(
                "() => !document.querySelector('.leaflet-zoom-anim')"
                " && /:/.test(document.querySelector('[data-test=map]')?.dataset.view || '')")
            await page.wait_for_timeout(50)
        box = page.locator(".leaflet-container")
        bb = await box.bounding_box()
        assert bb is not None
        before = await page.evaluate("() => performance.getEntriesByType('resource').length")
        t = time.perf_counter()
        await page.mouse.move(bb["x"] + bb["width"] / 2, bb["y"] + bb["height"] / 2)
        await page.mouse.down()
        await page.mouse.move(bb["x"] + bb["width"] / 2 + 300, bb["y"] + bb["height"] / 2 + 100, steps=10)
        await page.mouse.up()
        await page.wait_for_function(
            f"() => performance.getEntriesByType('resource').slice({before})"
            ".some(e => e.name.includes('/map/clusters') && e.responseEnd > 0)", timeout=30000)
        out["map pan"] = time.perf_counter() - t
        await page.click("[data-test=nav-live]")
        search = page.locator("input[data-test=tree-search], [data-test=tree-search] input").first
        await search.wait_for(timeout=30000)
        for label, text in (("tree search (ID) to result", channel_id),
                            ("tree search (name) to result", name)):
            await search.fill("")
            t = time.perf_counter()
            await search.fill(text)
            try:
                await page.wait_for_selector("[data-test=tree-result]", timeout=30000)
                out[label] = time.perf_counter() - t
            except Exception:
                await page.screenshot(path="/tmp/console_map_search.png")
                print(f"  {label}: no result within 30 s (screenshot /tmp/console_map_search.png)")
        await b.close()
    return out


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        http, sip = free_port(), free_port()
        env = dict(os.environ, XUELIANG_ADMIN_PASSWORD=PASSWORD)
        exe = str(Path(sys.executable).with_name("xueliang"))
        proc = subprocess.Popen([exe, "serve", "--http-port", str(http), "--sip-host", "127.0.0.1", "--sip-port",
                                 str(sip), "--media-ports", free_port_range(10), "--db",
                                 f"sqlite:///{Path(args.db).resolve()}", "--data-dir", tmp, "--log-level", "warning"],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{http}"
        try:
            async with httpx.AsyncClient(base_url=base, timeout=60) as client:
                for _ in range(300):
                    try:
                        if (await client.get("/healthz")).status_code == 200:
                            break
                    except httpx.HTTPError:
                        await asyncio.sleep(0.1)
                # Measure the steady state: let the start-up cache warm-up (whole-table scans) finish.
                await asyncio.sleep(args.settle)
                r = await client.post("/api/v1/auth/login", json={"username": "admin", "password": PASSWORD})
                auth = {"Authorization": "Bearer " + r.json()["access_token"]}
                total = (await client.get("/api/v1/channels", params={"size": 1}, headers=auth)).json()["total"]
                rows = await api_latencies(client, auth, args.n)
                pick = (await client.get("/api/v1/channels", params={"page": 4711, "size": 1},
                                         headers=auth)).json()["items"][0]
            shots = await browser(base, pick["channel_id"], pick["name"])
        finally:
            proc.terminate()
            proc.wait(30)
    base_p50 = rows[0][1]
    print(f"console and API with {total:,} channels (SQLite), {args.n} samples per call")
    print(f"  {'call':34} {'p50 ms':>8} {'p99 ms':>8} {'p50/baseline':>13}")
    for name, p50, p99 in rows:
        print(f"  {name:34} {p50:8.1f} {p99:8.1f} {p50 / base_p50:12.1f}x")
    print("  in Chromium (wall time, includes rendering):")
    for k, v in shots.items():
        print(f"  {k:34} {v * 1000:8.0f} ms")
    print(f"  median of pan/zoom steps: {statistics.median(v for k, v in shots.items() if k.startswith('map ') and 'first' not in k) * 1000:.0f} ms")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", required=True, help="SQLite file with the channels (catalog_ingest.py --keep)")
    ap.add_argument("-n", type=int, default=100)
    ap.add_argument("--settle", type=float, default=10.0, help="seconds to wait after start-up")
    asyncio.run(main(ap.parse_args()))
