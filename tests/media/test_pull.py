"""PullSource against local sources: MP4 and FLV files, a file over HTTP, and live HTTP-FLV
served by an `ffmpeg -listen 1` process on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import http.server
import io
import itertools
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import av
import pytest
from _frames import make_aac, make_frames

from xueliang.media import nal
from xueliang.media.flv import FlvMuxer
from xueliang.media.frame import Frame
from xueliang.media.hub import StreamHub
from xueliang.media.pull import PullSource, adts_header

FFMPEG = shutil.which("ffmpeg")


def _mp4(tmp: Path, codec: str, count: int = 50) -> Path:
    """Annex-B elementary stream remuxed by the ffmpeg CLI into MP4 (avcC/hvcC extradata)."""
    if FFMPEG is None:
        pytest.skip("ffmpeg binary not installed")
    frames = make_frames(codec, 320, 240, count=count, gop=25)
    raw = tmp / f"in.{codec}"
    raw.write_bytes(b"".join(f.data for f in frames))
    out = tmp / f"{codec}.mp4"
    subprocess.run([FFMPEG, "-hide_banner", "-loglevel", "error", "-y", "-r", "25", "-f",
                    "h264" if codec == "h264" else "hevc", "-i", str(raw), "-c", "copy", str(out)],
                   check=True, timeout=30)
    return out


async def _collect(src: PullSource, n: int, timeout: float = 15) -> list[Frame]:
    got: list[Frame] = []
    done = asyncio.Event()

    def on_frame(f: Frame) -> None:
        got.append(f)
        if len(got) >= n:
            done.set()

    src.on_frame = on_frame
    await src.start()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(done.wait(), timeout)
    await src.aclose()
    return got


def _check_video(frames: list[Frame], codec: str, count: int) -> None:
    video = [f for f in frames if f.is_video]
    assert len(video) >= count
    assert video[0].keyframe and nal.is_keyframe(codec, video[0].data)
    assert all(f.codec == codec and f.data.startswith((b"\x00\x00\x00\x01", b"\x00\x00\x01")) for f in video)
    ps = nal.extract_parameter_sets(codec, nal.split_annexb(video[0].data))
    assert ps.complete(codec)
    assert all(b.dts > a.dts for a, b in itertools.pairwise(video))
    # the Annex-B output decodes
    ctx = av.CodecContext.create("h264" if codec == "h264" else "hevc", "r")
    pics = [p for f in video[:count] for p in ctx.decode(av.Packet(f.data))]  # type: ignore[attr-defined]
    assert len(pics) >= count - 3 and pics[0].width == 320


@pytest.mark.parametrize("codec", ["h264", "h265"])
async def test_pull_mp4_file(tmp_path: Path, codec: str) -> None:
    path = _mp4(tmp_path, codec)
    src = PullSource(str(path), lambda f: None, realtime=False)
    got = await _collect(src, 50)
    _check_video(got, codec, 48)
    assert src.video_codec == codec and (src.width, src.height) == (320, 240)
    assert src.state in ("ended", "stopped")


async def test_pull_flv_with_aac_realtime_loop(tmp_path: Path) -> None:
    """Our own FLV (H.264 + AAC) read back by ffmpeg, paced in real time and looped."""
    video = make_frames("h264", 320, 240, count=25, gop=25)
    audio = make_aac(1.0, start_pts=video[0].dts)
    mux = FlvMuxer("h264", "aac")
    path = tmp_path / "a.flv"
    path.write_bytes(mux.header() + b"".join(mux.tag(f) for f in sorted(video + audio, key=lambda f: f.dts)))
    src = PullSource(str(path), lambda f: None, loop_file=True)
    t0 = asyncio.get_running_loop().time()
    got = await _collect(src, 80, timeout=10)
    elapsed = asyncio.get_running_loop().time() - t0
    vids = [f for f in got if f.is_video]
    auds = [f for f in got if f.codec == "aac"]
    assert len(vids) > 25  # looped past the end of the file
    assert elapsed > 0.8  # paced, not read at disk speed
    assert src.reconnects >= 1
    assert all(b.dts > a.dts for a, b in itertools.pairwise(vids))  # monotonic across the loop
    assert auds and auds[0].data[:2] == b"\xff\xf1"  # ADTS re-added
    decoded = list(av.open(io.BytesIO(b"".join(a.data for a in auds[:10])), format="aac").decode(audio=0))
    assert len(decoded) >= 9


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_dir(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    handler = functools.partial(_Quiet, directory=str(tmp_path))
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    yield tmp_path, srv.server_address[1]
    srv.shutdown()
    srv.server_close()


async def test_pull_http_flv_file_into_hub(http_dir: tuple[Path, int]) -> None:
    """A recorded FLV (made by the ffmpeg CLI) over plain HTTP feeds a hub."""
    root, port = http_dir
    mp4 = _mp4(root, "h264")
    subprocess.run([FFMPEG or "ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-i", str(mp4), "-c", "copy",
                    str(root / "rec.flv")], check=True, timeout=30)
    hub = StreamHub("pull")
    viewer = hub.add_viewer()
    src = PullSource(f"http://127.0.0.1:{port}/rec.flv", hub.push, realtime=False, reconnect_on_eof=False)
    await src.start()
    assert await hub.wait_keyframe(10)
    got = []
    while len(got) < 50:
        f = await asyncio.wait_for(viewer.get(), 10)
        assert f is not None
        got.append(f)
    for _ in range(100):  # the reader thread reaches EOF on its own (no reconnect on EOF)
        if src.state == "ended":
            break
        await asyncio.sleep(0.05)
    assert src.state == "ended"
    await src.aclose()
    _check_video(got, "h264", 48)
    assert hub.video_codec == "h264" and (hub.width, hub.height) == (320, 240)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_pull_live_http_flv_from_ffmpeg(tmp_path: Path) -> None:
    """ffmpeg serves a live HTTP-FLV stream (`-listen 1`); we pull it as a camera platform would."""
    path = _mp4(tmp_path, "h264", count=100)
    port = _free_port()
    proc = await asyncio.create_subprocess_exec(
        FFMPEG or "ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", str(path),
        "-c", "copy", "-f", "flv", "-listen", "1", f"http://127.0.0.1:{port}/live.flv",
        stdin=subprocess.DEVNULL)
    try:
        # ffmpeg needs a moment to listen: the source's reconnect/backoff covers that
        src = PullSource(f"http://127.0.0.1:{port}/live.flv", lambda f: None, backoff=0.2, max_backoff=0.5,
                         max_retries=20)
        got = await _collect(src, 30, timeout=15)
        _check_video(got, "h264", 25)
        assert src.stats()["frames"] >= 30
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()


async def test_pull_gives_up_after_retries() -> None:
    ended: list[str] = []
    port = _free_port()  # nothing listens there
    src = PullSource(f"http://127.0.0.1:{port}/x.flv", lambda f: None, on_end=ended.append, backoff=0.05,
                     max_retries=2, open_timeout=2)
    await src.start()
    for _ in range(100):
        if ended:
            break
        await asyncio.sleep(0.05)
    assert ended and ended[0].startswith("failed")
    assert src.reconnects == 2 and src.last_error


def test_adts_header_roundtrip() -> None:
    frames = make_aac(0.2, sample_rate=16000)
    raw = frames[0].data[7:]
    asc = bytes((0x14, 0x08))  # AAC LC, 16 kHz, mono
    assert adts_header(asc, len(raw)) == frames[0].data[:7]  # byte-identical to ffmpeg's ADTS muxer


async def test_network_source_reconnects_at_end_of_stream(http_dir: tuple[Path, int]) -> None:
    """A live source whose server closes the stream is pulled again, timestamps still monotonic."""
    root, port = http_dir
    mp4 = _mp4(root, "h264", count=25)
    subprocess.run([FFMPEG or "ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-i", str(mp4), "-c", "copy",
                    str(root / "short.flv")], check=True, timeout=30)
    src = PullSource(f"http://127.0.0.1:{port}/short.flv", lambda f: None, realtime=False, backoff=0.05)
    got = await _collect(src, 60, timeout=10)
    vids = [f for f in got if f.is_video]
    assert len(vids) >= 60 and src.reconnects >= 2
    assert all(b.dts > a.dts for a, b in itertools.pairwise(vids))
