"""RtpIngest over real sockets on 127.0.0.1, fed by the simulator's MediaSender or raw sockets."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
from pathlib import Path

import av
import pytest

from xueliang.media.frame import Frame
from xueliang.media.ingest import RtpIngest
from xueliang.media.ps_mux import PsMuxer, packetize
from xueliang.media.rtp import frame_rfc4571, rtp_header
from xueliang.media.testvideo import make_test_video
from xueliang.sim.media import MediaSender

HOST = "127.0.0.1"


def _decode(frames: list[Frame], codec: str) -> int:
    ctx = av.CodecContext.create("hevc" if codec == "h265" else "h264", "r")
    n = 0
    for f in frames:
        if f.is_video:
            n += len(ctx.decode(av.Packet(f.data)))  # type: ignore[attr-defined]
    return n


async def _wait(cond, timeout: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while loop.time() < end:
        if cond():
            return True
        await asyncio.sleep(0.02)
    return cond()


def _sender(codec: str, transport: str, remote: tuple[str, int] | None, ssrc: int = 1234,
            audio: bool = False) -> MediaSender:
    return MediaSender(codec=codec, ssrc=ssrc, transport=transport, remote=remote, local_host=HOST,
                       width=320, height=180, seconds=2, fps=25, audio=audio)


def _tasks_now() -> set[asyncio.Task]:  # type: ignore[type-arg]
    return {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}


@pytest.mark.parametrize("codec", ["h264", "h265"])
@pytest.mark.parametrize("mode", ["udp", "tcp-passive", "tcp-active"])
async def test_stream_arrives_and_decodes(codec: str, mode: str) -> None:
    before = _tasks_now()
    got: list[Frame] = []
    closed: list[str] = []
    ing = RtpIngest(on_frame=got.append, on_close=closed.append, expected_ssrc=1234, reconnect_grace=0.2)
    if mode == "udp":
        await ing.start_udp(HOST, 0)
        sender = _sender(codec, "udp", (HOST, ing.port), audio=True)
        await sender.start()
    elif mode == "tcp-passive":       # we listen, the device connects (its "tcp-active")
        await ing.start_tcp_passive(HOST, 0)
        sender = _sender(codec, "tcp-active", (HOST, ing.port))
        await sender.start()
    else:                             # the device listens, we connect
        sender = _sender(codec, "tcp-passive", None)
        await sender.start()
        await ing.start_tcp_active(HOST, sender.local_port)
    try:
        assert await _wait(lambda: sum(f.is_video for f in got) >= 15)
    finally:
        await sender.stop()
    if mode != "udp":
        await _wait(lambda: bool(closed), 1.0)
    st = ing.stats()
    await ing.close()
    video = [f for f in got if f.is_video]
    assert video[0].keyframe and all(f.codec == codec for f in video)
    assert _decode(video, codec) >= len(video) - 1   # the last one may be cut by stop()
    assert st["packets"] > 0 and st["bytes"] > 0 and st["lost"] == 0 and st["ssrc_mismatch"] == 0
    assert st["first_packet_at"] is not None and st["video_codec"] == codec
    if mode == "udp":
        assert st["audio_codec"] == "pcma" and any(f.codec == "pcma" for f in got)
    else:
        assert closed and "closed" in closed[0]        # the peer went away
    await asyncio.sleep(0.05)
    assert _tasks_now() <= before                      # nothing left running


async def test_stats_rates() -> None:
    got: list[Frame] = []
    ing = RtpIngest(on_frame=got.append, expected_ssrc=1234)
    await ing.start_udp(HOST, 0)
    sender = _sender("h264", "udp", (HOST, ing.port))
    await sender.start()
    await asyncio.sleep(1.3)
    st = ing.stats()
    await sender.stop()
    await ing.close()
    assert 15 <= st["fps"] <= 35
    assert st["bitrate"] > 10_000
    assert 0 <= st["jitter"] < 50
    assert 0 <= st["idle"] < 0.5


@pytest.fixture(scope="module")
def ffmpeg_ps(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg not installed")
    out = tmp_path_factory.mktemp("ps") / "rec.mpg"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25", "-t", "2",
                    "-c:v", "libx264", "-preset", "veryfast", "-bf", "0", "-g", "25", "-pix_fmt", "yuv420p",
                    "-f", "mpeg", str(out)], check=True, timeout=60)
    return out


async def test_recorded_ps_file_over_udp(ffmpeg_ps: Path) -> None:
    """A PS recording cut into 1400-byte RTP packets (no frame alignment, no marker) as a DVR sends it."""
    data = ffmpeg_ps.read_bytes()
    got: list[Frame] = []
    ing = RtpIngest(on_frame=got.append)
    await ing.start_udp(HOST, 0)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        seq = 0
        for k, i in enumerate(range(0, len(data), 1388)):
            tx.sendto(rtp_header(seq, 3600 * (k // 4), 77) + data[i : i + 1388], (HOST, ing.port))
            seq += 1
            if k % 20 == 19:
                await asyncio.sleep(0.005)   # let the loop drain the socket like paced traffic would
        assert await _wait(lambda: ing.stats()["packets"] >= seq)
    finally:
        tx.close()
    await ing.close()   # flushes the last frame
    assert len(got) == 50
    assert _decode(got, "h264") == 50


async def test_garbage_wrong_ssrc_and_second_source() -> None:
    got: list[Frame] = []
    ing = RtpIngest(on_frame=got.append, expected_ssrc=1111)
    await ing.start_udp(HOST, 0)
    frames = make_test_video("h264", 320, 180, 25, 2)[:10]
    mux = PsMuxer("h264")
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        seq = 0
        for f in frames:
            tx.sendto(b"garbage that is not RTP", (HOST, ing.port))
            tx.sendto(b"\x80" * 5, (HOST, ing.port))
            pkts, seq = packetize(mux.mux(f), seq=seq, ts=f.pts, ssrc=2222)   # not the SSRC of y=
            for p in pkts:
                tx.sendto(p, (HOST, ing.port))
            tx.sendto(rtp_header(seq, f.pts, 3333) + b"\x00\x00\x01\xba junk", (HOST, ing.port))  # an intruder
            await asyncio.sleep(0.002)
        assert await _wait(lambda: len(got) >= 9)
    finally:
        tx.close()
    st = ing.stats()
    await ing.close()
    assert [f.data for f in got] == [f.data for f in frames]
    assert st["invalid"] == 20
    assert st["ssrc"] == 2222 and st["ssrc_mismatch"] == st["packets"] - st["foreign"]
    assert st["foreign"] == 10


async def test_expected_ssrc_wins_when_it_appears() -> None:
    got: list[Frame] = []
    ing = RtpIngest(on_frame=got.append, expected_ssrc=5)
    await ing.start_udp(HOST, 0)
    frames = make_test_video("h264", 320, 180, 25, 2)[:6]
    mux = PsMuxer("h264")
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        seq = 0
        for k, f in enumerate(frames):
            pkts, seq = packetize(mux.mux(f), seq=seq, ts=f.pts, ssrc=9 if k < 3 else 5)
            for p in pkts:
                tx.sendto(p, (HOST, ing.port))
            await asyncio.sleep(0.002)
        assert await _wait(lambda: len(got) >= 6)
    finally:
        tx.close()
    st = ing.stats()
    await ing.close()
    assert st["ssrc"] == 5 and ing.source_switches == 1


async def test_tcp_passive_peer_reconnects_within_grace() -> None:
    got: list[Frame] = []
    closed: list[str] = []
    ing = RtpIngest(on_frame=got.append, on_close=closed.append, reconnect_grace=1.0)
    await ing.start_tcp_passive(HOST, 0)
    s1 = _sender("h264", "tcp-active", (HOST, ing.port))
    await s1.start()
    assert await _wait(lambda: len(got) >= 5)
    await s1.stop()
    await asyncio.sleep(0.2)
    n = len(got)
    s2 = _sender("h264", "tcp-active", (HOST, ing.port))
    await s2.start()
    assert await _wait(lambda: len(got) >= n + 5)
    await s2.stop()
    assert closed == []                      # came back in time
    assert await _wait(lambda: bool(closed), 3.0)  # gone for good: reported once after the grace
    await ing.close()
    assert len(closed) == 1 and ing.connections == 2
    assert _decode(got, "h264") >= len(got) - 2


async def test_tcp_peer_closes_mid_frame_and_garbage_stream() -> None:
    got: list[Frame] = []
    closed: list[str] = []
    ing = RtpIngest(on_frame=got.append, on_close=closed.append, reconnect_grace=0)
    await ing.start_tcp_passive(HOST, 0)
    frames = make_test_video("h264", 320, 180, 25, 2)[:5]
    mux = PsMuxer("h264")
    seq = 0
    stream = b""
    for f in frames:
        pkts, seq = packetize(mux.mux(f), seq=seq, ts=f.pts, ssrc=1)
        stream += frame_rfc4571(pkts)
    _reader, writer = await asyncio.open_connection(HOST, ing.port)
    writer.write(stream[: len(stream) - 700])     # cut in the middle of the last frame's packets
    await writer.drain()
    assert await _wait(lambda: len(got) >= 4)
    writer.close()
    await writer.wait_closed()
    assert await _wait(lambda: bool(closed), 2.0)
    await ing.close()
    assert [f.data for f in got[:4]] == [f.data for f in frames[:4]]

    # a peer that sends garbage instead of RFC 4571 is disconnected, not crashed on
    closed.clear()
    ing2 = RtpIngest(on_frame=got.append, on_close=closed.append, reconnect_grace=0)
    await ing2.start_tcp_passive(HOST, 0)
    _reader, writer = await asyncio.open_connection(HOST, ing2.port)
    writer.write(b"\x00\x01GET / HTTP/1.1\r\n" * 40000)
    await writer.drain()
    assert await _wait(lambda: bool(closed), 3.0)
    assert ing2.framing_errors == 1
    writer.close()
    await ing2.close()


async def test_tcp_active_retries_then_fails_cleanly() -> None:
    ing = RtpIngest(on_frame=lambda f: None, connect_attempts=2, connect_interval=0.05)
    probe = socket.socket()
    probe.bind((HOST, 0))
    port = probe.getsockname()[1]
    probe.close()                                   # nothing listens there
    with pytest.raises(ConnectionError, match="after 2 attempts"):
        await ing.start_tcp_active(HOST, port)
    await ing.close()

    # the device starts listening a little after its 200 OK: the retry finds it
    got: list[Frame] = []
    sender = _sender("h264", "tcp-passive", None)
    ing = RtpIngest(on_frame=got.append, connect_attempts=10, connect_interval=0.1)

    async def late_start() -> None:
        await asyncio.sleep(0.25)
        await sender.start()

    sender._local_port = port
    task = asyncio.create_task(late_start())
    await ing.start_tcp_active(HOST, port)
    await task
    assert await _wait(lambda: len(got) >= 3)
    await sender.stop()
    await ing.close()


async def test_close_releases_ports() -> None:
    for start in ("udp", "tcp"):
        ing = RtpIngest(on_frame=lambda f: None)
        if start == "udp":
            await ing.start_udp(HOST, 0)
            kind = socket.SOCK_DGRAM
        else:
            await ing.start_tcp_passive(HOST, 0)
            kind = socket.SOCK_STREAM
        port = ing.port
        await ing.close()
        await ing.close()    # idempotent
        s = socket.socket(socket.AF_INET, kind)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((HOST, port))  # free again
        s.close()


@pytest.mark.parametrize("mode", ["udp", "tcp-passive", "tcp-active"])
def test_under_uvloop(mode: str) -> None:
    """Production runs on uvloop, whose transports are not asyncio.Transport subclasses."""
    uvloop = pytest.importorskip("uvloop")

    async def run() -> tuple[list[Frame], list[str]]:
        got: list[Frame] = []
        closed: list[str] = []
        ing = RtpIngest(on_frame=got.append, on_close=closed.append, reconnect_grace=0)
        if mode == "udp":
            await ing.start_udp(HOST, 0)
            sender = _sender("h264", "udp", (HOST, ing.port))
            await sender.start()
        elif mode == "tcp-passive":
            await ing.start_tcp_passive(HOST, 0)
            sender = _sender("h264", "tcp-active", (HOST, ing.port))
            await sender.start()
        else:
            sender = _sender("h264", "tcp-passive", None)
            await sender.start()
            await ing.start_tcp_active(HOST, sender.local_port)
        await _wait(lambda: len(got) >= 5)
        await sender.stop()
        if mode != "udp":
            await _wait(lambda: bool(closed), 2.0)
        await ing.close()
        return got, closed

    got, closed = uvloop.run(run())
    assert len(got) >= 5 and got[0].keyframe
    assert _decode(got, "h264") >= len(got) - 1
    assert bool(closed) == (mode != "udp")


async def test_udp_loss_and_reordering() -> None:
    """Reordered packets are put back in order; a lost packet costs its frame, never a garbage frame."""
    got: list[Frame] = []
    ing = RtpIngest(on_frame=got.append, reorder_window=8)
    await ing.start_udp(HOST, 0)
    frames = make_test_video("h264", 320, 180, 25, 2)[:30]
    mux = PsMuxer("h264")
    packets: list[bytes] = []
    seq = 0
    for f in frames:
        pk, seq = packetize(mux.mux(f), seq=seq, ts=f.pts, ssrc=1, mtu=400)
        packets += pk
    lost_at = len(packets) // 3
    order = list(range(len(packets)))
    del order[lost_at]                                       # one packet lost
    order[10], order[11] = order[11], order[10]              # two swapped
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for k, i in enumerate(order):
            tx.sendto(packets[i], (HOST, ing.port))
            if k % 10 == 9:
                await asyncio.sleep(0.002)
        assert await _wait(lambda: ing.stats()["packets"] >= len(order))
    finally:
        tx.close()
    await ing.close()
    st = ing.stats()
    assert st["lost"] == 1 and st["reordered"] >= 1
    by_pts = {f.pts: f for f in frames}
    assert all(f.data == by_pts[f.pts].data for f in got)   # only intact frames
    assert len(frames) - 2 <= len(got) < len(frames)
    assert st["demux"]["damaged_frames"] == 1
