"""End-to-end test of the web console against the real platform.

Starts `xueliang serve --demo` (simulated devices sending real PS/RTP) on free ports, then drives the
built console in headless Chromium: log in, find a channel with the tree search, play it (the
<video> clock must advance), press a PTZ button (the device's answer comes back through the API),
open the map (server-side cluster markers appear), switch the language (a known label changes),
and check that a broken token sends the operator back to the login page.
Screenshots go to test-output/web/.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
SHOTS = ROOT / "test-output" / "web"
ADMIN_PASSWORD = "admin-pass-1"
SIP_PORTS: dict[str, int] = {}
CHROME_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def _free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _free_media_range(size: int = 40) -> str:
    """A run of `size` UDP+TCP ports that are free right now (probed, bounded tries)."""
    for _ in range(50):
        start = _free_port(socket.SOCK_DGRAM) // 2 * 2
        if start + size > 65000:
            continue
        ok = True
        for p in range(start, start + size):
            for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                with socket.socket(socket.AF_INET, kind) as s:
                    try:
                        s.bind(("127.0.0.1", p))
                    except OSError:
                        ok = False
                        break
            if not ok:
                break
        if ok:
            return f"{start}-{start + size - 1}"
    raise RuntimeError("no free media port range")


def _get_json(url: str, token: str | None = None, method: str = "GET", body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read() or b"null")


@pytest.fixture(scope="module")
def platform_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    exe = ROOT / ".venv" / "bin" / "xueliang"
    if not exe.exists():
        pytest.skip("xueliang is not installed in .venv (run make install)")
    if not (ROOT / "xueliang" / "web_dist" / "index.html").exists():
        pytest.skip("console not built: run scripts/build-web.sh (make test does)")
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} not installed (Debian package chromium)")
    tmp = tmp_path_factory.mktemp("console")
    http_port = _free_port(socket.SOCK_STREAM)
    sip_port = _free_port(socket.SOCK_DGRAM)
    env = {**os.environ, "XUELIANG_ADMIN_PASSWORD": ADMIN_PASSWORD}
    log = open(tmp / "serve.log", "wb")  # noqa: SIM115 - closed in the finally below
    proc = subprocess.Popen(
        [str(exe), "serve", "--demo", "--http-host", "127.0.0.1", "--http-port", str(http_port),
         "--sip-host", "127.0.0.1", "--sip-port", str(sip_port), "--media-ports", _free_media_range(),
         "--db", f"sqlite:///{tmp}/x.db", "--data-dir", str(tmp)],
        cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{http_port}"
    SIP_PORTS[base] = sip_port
    try:
        deadline = time.monotonic() + 40
        while True:
            if proc.poll() is not None:
                pytest.fail(f"xueliang serve exited with {proc.returncode}:\n{(tmp / 'serve.log').read_text()[-3000:]}")
            try:
                _get_json(f"{base}/healthz")
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"/healthz not answering after 40 s:\n{(tmp / 'serve.log').read_text()[-3000:]}")
                time.sleep(0.3)
        # the demo devices register and push their catalogs by themselves: wait for online channels
        token = _get_json(f"{base}/api/v1/auth/login", method="POST",
                          body={"username": "admin", "password": ADMIN_PASSWORD})["access_token"]
        deadline = time.monotonic() + 30
        while _get_json(f"{base}/api/v1/channels?status=online&size=1", token)["total"] == 0:
            if time.monotonic() > deadline:
                pytest.fail("no demo channel came online within 30 s")
            time.sleep(0.5)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


@pytest.fixture
async def page(platform_url: str) -> AsyncIterator[Any]:
    playwright = pytest.importorskip("playwright.async_api")
    SHOTS.mkdir(parents=True, exist_ok=True)
    async with playwright.async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROME_ARGS)
        ctx = await browser.new_context(viewport={"width": 1440, "height": 900}, base_url=platform_url)
        pg = await ctx.new_page()
        errors: list[str] = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" and "401" not in m.text else None)
        pg.errors = errors
        try:
            yield pg
        finally:
            await ctx.close()
            await browser.close()


def _input(page: Any, test_id: str) -> Any:
    """Element Plus puts our data-test on the <input> itself or on its wrapper: find the input either way."""
    return page.locator(f"input[data-test={test_id}], [data-test={test_id}] input").first


async def _login(page: Any) -> None:
    await page.goto("/")
    await page.wait_for_url("**/login**")
    await _input(page, "login-username").fill("admin")
    await _input(page, "login-password").fill(ADMIN_PASSWORD)
    await page.click("[data-test=login-submit]")
    await page.wait_for_url("**/dashboard")
    await page.wait_for_selector("[data-test=kpi-channels]")


async def _video_time(page: Any, sel: str) -> float:
    return float(await page.eval_on_selector(sel, "v => v.currentTime"))


async def test_console_end_to_end(page: Any, platform_url: str) -> None:
    await _login(page)
    # dashboard numbers come from /summary: the demo's channels are counted
    await page.wait_for_function(
        "() => /[1-9]/.test(document.querySelector('[data-test=kpi-channels] .value')?.textContent || '')",
        timeout=15000)
    await page.screenshot(path=str(SHOTS / "01-dashboard.png"))

    # live view: search a channel, double-click it into the selected cell
    await page.click("[data-test=nav-live]")
    token = await page.evaluate("() => localStorage.getItem('xl.token') || sessionStorage.getItem('xl.token')")
    first = _get_json(f"{platform_url}/api/v1/channels?status=online&size=1", token)["items"][0]
    channel_id = first["channel_id"]
    await _input(page, "tree-search").fill(channel_id)
    result = page.locator(f"[data-test=tree-result][data-channel='{channel_id}']")
    await result.wait_for(timeout=10000)
    await result.dblclick()
    cell = "[data-test=cell-0] video"
    await page.wait_for_selector(cell, timeout=10000)
    await page.wait_for_function(f"() => document.querySelector('{cell}').currentTime > 0.3", timeout=20000)
    t1 = await _video_time(page, cell)
    await page.wait_for_function(f"() => document.querySelector('{cell}').currentTime > {t1 + 1.0}", timeout=15000)
    assert await page.eval_on_selector(cell, "v => v.videoWidth") > 0
    # stats overlay reads mpegts.js statistics
    await page.hover("[data-test=cell-0]")
    await page.click("[data-test=cell-0] [data-test=cell-stats]")
    await page.wait_for_function(
        "() => /[1-9]/.test(document.querySelector('[data-test=player-stats]')?.textContent || '')", timeout=5000)
    await page.screenshot(path=str(SHOTS / "02-live.png"))

    # snapshot: the server's JPEG, fetched with the bearer token, shown in a dialog
    async with page.expect_response(lambda r: r.url.endswith(f"/channels/{channel_id}/snapshot")) as snap:
        await page.click("[data-test=cell-0] [data-test=cell-snapshot]")
    assert (await snap.value).status == 200
    img = page.locator("[data-test=snapshot-img]")
    await img.wait_for(timeout=10000)
    await page.wait_for_function("() => document.querySelector('[data-test=snapshot-img]').naturalWidth > 0")
    await page.keyboard.press("Escape")
    await img.wait_for(state="hidden", timeout=5000)

    # PTZ: the pad sends the move on press and `stop` on release; both answered by the device
    await page.click("[data-test=cell-0]")
    btn = page.locator("[data-test=ptz-left]")
    async with page.expect_response(lambda r: r.url.endswith(f"/channels/{channel_id}/ptz")) as move:
        await btn.hover()
        await page.mouse.down()
    resp = await move.value
    assert resp.status == 200, await resp.text()
    answer = await resp.json()
    assert str(answer.get("result", answer.get("Result"))).upper() == "OK", answer
    async with page.expect_response(lambda r: r.url.endswith(f"/channels/{channel_id}/ptz")) as stop:
        await page.mouse.up()
    stop_resp = await stop.value
    assert stop_resp.status == 200
    assert json.loads(stop_resp.request.post_data or "{}")["command"] == "stop"
    await page.locator("[data-test=ptz-result]").wait_for(timeout=5000)
    async with page.expect_response(lambda r: r.url.endswith(f"/channels/{channel_id}/preset")) as preset:
        await page.click("[data-test=preset-call]")
    assert (await preset.value).status == 200
    # and the API itself agrees: the same command straight through the API gets the device's OK
    direct = _get_json(f"{platform_url}/api/v1/channels/{channel_id}/ptz", token, "POST", {"command": "stop", "speed": 0})
    assert str(direct.get("result", direct.get("Result"))).upper() == "OK"

    # map: server-side clusters drawn as markers
    await page.click("[data-test=nav-map]")
    await page.wait_for_selector(".leaflet-marker-pane .xl-cl, .leaflet-marker-pane .xl-pt", timeout=15000)
    assert int(await page.inner_text("[data-test=map-points]")) > 0
    await page.screenshot(path=str(SHOTS / "03-map.png"))

    # edit mode: drag a single camera to a new position; the PATCH is confirmed and stored
    await page.click("[data-test=map-edit]")
    point = page.locator(".leaflet-marker-pane .leaflet-marker-draggable .xl-pt").first
    for _ in range(6):
        if await point.count():
            break
        await page.locator(".leaflet-control-zoom-in").click()
        await page.wait_for_timeout(700)
    await point.wait_for(timeout=10000)
    box = await point.bounding_box()
    assert box is not None
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    await page.mouse.move(x, y)
    await page.mouse.down()
    for i in range(1, 6):
        await page.mouse.move(x + 12 * i, y + 8 * i)
    await page.mouse.up()
    async with page.expect_response(lambda r: "/api/v1/channels/" in r.url and r.request.method == "PATCH") as patch:
        await page.locator(".el-message-box .el-button--primary").click()
    moved = await patch.value
    assert moved.status == 200, await moved.text()
    body = json.loads(moved.request.post_data or "{}")
    assert set(body) == {"longitude", "latitude"}
    stored = _get_json(f"{platform_url}{moved.url.split(platform_url, 1)[1]}", token)
    assert abs(stored["longitude"] - body["longitude"]) < 1e-6
    await page.click("[data-test=map-edit]")

    # a single camera's popup plays it in a dialog
    single = page.locator(".leaflet-marker-pane .xl-pt").first
    await single.wait_for(timeout=10000)
    await single.click()
    await page.click(".leaflet-popup [data-test=map-play]")
    dialog_video = ".xl-player-dialog video"
    await page.wait_for_selector(dialog_video, timeout=10000)
    await page.wait_for_function(f"() => document.querySelector('{dialog_video}').currentTime > 0.3", timeout=20000)
    await page.screenshot(path=str(SHOTS / "03b-map-player.png"))
    await page.keyboard.press("Escape")
    await page.locator(dialog_video).wait_for(state="detached", timeout=5000)

    # language: default zh-CN, switch to English
    nav_live = page.locator("[data-test=nav-live]")
    assert "实时预览" in await nav_live.inner_text()
    await page.click("[data-test=lang-switch]")
    await page.click("[data-test=lang-en]")
    await page.wait_for_function(
        "() => document.querySelector('[data-test=nav-live]').textContent.includes('Live view')", timeout=5000)
    await page.click("[data-test=nav-devices]")
    await page.wait_for_selector("[data-test=device-table] .el-table__row", timeout=10000)

    # catalog refresh: 202, then live progress from catalog.progress events on the SSE stream
    device_id = first["device_id"]
    async with page.expect_response(lambda r: r.url.endswith(f"/devices/{device_id}/catalog/refresh")) as refresh:
        await page.locator(f"[data-test=refresh-{device_id}]").first.click()
    assert (await refresh.value).status == 202
    done = f"[data-test=sync-{device_id}].is-success, [data-test=sync-{device_id}] .is-success"
    await page.wait_for_selector(done, timeout=20000)
    await page.screenshot(path=str(SHOTS / "04-devices-en.png"))

    # a token the server no longer accepts sends the operator back to the login page
    await page.evaluate("() => { localStorage.setItem('xl.token', 'broken'); sessionStorage.removeItem('xl.token') }")
    await page.goto("/alarms")
    await page.wait_for_url("**/login**", timeout=10000)
    assert not page.errors, page.errors


async def test_tree_drag_into_nine_split(page: Any) -> None:
    await _login(page)
    await page.click("[data-test=nav-live]")
    await page.click("[data-test=split-9]")
    assert await page.locator("[data-test^=cell-]").filter(has=page.locator(".empty")).count() == 9
    # by device: lazy levels, a device node expands into its channels
    device = page.locator("[data-test=resource-tree] [data-test=tree-node]").first
    await device.wait_for(timeout=10000)
    await device.click()
    channel = page.locator("[data-test=resource-tree] [data-test=tree-channel]").first
    await channel.wait_for(timeout=10000)
    channel_id = await channel.get_attribute("data-channel")
    await channel.drag_to(page.locator("[data-test=cell-4]"))
    await page.wait_for_selector(f"[data-test=cell-4][data-channel='{channel_id}'] video", timeout=5000)
    await page.wait_for_function(
        "() => document.querySelector('[data-test=cell-4] video').currentTime > 0.3", timeout=20000)
    # by district: civil-code levels down to the cameras
    await page.locator("[data-test=tree-mode] label, [data-test=tree-mode] .el-segmented__item").nth(1).click()
    for _ in range(4):
        node = page.locator("[data-test=resource-tree] [data-test=tree-node]").last
        await node.wait_for(timeout=10000)
        await node.click()
        if await page.locator("[data-test=resource-tree] [data-test=tree-channel]").count():
            break
        await page.wait_for_timeout(400)
    await page.locator("[data-test=resource-tree] [data-test=tree-channel]").first.wait_for(timeout=10000)
    await page.screenshot(path=str(SHOTS / "06-live-9.png"))
    # closing a cell stops its player
    await page.hover("[data-test=cell-4]")
    await page.click("[data-test=cell-4] [data-test=cell-close]")
    assert await page.locator("[data-test=cell-4] video").count() == 0


async def test_alarm_and_h265_from_an_extra_device(page: Any, platform_url: str) -> None:
    """A simulated H.265 camera joins: its alarm reaches the alarm page (and is acknowledged) and the
    map; its H.265 stream is played directly where MediaSource decodes HEVC, otherwise the console
    asks for a transcode and says so, or names the reason it cannot play."""
    from xueliang.sim.device import SimDevice

    device_id = "34020000001320000099"
    sim = SimDevice(device_id, server=("127.0.0.1", SIP_PORTS[platform_url]), kind="ipc", channels=1,
                    media=True, codec="h265", name="H265 sim")
    await sim.start(wait_registered=15)
    try:
        await _login(page)
        token = await page.evaluate("() => localStorage.getItem('xl.token') || sessionStorage.getItem('xl.token')")
        deadline = time.monotonic() + 20
        while not (chans := _get_json(f"{platform_url}/api/v1/channels?device_id={device_id}", token)["items"]):
            assert time.monotonic() < deadline, "the extra device's catalog never arrived"
            await page.wait_for_timeout(300)
        channel_id = chans[0]["channel_id"]
        assert await sim.send_alarm(channel_id, description="door forced", longitude=117.23, latitude=31.82) == 200

        await page.click("[data-test=nav-alarms]")
        row = page.locator("[data-test=alarm-table] .el-table__row", has_text=channel_id).first
        await row.wait_for(timeout=10000)
        async with page.expect_response(lambda r: r.url.endswith("/ack")) as ack:
            await row.locator("[data-test=alarm-ack]").click()
        assert (await ack.value).status == 200
        await row.locator(".el-tag--success").wait_for(timeout=5000)

        await page.click("[data-test=nav-map]")
        await page.wait_for_selector(".leaflet-marker-pane .xl-cl, .leaflet-marker-pane .xl-pt", timeout=15000)

        hevc = await page.evaluate("() => MediaSource.isTypeSupported('video/mp4; codecs=\"hvc1.1.6.L93.B0\"')")
        await page.click("[data-test=nav-live]")
        await _input(page, "tree-search").fill(channel_id)
        result = page.locator(f"[data-test=tree-result][data-channel='{channel_id}']")
        await result.wait_for(timeout=10000)
        await result.dblclick()
        cell = "[data-test=cell-0]"
        # one of: plays (HEVC in MSE, or a transcode with its notice), or a clear H.265 error
        await page.wait_for_function(
            f"""() => {{
                const c = document.querySelector('{cell}');
                const v = c && c.querySelector('video');
                return (v && v.currentTime > 0.3) || (c && c.querySelector('[data-test=player-error]'));
            }}""", timeout=25000)
        await page.screenshot(path=str(SHOTS / "07-h265.png"))
        error = page.locator(f"{cell} [data-test=player-error]")
        if await error.count():
            text = await error.inner_text()
            assert "H.265" in text, text
            assert not hevc, "HEVC is supported by this browser, yet the stream failed: " + text
        elif not hevc:
            assert "H.264" in await page.inner_text(f"{cell} [data-test=player-notice]")
    finally:
        await sim.stop()


async def test_viewer_sees_no_controls(page: Any, platform_url: str) -> None:
    admin = _get_json(f"{platform_url}/api/v1/auth/login", method="POST",
                      body={"username": "admin", "password": ADMIN_PASSWORD})["access_token"]
    password = "Viewer-pass-9x!"
    try:
        _get_json(f"{platform_url}/api/v1/users", admin, "POST",
                  {"username": "watcher", "password": password, "role": "viewer"})
    except urllib.error.HTTPError as exc:
        assert exc.code == 409, exc  # created by an earlier run against the same module fixture
    await page.goto("/login")
    await _input(page, "login-username").fill("watcher")
    await _input(page, "login-password").fill(password)
    await page.click("[data-test=login-submit]")
    await page.wait_for_url("**/dashboard")
    await page.click("[data-test=nav-live]")
    await page.wait_for_selector("[data-test=resource-tree]")
    assert await page.locator("[data-test=ptz-panel]").count() == 0
    await page.click("[data-test=nav-devices]")
    await page.wait_for_selector("[data-test=device-table] .el-table__row", timeout=10000)
    assert await page.locator("[data-test=device-add]").count() == 0
    assert await page.locator("[data-test^=refresh-]").count() == 0


async def test_phone_layout_collapses_nav(page: Any) -> None:
    await page.set_viewport_size({"width": 390, "height": 800})
    await _login(page)
    assert await page.locator("[data-test=sidebar]").count() == 0
    await page.click("[data-test=nav-toggle]")
    await page.locator(".xl-drawer [data-test=nav-live]").click()
    await page.wait_for_url("**/live")
    await page.locator(".xl-drawer").wait_for(state="hidden", timeout=5000)
    cols = await page.eval_on_selector("[data-test=live-grid]", "g => getComputedStyle(g).gridTemplateColumns.split(' ').length")
    assert cols == 1
    await page.screenshot(path=str(SHOTS / "05-phone-live.png"))


def test_shipped_player_library_present() -> None:
    """A teammate's browser test loads mpegts.js from web/node_modules; make sure the install provides it."""
    if shutil.which("npm") is None:
        pytest.skip("npm not installed")
    dist = ROOT / "web" / "node_modules" / "mpegts.js" / "dist" / "mpegts.js"
    if not dist.exists():
        pytest.skip("web/node_modules not installed (scripts/build-web.sh installs it)")
    assert dist.stat().st_size > 100_000
