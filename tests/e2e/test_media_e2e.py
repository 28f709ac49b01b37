"""Live video end to end: simulator -> INVITE -> PS/RTP (UDP, TCP passive, TCP active; H.264, H.265)
-> platform -> HTTP-FLV, WebSocket-FLV and fMP4-over-WebSocket clients that decode with PyAV."""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import Callable

import av
import httpx
import pytest
import websockets

from xueliang.config import Settings
from xueliang.sim.runner import SimNetwork

from .conftest import login, running_platform, wait_channels, wait_for


def decode(data: bytes, fmt: str) -> list[tuple[int, int]]:
    """(width, height) of every frame PyAV decodes from a captured byte stream."""
    sizes = []
    with av.open(io.BytesIO(data), format=fmt) as c:
        try:
            for frame in c.decode(video=0):
                sizes.append((frame.width, frame.height))
        except (av.error.InvalidDataError, av.error.EOFError):
            pass  # capture cut mid-tag/fragment
    return sizes


async def read_http(client: httpx.AsyncClient, url: str, limit: int) -> bytes:
    buf = bytearray()
    async with client.stream("GET", url) as resp:
        assert resp.status_code == 200, await resp.aread()
        async for chunk in resp.aiter_bytes():
            buf += chunk
            if len(buf) >= limit:
                break
    return bytes(buf)


async def read_ws(url: str, limit: int) -> tuple[list[str], bytes]:
    texts, buf = [], bytearray()
    async with websockets.connect(url, max_size=None) as ws:
        while len(buf) < limit:
            msg = await asyncio.wait_for(ws.recv(), 10)
            if isinstance(msg, str):
                texts.append(msg)
            else:
                buf += msg
    return texts, bytes(buf)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("codec", ["h264", "h265"])
async def test_live_play_every_transport(codec: str, settings_factory: Callable[..., Settings]) -> None:
    settings = settings_factory(stream_idle_timeout=4.0)
    net = SimNetwork(f"127.0.0.1:{settings.sip_port}", devices=1, channels=3, media=True, keepalive=1.0,
                     server_id=settings.sip_id, password=settings.sip_password, codec=codec)
    async with running_platform(settings, http=True) as platform:
        await net.start(wait_registered=20)
        cams = sorted(net.devices[0].channel_ids)

        await wait_channels(platform, cams, 20)
        base = f"http://127.0.0.1:{settings.http_port}"
        async with httpx.AsyncClient(base_url=base, timeout=20) as client:
            auth = await login(client)
            for cam, transport in zip(cams, ["udp", "tcp-passive", "tcp-active"], strict=True):
                t0 = time.perf_counter()
                r = await client.post(f"/api/v1/channels/{cam}/play", json={"transport": transport}, headers=auth)
                assert r.status_code == 200, f"{transport}: {r.text}"
                first_play = time.perf_counter() - t0
                play = r.json()
                assert play["transport"] == transport and play["video_codec"] == codec
                assert (play["width"], play["height"]) == (640, 360)
                ch = (await client.get(f"/api/v1/channels/{cam}", headers=auth)).json()
                assert ch["resolution"] == "640x360", ch  # learnt from the stream for the HD-rate report
                # A second viewer gets the running stream at once.
                t1 = time.perf_counter()
                r2 = await client.post(f"/api/v1/channels/{cam}/play", json={}, headers=auth)
                second_play = time.perf_counter() - t1
                assert r2.status_code == 200 and r2.json()["stream_id"] == play["stream_id"]
                assert second_play < first_play + 0.5

                flv = await read_http(client, play["urls"]["flv"], 200_000)
                assert flv[:3] == b"FLV"
                sizes = decode(flv, "flv")
                assert len(sizes) >= 5 and set(sizes) == {(640, 360)}, (transport, sizes[:3])

                _, wsflv = await read_ws(play["urls"]["ws_flv"], 150_000)
                assert wsflv[:3] == b"FLV" and len(decode(wsflv, "flv")) >= 3

                texts, mp4 = await read_ws(play["urls"]["fmp4"], 150_000)
                meta = json.loads(texts[0])
                assert meta["codec"].startswith("avc1" if codec == "h264" else ("hvc1", "hev1"))
                assert len(decode(mp4, "mp4")) >= 3

                # No token, wrong token: no video.
                bare = play["urls"]["flv"].split("?")[0]
                assert (await client.get(bare)).status_code in (401, 403)
                assert (await client.get(bare + "?token=AAAA")).status_code == 403

                streams = (await client.get("/api/v1/streams", headers=auth)).json()
                listed = {s["stream_id"]: s for s in (streams["items"] if isinstance(streams, dict) else streams)}
                assert cam in listed and listed[cam]["rtp"]["packets"] > 0, listed

            if codec == "h265":
                # Browsers without HEVC in Media Source ask for an H.264 rendition, made on demand.
                r = await client.post(f"/api/v1/channels/{cams[0]}/play", json={"transcode": True}, headers=auth)
                assert r.status_code == 200, r.text
                tc = r.json()
                assert tc["transcoded"] and tc["video_codec"] == "h264" and tc["stream_id"] != cams[0]
                flv = await read_http(client, tc["urls"]["flv"], 60_000)
                with av.open(io.BytesIO(flv), format="flv") as c:
                    assert c.streams.video[0].codec_context.name == "h264"
                assert len(decode(flv, "flv")) >= 3

        # Idle teardown: with no viewer left, every stream is stopped (BYE) and its port released.
        async def idle() -> bool:
            return not platform.media.sessions()

        await wait_for(idle, 15, "idle streams torn down")
        assert platform.media.stats()["streams"] == 0 and platform.media.ports.in_use == 0
        await net.stop()


@pytest.mark.timeout(60)
async def test_device_that_never_sends_media_gives_a_clear_error(settings_factory: Callable[..., Settings]) -> None:
    settings = settings_factory(media_timeout=2.0)
    net = SimNetwork(f"127.0.0.1:{settings.sip_port}", devices=1, channels=1, media=True, keepalive=1.0,
                     server_id=settings.sip_id, password=settings.sip_password, faults={"no_media"})
    async with running_platform(settings, http=True) as platform:
        await net.start(wait_registered=20)
        cam = sorted(net.devices[0].channel_ids)[0]

        await wait_channels(platform, [cam], 20)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.http_port}", timeout=20) as client:
            auth = await login(client)
            r = await client.post(f"/api/v1/channels/{cam}/play", json={"transport": "udp"}, headers=auth)
            assert r.status_code == 504, r.text
            detail = r.json()["detail"]
            assert "no UDP media reached" in detail and str(settings.advertised_media_ip) in detail, detail
        assert not platform.media.sessions()
        await net.stop()


@pytest.mark.timeout(60)
async def test_device_gone_mid_stream_ends_viewers(settings_factory: Callable[..., Settings]) -> None:
    settings = settings_factory()
    net = SimNetwork(f"127.0.0.1:{settings.sip_port}", devices=1, channels=1, media=True, keepalive=1.0,
                     server_id=settings.sip_id, password=settings.sip_password)
    async with running_platform(settings) as platform:
        await net.start(wait_registered=20)
        cam = sorted(net.devices[0].channel_ids)[0]

        await wait_channels(platform, [cam], 20)
        sess = await platform.media.play(cam, "tcp-passive")
        viewer = sess.hub.add_viewer()
        got = 0
        while got < 10:
            f = await asyncio.wait_for(viewer.get(), 5)
            assert f is not None
            got += 1
        await net.stop()  # the device goes away: BYE and/or TCP close
        end = time.monotonic() + 10
        while time.monotonic() < end:
            f = await asyncio.wait_for(viewer.get(), 10)
            if f is None:
                break
        else:
            raise AssertionError("viewer never saw the end of the stream")
        await wait_for(lambda: _no_sessions(platform), 10, "session removed")


async def _no_sessions(platform: object) -> bool:
    return not platform.media.sessions()  # type: ignore[attr-defined]
