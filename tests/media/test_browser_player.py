"""Live HTTP-FLV from a StreamHub played by mpegts.js in headless Chromium.

A tiny asyncio-streams HTTP server on 127.0.0.1 serves the page, the mpegts.js player and a live
stream built the way the platform builds it (hub viewer -> FlvMuxer, one write per batch), fed
in real time with encoded test frames. The test passes only when the browser really decodes:
`currentTime` moves past 1 s and the decoder reports more than 10 frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from _frames import make_aac, make_frames, make_pcma

from xueliang.media.flv import FlvMuxer
from xueliang.media.fmp4 import Fmp4Muxer
from xueliang.media.frame import Frame
from xueliang.media.hub import StreamHub
from xueliang.media.transcode import Transcoder

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

PAGE = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>xueliang player test</title></head>
<body>
<video id="v" muted autoplay playsinline width="640" height="360"></video>
<script src="/mpegts.js"></script>
<script>
window.errors = [];
window.hevcMse = window.MediaSource ? MediaSource.isTypeSupported('video/mp4; codecs="hvc1.1.6.L93.B0"') : false;
const player = mpegts.createPlayer(
  {type: "flv", isLive: true, hasAudio: HAS_AUDIO, url: location.origin + "/live.flv"},
  {enableWorker: false, lazyLoad: false});
player.on(mpegts.Events.ERROR, (...a) => window.errors.push(a.map(String).join(" ")));
player.attachMediaElement(document.getElementById("v"));
player.load();
Promise.resolve(player.play()).catch(e => window.errors.push("play: " + e));
</script></body></html>
"""


@pytest.fixture(scope="session")
def mpegts_js() -> Path:
    """mpegts.js from the console's node_modules, else installed next to this test with npm."""
    for p in (REPO / "web/node_modules/mpegts.js/dist/mpegts.js",
              HERE / "browser/node_modules/mpegts.js/dist/mpegts.js"):
        if p.is_file():
            return p
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm not installed and mpegts.js not present")
    subprocess.run([npm, "install", "--no-audit", "--no-fund", "--prefix", str(HERE / "browser")],
                   check=True, timeout=300, capture_output=True)
    p = HERE / "browser/node_modules/mpegts.js/dist/mpegts.js"
    assert p.is_file()
    return p


@pytest.fixture(scope="session")
def chromium() -> Iterator[str]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} not installed")
    yield CHROMIUM


async def _feed(hub: StreamHub, frames: list[Frame], push: object = None, audio: list[Frame] | None = None) -> None:
    """Push `frames` (and `audio`, interleaved by time) in a loop in real time, timestamps
    continuing across loops."""
    sink = push if callable(push) else hub.push
    step = frames[1].dts - frames[0].dts
    span = frames[-1].dts - frames[0].dts + step
    base = frames[0].dts
    clip = sorted(frames + [a for a in (audio or []) if a.dts - base < span], key=lambda f: f.dts)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    k = 0
    while True:
        off = k * span
        for f in clip:
            await asyncio.sleep(max(0.0, t0 + (f.dts + off - base) / 90000 - loop.time()))
            sink(Frame(f.codec, f.pts + off, f.dts + off, f.data, f.keyframe))
        k += 1


async def _serve_flv(hub: StreamHub, writer: asyncio.StreamWriter) -> None:
    assert hub.video_codec is not None
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: video/x-flv\r\nCache-Control: no-cache\r\n"
                 b"Connection: close\r\n\r\n")
    mux = FlvMuxer(hub.video_codec, hub.audio_codec)  # as the API does: audio kept in the FLV
    writer.write(mux.header(width=hub.width, height=hub.height))
    viewer = hub.add_viewer()
    try:
        while (batch := await viewer.get_batch()) is not None:
            writer.write(b"".join([mux.tag(f) for f in batch]))
            await writer.drain()
    finally:
        viewer.close()


@contextlib.asynccontextmanager
async def _server(hub: StreamHub, script: Path, extra: dict[str, tuple[bytes, bytes]] | None = None,
                  has_audio: bool = False) -> AsyncIterator[int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            path = head.split(b" ", 2)[1].decode()
            if path == "/":
                body = PAGE.replace(b"HAS_AUDIO", b"true" if has_audio else b"false")
                ctype = b"text/html; charset=utf-8"
            elif path == "/mpegts.js":
                body, ctype = script.read_bytes(), b"application/javascript"
            elif extra and path in extra:
                body, ctype = extra[path]
            elif path.startswith("/live.flv"):
                await _serve_flv(hub, writer)
                return
            else:
                body, ctype = b"not found", b"text/plain"
            status = b"200 OK" if body != b"not found" else b"404 Not Found"
            writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Type: " + ctype + b"\r\nContent-Length: "
                         + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()


MSE_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"></head><body>
<video id="v" muted autoplay playsinline></video>
<script>
window.errors = [];
const MIME = '%s';
window.typeSupported = MediaSource.isTypeSupported(MIME);
const v = document.getElementById("v");
const ms = new MediaSource();
v.src = URL.createObjectURL(ms);
ms.addEventListener("sourceopen", async () => {
  try {
    const sb = ms.addSourceBuffer(MIME);
    const data = await (await fetch("/clip.mp4")).arrayBuffer();
    sb.addEventListener("updateend", () => { ms.endOfStream(); v.play().catch(e => window.errors.push("play " + e)); });
    sb.addEventListener("error", () => window.errors.push("sourcebuffer error"));
    sb.appendBuffer(data);
  } catch (e) { window.errors.push(String(e)); }
});
v.addEventListener("error", () => window.errors.push("video error " + (v.error && v.error.message)));
</script></body></html>
"""


async def test_fmp4_fragments_play_in_chromium_mse(mpegts_js: Path, chromium: str) -> None:
    """Init segment + one moof/mdat per frame (the WebSocket fMP4 mode) through MediaSource."""
    frames = make_frames("h264", 640, 360, count=100, gop=25)
    mux = Fmp4Muxer("h264", 640, 360)
    mux.update_parameter_sets(frames[0])
    clip = mux.init_segment() + b"".join(
        mux.fragment([f], next_dts=frames[i + 1].dts if i + 1 < len(frames) else None)
        for i, f in enumerate(frames))
    page = (MSE_PAGE % mux.mime_type.replace("'", "")).encode()
    hub = StreamHub("unused")
    extra = {"/mse": (page, b"text/html; charset=utf-8"), "/clip.mp4": (clip, b"video/mp4")}
    async with _server(hub, mpegts_js, extra) as port:
        state = await _play(f"http://127.0.0.1:{port}/mse", chromium)
    assert state["typeSupported"] is True, state  # our RFC 6381 codec string is accepted
    assert not state["errors"], state
    assert float(state["t"]) > 1.0, state  # type: ignore[arg-type]
    assert int(state["frames"]) > 10, state  # type: ignore[arg-type]
    assert (state["w"], state["h"]) == (640, 360)


async def _play(url: str, chromium: str) -> dict[str, object]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=chromium,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--autoplay-policy=no-user-gesture-required"])
        try:
            page = await browser.new_page()
            await page.goto(url)
            state: dict[str, object] = {}
            for _ in range(100):  # at most ~20 s
                state = await page.evaluate(
                    """() => { const v = document.getElementById('v');
                       const q = v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality() : {};
                       return {t: v.currentTime, frames: q.totalVideoFrames || 0, w: v.videoWidth,
                               h: v.videoHeight, errors: window.errors, hevcMse: window.hevcMse,
                               typeSupported: window.typeSupported}; }""")
                if float(state["t"]) > 1.5 and int(state["frames"]) > 10:  # type: ignore[arg-type]
                    break
                await asyncio.sleep(0.2)
            return state
        finally:
            await browser.close()


@pytest.mark.parametrize("audio", [None, "pcma", "aac"])
async def test_hub_http_flv_plays_in_chromium(mpegts_js: Path, chromium: str, audio: str | None) -> None:
    """H.264 alone, with G.711 (mpegts.js cannot decode G.711: the page must say hasAudio:false, as
    the console does, else nothing plays) and with AAC (played with its audio)."""
    frames = make_frames("h264", 640, 360, count=100, gop=25)
    tracks = None
    if audio == "pcma":
        tracks = make_pcma(4.0, start_pts=frames[0].dts)
    elif audio == "aac":
        tracks = make_aac(4.0, start_pts=frames[0].dts)
    hub = StreamHub("browser")
    feeder = asyncio.create_task(_feed(hub, frames, audio=tracks))
    try:
        assert await hub.wait_keyframe(5)
        await asyncio.sleep(0.1)  # let the first audio frame name the audio codec
        assert hub.audio_codec == audio
        async with _server(hub, mpegts_js, has_audio=audio == "aac") as port:
            state = await _play(f"http://127.0.0.1:{port}/", chromium)
    finally:
        feeder.cancel()
        hub.close()
    assert not state["errors"], state
    assert float(state["t"]) > 1.0, state  # type: ignore[arg-type]
    assert int(state["frames"]) > 10, state  # type: ignore[arg-type]
    assert (state["w"], state["h"]) == (640, 360)


async def test_h265_source_transcoded_plays_in_chromium(mpegts_js: Path, chromium: str) -> None:
    """The fallback for Chromium without HEVC in MSE: H.265 hub -> Transcoder -> H.264 hub."""
    frames = make_frames("h265", 640, 360, count=100, gop=25)
    src_hub = StreamHub("h265")
    out_hub = StreamHub("h265-as-h264")
    tc = Transcoder(out_hub.push)
    feeder = asyncio.create_task(_feed(src_hub, frames, push=lambda f: (src_hub.push(f), tc.push(f))))
    try:
        assert await out_hub.wait_keyframe(10)
        async with _server(out_hub, mpegts_js) as port:
            state = await _play(f"http://127.0.0.1:{port}/", chromium)
    finally:
        feeder.cancel()
        await tc.aclose()
        src_hub.close()
        out_hub.close()
    assert not state["errors"], state
    assert float(state["t"]) > 1.0, state  # type: ignore[arg-type]
    assert int(state["frames"]) > 10, state  # type: ignore[arg-type]
    print("Chromium MediaSource HEVC support:", state["hevcMse"])
