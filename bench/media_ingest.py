"""N concurrent 4 Mbit/s PS/RTP streams: xueliang's ingest vs one ffmpeg remux process per stream.

Phase 1 (xueliang): a sender *process* replays N copies of a 1280x720 25 fps ~4 Mbit/s H.264 PS/RTP
stream over UDP loopback, paced per frame; this process receives them with N `RtpIngest` (one UDP
socket each, uvloop when installed) feeding `PsDemuxer`, and optionally builds an FLV tag per frame
with `xueliang.media.flv.FlvMuxer` (`--flv`, on by default when the module exists) so the work is
comparable to a remux. CPU = this process's CPU time while the streams run.

Phase 2 (baseline, same run): N `ffmpeg -re -f mpeg -i FILE -c copy -f flv -` processes on the same
PS stream, output discarded; CPU and peak RSS from each child's rusage.

Printed: CPU ms per stream-second for both, their ratio, packets lost. Usage:
    python bench/media_ingest.py [--streams 8] [--seconds 10] [--no-flv] [--no-ffmpeg]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xueliang.media.frame import Frame
from xueliang.media.ingest import RtpIngest
from xueliang.media.ps_mux import PsMuxer, packetize
from xueliang.media.testvideo import make_test_video


def _stream(frames: list[Frame]) -> tuple[bytes, list[list[bytes]]]:
    """The PS file and its RTP packets grouped per frame."""
    mux = PsMuxer("h264")
    seq = 0
    ps_all: list[bytes] = []
    per_frame: list[list[bytes]] = []
    for f in frames:
        ps = mux.mux(f)
        ps_all.append(ps)
        pk, seq = packetize(ps, seq=seq, ts=f.pts, ssrc=0x2818, mtu=1400)
        per_frame.append(pk)
    return b"".join(ps_all), per_frame


def _rss_mb() -> float:
    """Current resident set size (Linux), for memory per stream."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _sender(ports: list[int], per_frame: list[list[bytes]], fps: int, seconds: float, go: Any,
            tcp: bool = False) -> None:
    """Child process: paced replay, all streams' packets of frame k sent at t0 + k/fps.

    TCP: one connection per stream (the device as TCP client, the GB default), RFC 4571 framing,
    one write per frame.
    """
    if tcp:
        framed = [b"".join(len(p).to_bytes(2, "big") + p for p in pk) for pk in per_frame]
        conns = [socket.create_connection(("127.0.0.1", port)) for port in ports]
        go.wait()
        t0 = time.monotonic()
        for k in range(int(seconds * fps)):
            delay = t0 + k / fps - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            chunk = framed[k % len(framed)]
            for c in conns:
                c.sendall(chunk)
        for c in conns:
            c.close()
        return
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in ports]
    for s in socks:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * 1024 * 1024)
    go.wait()
    t0 = time.monotonic()
    total = int(seconds * fps)
    for k in range(total):
        due = t0 + k / fps
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        pkts = per_frame[k % len(per_frame)]
        for s, port in zip(socks, ports, strict=True):
            addr = ("127.0.0.1", port)
            for p in pkts:
                s.sendto(p, addr)
    for s in socks:
        s.close()


async def _xueliang(n: int, per_frame: list[list[bytes]], fps: int, seconds: float, flv: bool,
                    tcp: bool = False) -> dict[str, float]:
    flv_cls = None
    if flv:
        try:
            from xueliang.media.flv import FlvMuxer
            flv_cls = FlvMuxer
        except Exception as exc:  # the FLV room may not be there yet
            print(f"  (FLV muxer unavailable: {exc}; ingest + demux only)")
    counts = [0] * n
    out_bytes = [0]
    rss_start = _rss_mb()
    ingests = []
    for i in range(n):
        if flv_cls is not None:
            muxer = flv_cls("h264", None)

            def on_frame(f: Frame, i: int = i, muxer=muxer) -> None:  # type: ignore[no-untyped-def]
                counts[i] += 1
                out_bytes[0] += len(muxer.tag(f))
        else:
            def on_frame(f: Frame, i: int = i) -> None:  # type: ignore[misc]
                counts[i] += 1
        ing = RtpIngest(on_frame=on_frame)
        if tcp:
            await ing.start_tcp_passive("127.0.0.1", 0)
        else:
            await ing.start_udp("127.0.0.1", 0)
        ingests.append(ing)
    ctx = mp.get_context("spawn")
    go = ctx.Event()
    proc = ctx.Process(target=_sender, args=([g.port for g in ingests], per_frame, fps, seconds, go, tcp))
    proc.start()
    await asyncio.sleep(1.0)  # let the child import and open its sockets
    cpu0 = time.process_time()
    t0 = time.monotonic()
    go.set()
    expected = int(seconds * fps)
    while proc.is_alive() and time.monotonic() - t0 < seconds + 10:
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.3)  # drain
    cpu = time.process_time() - cpu0
    wall = time.monotonic() - t0
    proc.join(5)
    stats = [g.stats() for g in ingests]
    rss_end = _rss_mb()
    for g in ingests:
        await g.close()
    packets = sum(s["packets"] for s in stats)
    sent = n * sum(len(per_frame[k % len(per_frame)]) for k in range(expected))
    return {
        "cpu_s": cpu, "wall_s": wall, "frames": sum(counts), "expected_frames": n * expected,
        "packets": packets, "sent": sent, "lost": sent - packets,
        "rss_growth_mb": rss_end - rss_start,
        "flv": float(flv_cls is not None), "flv_bytes": out_bytes[0],
    }


def _ffmpeg(n: int, ps_file: Path, seconds: float) -> dict[str, float]:
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-re", "-f", "mpeg", "-i", str(ps_file), "-t", str(seconds),
           "-c", "copy", "-f", "flv", "-"]
    t0 = time.monotonic()
    procs = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in range(n)]
    cpu = 0.0
    rss = []
    for p in procs:
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        cpu += ru.ru_utime + ru.ru_stime
        rss.append(ru.ru_maxrss / 1024)
        err = p.stderr.read().decode(errors="replace") if p.stderr else ""
        if p.returncode != 0:
            print(f"  ffmpeg exited {p.returncode}: {err.strip()[:300]}")
    return {"cpu_s": cpu, "wall_s": time.monotonic() - t0, "rss_mb": sum(rss) / len(rss)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--streams", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--no-flv", action="store_true", help="ingest + demux only, no FLV tags")
    ap.add_argument("--no-ffmpeg", action="store_true", help="skip the ffmpeg baseline")
    ap.add_argument("--tcp", action="store_true", help="RTP over TCP (RFC 4571), device connects, instead of UDP")
    a = ap.parse_args()
    try:
        import uvloop
        loop_name = "uvloop"
    except ImportError:
        uvloop = None  # type: ignore[assignment]
        loop_name = "asyncio"
    fps = 25
    frames = make_test_video("h264", 1280, 720, fps, 10, bitrate=4_000_000)
    ps, per_frame = _stream(frames)
    mbps = len(ps) * 8 / (len(frames) / fps) / 1e6
    pps = sum(len(p) for p in per_frame) / (len(frames) / fps)
    print(f"{a.streams} streams x {mbps:.2f} Mbit/s PS/RTP (720p25 H.264, {pps:.0f} packets/s each), "
          f"{a.seconds:.0f} s, {'TCP' if a.tcp else 'UDP'}, {loop_name}, {os.cpu_count()} CPUs")

    runner = uvloop.run if uvloop is not None else asyncio.run
    x = runner(_xueliang(a.streams, per_frame, fps, a.seconds, not a.no_flv, a.tcp))
    stream_s = a.streams * a.seconds
    x_ms = x["cpu_s"] * 1000 / stream_s
    what = "ingest+demux+FLV tags" if x["flv"] else "ingest+demux"
    print(f"xueliang ({what}): CPU {x['cpu_s']:.2f} s over {x['wall_s']:.1f} s -> {x_ms:.2f} ms per stream-second "
          f"({x_ms / mbps:.2f} ms per Mbit/s), frames {x['frames']:.0f}/{x['expected_frames']:.0f}, "
          f"packets lost {x['lost']:.0f}/{x['sent']:.0f}, RSS growth {x['rss_growth_mb']:.1f} MB "
          f"({x['rss_growth_mb'] / a.streams:.2f} MB per stream)")
    pkt_us = x["cpu_s"] * 1e6 / max(1, x["packets"])
    print(f"  = {pkt_us:.2f} us CPU per received RTP packet, all included (socket, loop, RTP, demux, callbacks)")
    if a.no_ffmpeg or shutil.which("ffmpeg") is None:
        return
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "stream.mpg"
        # repeat the 10 s clip if a longer run is asked for
        reps = max(1, int(a.seconds // 10) + 1)
        path.write_bytes(ps * reps)
        f = _ffmpeg(a.streams, path, a.seconds)
        short = _ffmpeg(a.streams, path, 1.0)   # start-up and probing cost, to get the steady state too
    f_ms = f["cpu_s"] * 1000 / stream_s
    steady_ms = max(0.0, f["cpu_s"] - short["cpu_s"]) * 1000 / (a.streams * max(0.1, a.seconds - 1.0))
    print(f"ffmpeg -re -f mpeg -c copy -f flv, one process per stream: CPU {f['cpu_s']:.2f} s over {f['wall_s']:.1f} s "
          f"-> {f_ms:.2f} ms per stream-second ({f_ms / mbps:.2f} ms per Mbit/s), {f['rss_mb']:.0f} MB RSS each")
    print(f"  steady state without start-up (10 s run minus a 1 s run): {steady_ms:.2f} ms per stream-second")
    print(f"ratio xueliang / ffmpeg CPU per stream: {x_ms / f_ms:.2f} whole run, "
          f"{x_ms / steady_ms if steady_ms else float('inf'):.2f} against ffmpeg's steady state "
          f"({'xueliang cheaper' if x_ms < min(f_ms, steady_ms or f_ms) else 'see figures'})")


if __name__ == "__main__":
    main()
