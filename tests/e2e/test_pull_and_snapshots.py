"""A non-GB source joins the tree (pull proxy) and plays like any channel; snapshots go to the image store."""

from __future__ import annotations

import asyncio
import io
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import av
import cv2
import httpx
import numpy as np
import pytest

from xueliang.config import Settings
from xueliang.sim.runner import SimNetwork

from .conftest import free_port, login, running_platform, wait_channels

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg binary (Debian ffmpeg)")


@pytest.mark.timeout(120)
async def test_pull_channel_plays_through_the_hub(tmp_path: Path, settings_factory: Callable[..., Settings]) -> None:
    src = tmp_path / "cam.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-t", "4",
                    "-c:v", "libx264", "-g", "25", "-bf", "0", "-pix_fmt", "yuv420p", str(src)], check=True,
                   timeout=60)
    port = free_port(both=False)
    server = subprocess.Popen(["ffmpeg", "-v", "error", "-re", "-stream_loop", "-1", "-i", str(src), "-c", "copy",
                               "-f", "flv", "-listen", "1", f"http://127.0.0.1:{port}/live.flv"])
    settings = settings_factory()
    try:
        async with running_platform(settings, http=True), \
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.http_port}", timeout=30) as client:
            auth = await login(client)
            r = await client.post("/api/v1/channels/pull", headers=auth, json={
                "name": "非国标摄像机 RTSP/HTTP", "url": f"http://127.0.0.1:{port}/live.flv"})
            assert r.status_code == 201, r.text
            cid = r.json()["channel_id"]
            assert len(cid) == 20
            listed = (await client.get("/api/v1/channels", params={"q": cid}, headers=auth)).json()
            assert [c["channel_id"] for c in listed["items"]] == [cid]
            r = await client.post(f"/api/v1/channels/{cid}/play", json={}, headers=auth)
            assert r.status_code == 200, r.text
            play = r.json()
            assert play["video_codec"] == "h264" and (play["width"], play["height"]) == (320, 240)
            buf = bytearray()
            async with client.stream("GET", play["urls"]["flv"]) as resp:
                async for chunk in resp.aiter_bytes():
                    buf += chunk
                    if len(buf) > 60_000:
                        break
            frames = 0
            with av.open(io.BytesIO(bytes(buf)), format="flv") as c:
                try:
                    for _ in c.decode(video=0):
                        frames += 1
                except (av.error.InvalidDataError, av.error.EOFError):
                    pass
            assert frames >= 5
    finally:
        server.kill()
        server.wait(5)


@pytest.mark.timeout(90)
async def test_snapshot_stored_in_the_image_store(settings_factory: Callable[..., Settings]) -> None:
    settings = settings_factory()
    net = SimNetwork(f"127.0.0.1:{settings.sip_port}", devices=1, channels=1, media=True, keepalive=1.0,
                     server_id=settings.sip_id, password=settings.sip_password)
    async with running_platform(settings, http=True) as platform:
        await net.start(wait_registered=20)
        cam = sorted(net.devices[0].channel_ids)[0]

        await wait_channels(platform, [cam], 20)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.http_port}", timeout=30) as client:
            auth = await login(client)
            r = await client.get(f"/api/v1/channels/{cam}/snapshot", params={"store": "true"}, headers=auth)
            assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg", r.text
            sid = r.headers["x-snapshot-id"]
            listed = (await client.get("/api/v1/snapshots", params={"channel_id": cam}, headers=auth)).json()
            assert listed["total"] == 1 and listed["items"][0]["width"] == 640 and "path" not in listed["items"][0]
            img = (await client.get(f"/api/v1/snapshots/{sid}", headers=auth)).content
            assert img == r.content
            pic = cv2.imdecode(np.frombuffer(img, np.uint8), cv2.IMREAD_COLOR)
            assert pic.shape[:2] == (360, 640) and pic.std() > 5
            assert (await client.get("/api/v1/snapshots/999", headers=auth)).status_code == 404
            assert (await client.get("/api/v1/snapshots")).status_code == 401
        stored = list(Path(settings.data_dir, "snapshots").rglob("*.jpg"))
        assert len(stored) == 1
    await net.stop()
    await asyncio.sleep(0)
