"""Live events over SSE and WebSocket, on a real socket."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import websockets

from .support import ApiTestPlatform

H = dict[str, str]


def _token(h: H) -> str:
    return h["Authorization"].split()[1]


async def test_sse_receives_published_event(viewer: H, server: str, platform: ApiTestPlatform) -> None:
    async with httpx.AsyncClient(timeout=5) as http, \
            http.stream("GET", f"http://{server}/api/v1/events?token={_token(viewer)}") as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        lines = r.aiter_lines()
        while (await asyncio.wait_for(lines.__anext__(), 5)) != ": connected":
            pass
        platform.events.publish("device.status", device_id="34020000001320000001", status="offline", reason="t")
        data = None
        for _ in range(20):
            line = await asyncio.wait_for(lines.__anext__(), 5)
            if line.startswith("data: "):
                data = json.loads(line[6:])
                break
    assert data is not None
    assert data["type"] == "device.status" and data["data"]["status"] == "offline" and data["at"] > 0
    for _ in range(100):
        if platform.events.subscribers == 0:
            break
        await asyncio.sleep(0.02)
    assert platform.events.subscribers == 0


async def test_sse_header_auth_and_type_filter(viewer: H, server: str, platform: ApiTestPlatform) -> None:
    async with httpx.AsyncClient(timeout=5) as http, \
            http.stream("GET", f"http://{server}/api/v1/events?types=alarm", headers=viewer) as r:
        assert r.status_code == 200
        lines = r.aiter_lines()
        while (await asyncio.wait_for(lines.__anext__(), 5)) != ": connected":
            pass
        platform.events.publish("position", device_id="x")
        platform.events.publish("alarm", device_id="y", description="smoke")
        while not (line := await asyncio.wait_for(lines.__anext__(), 5)).startswith("data: "):
            pass
    assert json.loads(line[6:])["type"] == "alarm"


async def test_sse_rejects_bad_token(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/events?token=nope")
    assert r.status_code == 401


async def test_ws_events(viewer: H, server: str, platform: ApiTestPlatform) -> None:
    async with websockets.connect(f"ws://{server}/api/v1/events/ws?token={_token(viewer)}") as ws:
        for _ in range(100):
            if platform.events.subscribers == 1:
                break
            await asyncio.sleep(0.02)
        platform.events.publish("catalog.progress", device_id="d", received=5, total=10, state="running")
        msg = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert msg["type"] == "catalog.progress" and msg["data"]["received"] == 5
    for _ in range(100):
        if platform.events.subscribers == 0:
            break
        await asyncio.sleep(0.02)
    assert platform.events.subscribers == 0


async def test_ws_events_refuses_without_token(server: str) -> None:
    with pytest.raises(websockets.exceptions.InvalidStatus):
        async with websockets.connect(f"ws://{server}/api/v1/events/ws"):
            pass
