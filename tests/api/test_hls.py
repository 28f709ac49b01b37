"""HLS (fMP4 segments) over a real socket: playlist, init + segments decoded with PyAV, the live
window moving, play tokens, idle stop.

The frames are real H.264 (PyAV) pushed into the real MediaService's StreamHub at 4x real time
(support.py), so the 1 s GOPs become segments every 0.25 s of wall time.
"""

from __future__ import annotations

import asyncio
import io
import re
import time

import av
import httpx

from .support import CHANNELS, ApiTestPlatform

H = dict[str, str]
CH = CHANNELS[0]


async def _play(client: httpx.AsyncClient, headers: H, host: str, body: dict | None = None) -> dict:
    r = await client.post(f"/api/v1/channels/{CH}/play", json=body, headers={**headers, "Host": host})
    assert r.status_code == 200, r.text
    return r.json()


def parse_playlist(text: str) -> dict:
    """The tags of a live media playlist and its segments (uri, duration)."""
    lines = text.strip().splitlines()
    assert lines[0] == "#EXTM3U"
    tags = {}
    segments, maps = [], []
    dur = None
    for line in lines[1:]:
        if line.startswith("#EXTINF:"):
            dur = float(line[8:].rstrip(","))
        elif line.startswith("#EXT-X-MAP:"):
            m = re.search(r'URI="([^"]+)"', line)
            assert m, line
            maps.append(m.group(1))
        elif line.startswith("#"):
            k, _, v = line.partition(":")
            tags[k] = v
        else:
            assert dur is not None, "segment URI without EXTINF"
            segments.append((line, dur))
            dur = None
    return {"tags": tags, "segments": segments, "maps": maps}


def decode_mp4(data: bytes) -> list[tuple[int, int]]:
    with av.open(io.BytesIO(data), format="mp4") as c:
        return [(f.width, f.height) for f in c.decode(video=0)]


async def test_hls_playlist_segments_decode_and_advance(client: httpx.AsyncClient, viewer: H, server: str,
                                                        platform: ApiTestPlatform) -> None:
    p = await _play(client, viewer, server)
    sid, tok = p["stream_id"], p["token"]
    url = p["urls"]["hls"]
    assert url == f"http://{server}/api/v1/media/{sid}/index.m3u8?token={tok}"
    base = url.split("index.m3u8")[0]
    async with httpx.AsyncClient(timeout=15) as http:
        t0 = time.perf_counter()
        r = await http.get(url)
        first = time.perf_counter() - t0
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("application/vnd.apple.mpegurl")
        pl = parse_playlist(r.text)
        tags = pl["tags"]
        assert tags["#EXT-X-VERSION"] == "7" and int(tags["#EXT-X-TARGETDURATION"]) >= 1
        assert "#EXT-X-PROGRAM-DATE-TIME" in tags
        assert len(pl["segments"]) >= 2 and pl["maps"]
        seq0 = int(tags["#EXT-X-MEDIA-SEQUENCE"])
        # every URI carries the token
        assert all(f"token={tok}" in u for u, _ in pl["segments"]) and f"token={tok}" in pl["maps"][0]
        # GOP of 25 frames at 25 fps = 1.000 s per segment
        assert all(abs(d - 1.0) < 0.05 for _, d in pl["segments"]), pl["segments"]
        init = (await http.get(base + pl["maps"][0])).content
        assert init[4:8] == b"ftyp"
        seg_uri = pl["segments"][-1][0]
        seg = await http.get(base + seg_uri)
        assert seg.status_code == 200 and seg.content[4:8] == b"moof"
        sizes = decode_mp4(init + seg.content)
        assert len(sizes) >= 20 and set(sizes) == {(320, 240)}, sizes[:3]
        # several consecutive segments also decode as one stream
        allsegs = b"".join([(await http.get(base + u)).content for u, _ in pl["segments"]])
        assert len(decode_mp4(init + allsegs)) >= 20 * len(pl["segments"])
        # the live window moves on
        deadline = time.monotonic() + 10
        seq1 = seq0
        while time.monotonic() < deadline and seq1 < seq0 + 2:
            await asyncio.sleep(0.2)
            r2 = await http.get(url)
            assert r2.status_code == 200
            seq1 = int(parse_playlist(r2.text)["tags"]["#EXT-X-MEDIA-SEQUENCE"])
        assert seq1 >= seq0 + 2, (seq0, seq1)
        # a segment that left the window is gone
        assert (await http.get(base + f"seg{seq0}.m4s?token={tok}")).status_code == 404
    seg_state = platform.media.hls.get(sid)
    assert seg_state is not None and seg_state.hub is platform.media.hub(sid)
    assert seg_state.hub.viewers >= 1  # the segmenter is a viewer: the idle reaper leaves the stream alone
    print(f"HLS first playlist after {first * 1000:.0f} ms; window {seg_state.stats()['durations']}")


async def test_hls_tokens(client: httpx.AsyncClient, viewer: H, server: str) -> None:
    p = await _play(client, viewer, server)
    sid = p["stream_id"]
    url = p["urls"]["hls"]
    bare = url.split("?")[0]
    base = bare.rsplit("/", 1)[0]
    async with httpx.AsyncClient(timeout=15) as http:
        assert (await http.get(bare)).status_code == 403
        assert (await http.get(bare + "?token=AAAA")).status_code == 403
        # a token of another stream does not open this one
        other = await client.post(f"/api/v1/channels/{CHANNELS[2]}/play", headers=viewer)
        assert other.status_code == 200
        assert (await http.get(f"{bare}?token={other.json()['token']}")).status_code == 403
        assert (await http.get(url)).status_code == 200
        assert (await http.get(f"{base}/init.mp4")).status_code == 403
        assert (await http.get(f"{base}/seg0.m4s?token=AAAA")).status_code == 403
        assert (await http.get(f"{base}/init.mp4?token={p['token']}")).status_code == 200
        # unknown stream with a valid-looking request
        assert (await http.get(f"http://{server}/api/v1/media/nope/index.m3u8?token={p['token']}")).status_code == 403
    assert sid


async def test_hls_idle_stop(client: httpx.AsyncClient, viewer: H, server: str, platform: ApiTestPlatform) -> None:
    platform.media.hls.idle_timeout = 1.0
    p = await _play(client, viewer, server)
    sid = p["stream_id"]
    hub = platform.media.hub(sid)
    before = hub.viewers
    async with httpx.AsyncClient(timeout=15) as http:
        assert (await http.get(p["urls"]["hls"])).status_code == 200
        seg = platform.media.hls.get(sid)
        assert seg is not None and hub.viewers == before + 1
        # polling keeps it running past the idle timeout
        for _ in range(8):
            await asyncio.sleep(0.25)
            assert (await http.get(p["urls"]["hls"])).status_code == 200
        assert platform.media.hls.get(sid) is seg
        # silence stops it and releases its hub viewer
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and platform.media.hls.get(sid) is not None:
            await asyncio.sleep(0.1)
        assert platform.media.hls.get(sid) is None and seg.closed and seg.reason.startswith("idle")
        assert hub.viewers == before
        # a later request starts a fresh one (the old token is checked again: still valid)
        assert (await http.get(p["urls"]["hls"])).status_code == 200
        assert platform.media.hls.get(sid) not in (None, seg)


async def test_hls_stops_with_stream(client: httpx.AsyncClient, viewer: H, operator: H, server: str,
                                     platform: ApiTestPlatform) -> None:
    p = await _play(client, viewer, server)
    async with httpx.AsyncClient(timeout=15) as http:
        assert (await http.get(p["urls"]["hls"])).status_code == 200
        seg = platform.media.hls.get(p["stream_id"])
        assert seg is not None
        assert (await client.delete(f"/api/v1/streams/{p['stream_id']}", headers=operator)).status_code == 204
        assert seg.closed and platform.media.hls.get(p["stream_id"]) is None
        assert (await http.get(p["urls"]["hls"])).status_code == 404
