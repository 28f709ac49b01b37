"""Shared pieces of the HTTP API tests (the fixtures in conftest.py use them).

The platform here is real where the parts exist: a real `Database` (SQLite under tmp_path, migrated),
a real `EventBus`, a real `MediaService` (tokens, sessions, StreamHub) whose only stand-in is the
start of a GB stream: instead of an INVITE it feeds real H.264 frames encoded with PyAV into the
hub. The signalling service is `RecordingGb`, an API-layer stand-in that records the calls the
API makes and raises the platform's own error types; the lead's end-to-end tests drive the real
GbService.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from datetime import UTC, datetime
from fractions import Fraction
from typing import Any

import httpx
import numpy as np

from xueliang.config import Settings
from xueliang.events import EventBus
from xueliang.gb28181.errors import DeviceOffline, GbError, GbTimeout
from xueliang.media.frame import Frame
from xueliang.security.passwords import hash_password
from xueliang.store.db import Database

ADMIN_PW = "admin-Secret-1"
OPERATOR_PW = "operator-Secret-1"
VIEWER_PW = "viewer-Secret-1"

DEV_ONLINE = "34020000001320000001"
DEV_OFFLINE = "34020000001320000002"
DEV_SLOW = "34020000001320000003"
DEV_BROKEN = "34020000001320000004"
CHANNELS = [f"3402000000131000{i:04d}" for i in range(1, 26)]


@functools.cache
def h264_frames(n: int = 50, width: int = 320, height: int = 240, gop: int = 25) -> tuple[Frame, ...]:
    """Real H.264 access units (Annex-B, SPS/PPS on keyframes), 25 fps on the 90 kHz clock."""
    import av

    enc = av.CodecContext.create("libx264", "w")
    enc.width, enc.height, enc.pix_fmt = width, height, "yuv420p"
    enc.time_base = Fraction(1, 25)
    enc.framerate = Fraction(25, 1)
    enc.options = {"g": str(gop), "bf": "0", "preset": "ultrafast", "tune": "zerolatency"}
    out: list[Frame] = []
    y, x = np.mgrid[0:height, 0:width]
    for i in range(n):
        img = np.stack([(x + 4 * i) % 256, (y + 2 * i) % 256, np.full_like(x, 128)], axis=-1).astype(np.uint8)
        vf = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
        vf.pts = i
        for pkt in enc.encode(vf):
            out.append(Frame("h264", int(pkt.pts) * 3600, int(pkt.dts) * 3600, bytes(pkt), bool(pkt.is_keyframe)))
    for pkt in enc.encode(None):
        out.append(Frame("h264", int(pkt.pts) * 3600, int(pkt.dts) * 3600, bytes(pkt), bool(pkt.is_keyframe)))
    return tuple(out)


class RecordingGb:
    """API-layer stand-in for GbService: records calls, answers like a device, raises the real errors."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self.online = {DEV_ONLINE}

    def _device(self, id_: str) -> str:
        dev = DEV_ONLINE if id_ in CHANNELS else id_
        if dev == DEV_SLOW:
            raise GbTimeout(dev, "Query", 0.1)
        if dev == DEV_BROKEN:
            raise GbError("device answered 488", device_id=dev)
        if dev not in self.online:
            raise DeviceOffline(f"device {dev} is offline")
        return dev

    async def _call(self, command: str, id_: str, /, *args: Any, **kw: Any) -> dict[str, Any]:
        self._device(id_)
        self.calls.append((command, (id_, *args), kw))
        return {"result": "OK", "command": command}

    async def refresh_catalog(self, device_id: str) -> None:
        await self._call("refresh_catalog", device_id)

    def catalog_progress(self, device_id: str) -> dict[str, Any] | None:
        if device_id == DEV_ONLINE:
            return {"device_id": device_id, "received": 3, "total": 3, "state": "done"}
        return None

    async def ptz(self, channel_id: str, command: str, speed: int) -> dict[str, Any]:
        return await self._call("ptz", channel_id, command, speed)

    async def preset(self, channel_id: str, op: str, index: int) -> dict[str, Any]:
        return await self._call("preset", channel_id, op, index)

    async def preset_query(self, channel_id: str) -> list[dict[str, Any]]:
        await self._call("preset_query", channel_id)
        return [{"PresetID": "1", "PresetName": "gate"}]

    async def reboot(self, device_id: str) -> dict[str, Any]:
        return await self._call("reboot", device_id)

    async def record(self, channel_id: str, start: bool) -> dict[str, Any]:
        return await self._call("record", channel_id, start)

    async def guard(self, device_id: str, arm: bool) -> dict[str, Any]:
        return await self._call("guard", device_id, arm)

    async def iframe(self, channel_id: str) -> dict[str, Any]:
        return await self._call("iframe", channel_id)

    async def home_position(self, channel_id: str, enabled: bool, preset: int, reset_time: int) -> dict[str, Any]:
        return await self._call("home_position", channel_id, enabled, preset, reset_time)

    async def device_config(self, device_id: str, **fields: Any) -> dict[str, Any]:
        return await self._call("device_config", device_id, **fields)

    async def device_info(self, device_id: str) -> dict[str, Any]:
        await self._call("device_info", device_id)
        return {"DeviceID": device_id, "Manufacturer": "Test", "Result": "OK"}

    async def device_status(self, device_id: str) -> dict[str, Any]:
        await self._call("device_status", device_id)
        return {"DeviceID": device_id, "Online": "ONLINE", "Status": "OK"}

    async def config_download(self, device_id: str, config_type: str) -> dict[str, Any]:
        await self._call("config_download", device_id, config_type)
        return {"DeviceID": device_id, config_type: {"Name": "cam"}}

    def device_state(self, device_id: str) -> dict[str, Any] | None:
        return {"device_id": device_id, "online": device_id in self.online} if device_id == DEV_ONLINE else None

    def forget_device(self, device_id: str, *, deleted: bool = False) -> None:
        self.calls.append(("forget_device", (device_id,), {"deleted": deleted}))

    def online_devices(self) -> int:
        return len(self.online)


def make_media(settings: Settings, db: Database, events: EventBus) -> Any:
    """The real MediaService; only the GB stream start is replaced by a PyAV frame feeder."""
    from xueliang.media.service import MediaService

    class FeedingMediaService(MediaService):
        feeders: list[asyncio.Task[None]]

        async def _start_gb(self, sess: Any) -> None:
            frames = h264_frames()
            hub = sess.hub
            first_gop = 25
            for f in frames[:first_gop]:
                hub.push(f)

            async def feed() -> None:
                i, base = first_gop, 0
                while not hub.closed:
                    f = frames[i % len(frames)]
                    if i and i % len(frames) == 0:
                        base += len(frames) * 3600
                    hub.push(Frame(f.codec, f.pts + base, f.dts + base, f.data, f.keyframe))
                    i += 1
                    await asyncio.sleep(0.01)

            self.feeders.append(asyncio.create_task(feed()))

    svc = FeedingMediaService(settings, None, db, events)
    svc.feeders = []
    return svc


class ApiTestPlatform:
    """The attributes the API uses, as on xueliang.platform.Platform."""

    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self.events = EventBus()
        self.gb = RecordingGb()
        self.media = make_media(settings, db, self.events)
        self.version = "test"
        self.started_at = time.time()

    def stats(self) -> dict[str, Any]:
        return {"uptime": time.time() - self.started_at, "sip": {"received": 7, "sent": 5},
                "devices_online": self.gb.online_devices(), "media": self.media.stats()}


@functools.cache
def _hash(pw: str) -> str:
    return hash_password(pw)


async def seed(db: Database) -> None:
    now = datetime.now(UTC)
    w = db.writer
    for dev, status in ((DEV_ONLINE, "online"), (DEV_OFFLINE, "offline"), (DEV_SLOW, "online"),
                        (DEV_BROKEN, "online")):
        w.upsert_device({"device_id": dev, "name": f"dev {dev[-2:]}", "status": status, "password": "devpw",
                         "manufacturer": "Acme", "host": "127.0.0.1", "port": 5060, "transport": "udp",
                         "registered_at": now, "keepalive_at": now})
    rows = []
    for i, cid in enumerate(CHANNELS):
        rows.append({"channel_id": cid, "name": f"camera {i:02d}", "status": "online" if i % 2 == 0 else "offline",
                     "civil_code": "340200", "parent_id": DEV_ONLINE if i < 20 else CHANNELS[0],
                     "longitude": 118.0 + i * 0.01 if i < 10 else None,
                     "latitude": 24.4 + i * 0.01 if i < 10 else None, "ptz_type": 1})
    w.upsert_channels(DEV_ONLINE, rows)
    w.add_alarm({"device_id": DEV_ONLINE, "channel_id": CHANNELS[0], "priority": "1", "method": "5",
                 "type": "1", "description": "motion", "time": now})
    await w.flush()
    repo = db.repo
    await repo.create_user("admin", _hash(ADMIN_PW), "admin")  # ensure_admin itself: test_security.py
    await repo.create_user("oper", _hash(OPERATOR_PW), "operator")
    await repo.create_user("view", _hash(VIEWER_PW), "viewer")


async def make_platform(tmp_path: Any) -> ApiTestPlatform:
    """A seeded test platform on a fresh SQLite file (see module doc)."""
    settings = Settings(data_dir=str(tmp_path), secret_key="test-secret-key-0123456789abcdef",
                        media_ports="41000-41099", media_timeout=3.0)
    settings.database_url = f"sqlite:///{tmp_path / 'api.db'}"
    settings.finish()
    db = Database(settings.database_url)
    await db.open()
    p = ApiTestPlatform(settings, db)
    await seed(db)
    return p


async def close_platform(p: ApiTestPlatform) -> None:
    for t in p.media.feeders:
        t.cancel()
    for sid in [s["stream_id"] for s in p.media.sessions()]:
        with contextlib.suppress(Exception):
            await p.media.stop_stream(sid, "test end")
    await p.db.close()


async def login(client: httpx.AsyncClient, username: str, password: str) -> dict[str, str]:
    r = await client.post("/api/v1/auth/login", json={"username": username, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}
