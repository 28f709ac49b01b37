"""The newcomer's path: `xueliang serve --demo` as a real process, driven only over HTTP."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import sys
from pathlib import Path

import av
import httpx
import numpy as np
import pytest

from .conftest import ADMIN_PASSWORD, free_port, free_port_range

XUELIANG = str(Path(sys.executable).with_name("xueliang"))


@pytest.fixture
def demo_server(tmp_path: Path):
    http_port, sip_port = free_port(), free_port()
    env = dict(os.environ, XUELIANG_ADMIN_PASSWORD=ADMIN_PASSWORD, XUELIANG_DEMO_DEVICES="2",
               XUELIANG_DEMO_CHANNELS="2")
    cmd = [XUELIANG, "serve", "--demo", "--http-port", str(http_port), "--sip-host", "127.0.0.1",
           "--sip-port", str(sip_port), "--media-ports", free_port_range(40), "--data-dir", str(tmp_path / "var")]
    log = open(tmp_path / "serve.log", "w+b")  # noqa: SIM115 - closed in the finaliser
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{http_port}"
    try:
        for _ in range(150):
            if proc.poll() is not None:
                break
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            import time

            time.sleep(0.1)
        else:
            pass
        if proc.poll() is not None:
            log.seek(0)
            raise AssertionError("serve exited early:\n" + log.read().decode(errors="replace")[-4000:])
        yield base, proc, log
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.seek(0)
        tail = log.read().decode(errors="replace")
        log.close()
        assert "Traceback" not in tail, tail[-4000:]


async def test_demo_serves_live_video_to_a_new_user(demo_server) -> None:
    base, _proc, log = demo_server
    async with httpx.AsyncClient(base_url=base, timeout=20) as client:
        r = await client.post("/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
        log.seek(0)
        assert r.status_code == 200, r.text + log.read().decode(errors="replace")[-3000:]
        auth = {"Authorization": f"Bearer {r.json()['access_token']}"}
        assert (await client.get("/api/v1/channels")).status_code == 401
        channels: list[dict] = []
        for _ in range(100):
            r = await client.get("/api/v1/channels", params={"status": "online", "size": 50}, headers=auth)
            assert r.status_code == 200, r.text
            channels = [c for c in r.json()["items"] if c["channel_id"][10:13] == "131"]
            if len(channels) >= 4:
                break
            await asyncio.sleep(0.2)
        assert len(channels) >= 4, "the demo devices' channels never came online"
        cid = channels[0]["channel_id"]
        r = await client.post(f"/api/v1/channels/{cid}/play", json={}, headers=auth)
        assert r.status_code == 200, r.text
        play = r.json()
        assert play["video_codec"] in ("h264", "h265")
        flv = await _read_stream(client, play["urls"]["flv"], 300_000)
        assert flv[:3] == b"FLV"
        frames = _decode(flv, "flv")
        assert len(frames) >= 10
        assert (frames[0].shape[1], frames[0].shape[0]) == (play["width"], play["height"])
        r = await client.get(f"/api/v1/channels/{cid}/snapshot", headers=auth)
        assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
        import cv2

        img = cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_COLOR)
        assert img is not None and img.std() > 5, "snapshot is empty or uniform"
        assert (await client.get("/metrics")).status_code == 200


async def _read_stream(client: httpx.AsyncClient, url: str, limit: int) -> bytes:
    buf = bytearray()
    async with client.stream("GET", url) as resp:
        assert resp.status_code == 200
        async for chunk in resp.aiter_bytes():
            buf += chunk
            if len(buf) >= limit:
                break
    return bytes(buf)


def _decode(data: bytes, fmt: str) -> list[np.ndarray]:
    out = []
    with av.open(io.BytesIO(data), format=fmt) as c:
        try:
            for frame in c.decode(video=0):
                out.append(frame.to_ndarray(format="gray"))
        except (av.error.InvalidDataError, av.error.EOFError):
            pass  # the capture was cut mid-tag
    return out
