"""Time to first frame on loopback, first and second viewer, against a same-run HTTP round trip.

First viewer: POST /play (INVITE, device answers, media arrives, first keyframe) and then the
HTTP-FLV request until the first video tag is in hand. Second viewer: the stream already runs, so it
is the HTTP-FLV request alone, served from the GOP cache. Baseline: GET /healthz on the same server.

    .venv/bin/python bench/ttff.py --channels 8 --transport udp
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from e2e.conftest import login, make_settings, running_platform, wait_channels

from xueliang.sim.runner import SimNetwork


async def first_video_tag(client: httpx.AsyncClient, url: str) -> float:
    """Seconds until the first FLV video tag (type 9) carrying a coded frame has arrived."""
    t0 = time.perf_counter()
    buf = bytearray()
    async with client.stream("GET", url) as resp:
        async for chunk in resp.aiter_bytes():
            buf += chunk
            pos = 13  # FLV header (9) + PreviousTagSize0 (4)
            while pos + 11 <= len(buf):
                tag_type = buf[pos] & 0x1F
                size = int.from_bytes(buf[pos + 1:pos + 4], "big")
                if pos + 11 + size > len(buf):
                    break
                body = buf[pos + 11:pos + 11 + size]
                if tag_type == 9 and len(body) > 1:
                    ex = body[0] & 0x80
                    coded = (body[0] & 0x0F) in (1, 3) if ex else body[1] == 1
                    if coded:
                        return time.perf_counter() - t0
                pos += 11 + size + 4
    raise RuntimeError("stream ended before a video frame")


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = make_settings(Path(tmp), keepalive_interval=5.0, stream_idle_timeout=60.0)
        net = SimNetwork(f"127.0.0.1:{settings.sip_port}", devices=1, channels=args.channels, media=True,
                         keepalive=5.0, server_id=settings.sip_id, password=settings.sip_password, codec=args.codec)
        async with running_platform(settings, http=True) as platform:
            await net.start(wait_registered=20)
            cams = sorted(net.devices[0].channel_ids)

            await wait_channels(platform, cams, 30)
            base = f"http://127.0.0.1:{settings.http_port}"
            async with httpx.AsyncClient(base_url=base, timeout=20) as client:
                auth = await login(client)
                rtt = []
                for _ in range(50):
                    t = time.perf_counter()
                    await client.get("/healthz")
                    rtt.append(time.perf_counter() - t)
                first, play_only, second = [], [], []
                for cam in cams:
                    t = time.perf_counter()
                    r = await client.post(f"/api/v1/channels/{cam}/play", json={"transport": args.transport},
                                          headers=auth)
                    r.raise_for_status()
                    play_only.append(time.perf_counter() - t)
                    first.append(play_only[-1] + await first_video_tag(client, r.json()["urls"]["flv"]))
                    r = await client.post(f"/api/v1/channels/{cam}/play", json={}, headers=auth)
                    t = time.perf_counter()
                    second.append(time.perf_counter() - t + await first_video_tag(client, r.json()["urls"]["flv"]))
            await net.stop()
    base_ms = statistics.median(rtt) * 1000
    print(f"ttff codec={args.codec} transport={args.transport} channels={len(cams)}")
    print(f"  baseline HTTP round trip (GET /healthz): median {base_ms:.2f} ms")
    for name, vals in (("play API (INVITE..keyframe)", play_only), ("first viewer to first frame", first),
                       ("second viewer to first frame", second)):
        med = statistics.median(vals) * 1000
        print(f"  {name}: median {med:.1f} ms, max {max(vals) * 1000:.1f} ms, "
              f"= {med / base_ms:.1f}x the baseline round trip")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--channels", type=int, default=8)
    ap.add_argument("--transport", default="udp", choices=["udp", "tcp-passive", "tcp-active"])
    ap.add_argument("--codec", default="h264", choices=["h264", "h265"])
    asyncio.run(main(ap.parse_args()))
