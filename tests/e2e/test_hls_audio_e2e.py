"""HLS and AAC audio end to end: simulator (PS/RTP with H.264 or H.265 video and G.711 audio) ->
platform -> ffmpeg reading the HLS playlist over HTTP and decoding it; play {"audio": "aac"} ->
HTTP-FLV whose AAC audio PyAV decodes."""

from __future__ import annotations

import asyncio
import functools
import io
import time
from collections.abc import Callable
from datetime import datetime

import av
import httpx
import pytest

from xueliang.config import Settings
from xueliang.sim.media import MediaSender
from xueliang.sim.runner import SimNetwork

from .conftest import login, running_platform, wait_channels, wait_for


async def read_http(client: httpx.AsyncClient, url: str, limit: int, seconds: float) -> bytes:
    buf = bytearray()
    end = time.monotonic() + seconds
    async with client.stream("GET", url) as resp:
        assert resp.status_code == 200, await resp.aread()
        async for chunk in resp.aiter_bytes():
            buf += chunk
            if len(buf) >= limit or time.monotonic() > end:
                break
    return bytes(buf)


async def ffmpeg_frames(url: str, seconds: float = 2.0) -> tuple[int, str]:
    """Frames ffmpeg decodes from `url` in `seconds` of media (framemd5: one line per decoded frame)."""
    proc = await asyncio.create_subprocess_exec(
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-i", url, "-t", str(seconds), "-map", "0:v:0",
        "-f", "framemd5", "-", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    lines = [ln for ln in out.decode().splitlines() if ln and not ln.startswith("#")]
    return len(lines), err.decode()[-500:]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("codec", ["h264", "h265"])
async def test_hls_and_aac_audio(codec: str, settings_factory: Callable[..., Settings]) -> None:
    settings = settings_factory(stream_idle_timeout=3.0)
    net = SimNetwork(f"127.0.0.1:{settings.sip_port}", devices=1, channels=2, media=True, keepalive=1.0,
                     server_id=settings.sip_id, password=settings.sip_password, codec=codec)
    for dev in net.devices:  # cameras with G.711 (PCMA) audio, as most GB cameras send
        dev._media_sender_cls = lambda: functools.partial(MediaSender, audio=True)  # type: ignore[method-assign]
    async with running_platform(settings, http=True) as platform:
        await net.start(wait_registered=20)
        cams = sorted(net.devices[0].channel_ids)

        await wait_channels(platform, cams, 20)
        base = f"http://127.0.0.1:{settings.http_port}"
        async with httpx.AsyncClient(base_url=base, timeout=20) as client:
            auth = await login(client)
            # ---- HLS, read and decoded by ffmpeg over HTTP
            r = await client.post(f"/api/v1/channels/{cams[0]}/play", json={"transport": "tcp-passive"}, headers=auth)
            assert r.status_code == 200, r.text
            play = r.json()
            assert play["video_codec"] == codec and play["audio_codec"] == "pcma"
            hls = play["urls"]["hls"]
            assert hls and hls.startswith(base) and "token=" in hls
            t0 = time.perf_counter()
            pl = await client.get(hls)
            first_playlist = time.perf_counter() - t0
            read_at = time.time()
            assert pl.status_code == 200, pl.text
            assert "#EXT-X-MAP" in pl.text and "seg" in pl.text
            stamps = [ln.split(":", 1)[1] for ln in pl.text.splitlines() if ln.startswith("#EXT-X-PROGRAM-DATE-TIME")]
            newest = datetime.fromisoformat(stamps[-1].replace("Z", "+00:00")).timestamp()
            n, err = await ffmpeg_frames(hls, 2.0)
            assert n >= 10, (n, err)
            seg = platform.media.hls.get(play["stream_id"])
            assert seg is not None and seg.segments
            durations = [s.duration for s in seg.segments]
            assert all(0.5 < d < 2.5 for d in durations), durations  # the simulator's GOP is about 1 s
            print(f"\n{codec} HLS: first playlist {first_playlist * 1000:.0f} ms, ffmpeg decoded {n} frames; "
                  f"segments {[round(d, 2) for d in durations]} s; newest segment started "
                  f"{read_at - newest:.2f} s before the playlist was read")

            # ---- AAC rendition of the G.711 channel, decoded from HTTP-FLV
            t0 = time.perf_counter()
            r = await client.post(f"/api/v1/channels/{cams[1]}/play", json={"audio": "aac"}, headers=auth)
            assert r.status_code == 200, r.text
            aac_play = time.perf_counter() - t0
            tc = r.json()
            assert tc["audio_codec"] == "aac" and tc["video_codec"] == codec and tc["stream_id"] == f"{cams[1]}-aac"
            flv = await read_http(client, tc["urls"]["flv"], 400_000, 4.0)
            audio_frames = video_frames = 0
            rates = set()
            with av.open(io.BytesIO(flv), format="flv") as c:
                assert c.streams.audio and c.streams.audio[0].codec_context.name == "aac"
                try:
                    for frame in c.decode(c.streams.audio[0], c.streams.video[0]):
                        if isinstance(frame, av.AudioFrame):
                            audio_frames += 1
                            rates.add(frame.sample_rate)
                        else:
                            video_frames += 1
                except (av.error.InvalidDataError, av.error.EOFError):
                    pass  # capture cut mid-tag
            assert audio_frames >= 5 and video_frames >= 10 and rates == {8000}, (audio_frames, video_frames, rates)
            print(f"AAC rendition: play answered in {aac_play * 1000:.0f} ms; FLV gave {audio_frames} AAC "
                  f"and {video_frames} video frames")
            # the same request again joins the running rendition
            r2 = await client.post(f"/api/v1/channels/{cams[1]}/play", json={"audio": "aac"}, headers=auth)
            assert r2.status_code == 200 and r2.json()["stream_id"] == tc["stream_id"]
            # without the option the original G.711 stream is answered
            r3 = await client.post(f"/api/v1/channels/{cams[1]}/play", json={}, headers=auth)
            assert r3.json()["stream_id"] == cams[1] and r3.json()["audio_codec"] == "pcma"

        # Idle: HLS stops when no one polls, then every stream (renditions included) is torn down.
        async def idle() -> bool:
            return not platform.media.sessions() and not platform.media.hls.stats()

        await wait_for(idle, 20, "HLS and streams stopped when idle")
        assert platform.media.ports.in_use == 0
        await net.stop()
