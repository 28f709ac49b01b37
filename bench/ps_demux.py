"""Cost of the pure-Python PS demuxer per RTP packet, against a bare slicing loop in the same run.

Stream: the test video at 1280x720, 25 fps, ~4 Mbit/s H.264 (one keyframe a second), muxed as a
GB/T 28181 device does (pack header per frame, PSM before keyframes) and cut into 1400-byte RTP
packets. Figures (best of --repeat runs, each over the whole stream):

  baseline      `for p in packets: p[12:]`            (what any receiver pays to get the payload)
  parse_rtp     RTP header parse + payload view
  demux         PsDemuxer.feed on ready payload views  (the demuxer alone)
  rtp+demux     parse_rtp + PsDemuxer.feed(payload, marker)  (the ingest's per-packet work minus sockets)

Also the same for a length-0 video PES stream (devices that do not fill PES_packet_length), where
every packet is scanned with bytes.find. Usage: python bench/ps_demux.py [--seconds 10] [--repeat 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xueliang.media.frame import Frame
from xueliang.media.ps_demux import PsDemuxer
from xueliang.media.ps_mux import PsMuxer, pack_header, packetize
from xueliang.media.rtp import parse_rtp
from xueliang.media.testvideo import make_test_video


def _packets(frames: list[Frame], zero_length_pes: bool) -> list[bytes]:
    mux = PsMuxer("h264")
    seq = 0
    out: list[bytes] = []
    for f in frames:
        if zero_length_pes:
            ps = pack_header(f.dts, 10000) + (mux.system_header() + mux.psm() if f.keyframe else b"")
            ts = f.pts
            ps += (b"\x00\x00\x01\xe0\x00\x00\x80\x80\x05"
                   + bytes((0x21 | ((ts >> 29) & 0x0E), (ts >> 22) & 0xFF, ((ts >> 14) & 0xFE) | 1,
                            (ts >> 7) & 0xFF, ((ts << 1) & 0xFE) | 1)) + f.data)
        else:
            ps = mux.mux(f)
        pk, seq = packetize(ps, seq=seq, ts=f.pts, ssrc=0x1234, mtu=1400)
        out += pk
    return out


def _best(fn: Callable[[], int], repeat: int) -> tuple[float, int]:
    best = float("inf")
    result = 0
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t)
    return best, result


def run(seconds: float, repeat: int) -> None:
    t = time.perf_counter()
    frames = make_test_video("h264", 1280, 720, 25, seconds, bitrate=4_000_000)
    prep = time.perf_counter() - t
    size = sum(len(f.data) for f in frames)
    print(f"stream: {len(frames)} frames 1280x720@25 H.264, {size * 8 / seconds / 1e6:.2f} Mbit/s "
          f"(test video ready in {prep:.1f} s)")
    for label, zero in (("PES with length", False), ("PES length 0", True)):
        packets = _packets(frames, zero)
        n = len(packets)
        payloads = [parse_rtp(p) for p in packets]
        views = [(p.payload, p.marker) for p in payloads if p is not None]

        def baseline(packets: list[bytes] = packets) -> int:
            k = 0
            for p in packets:
                p[12:]
                k += 1
            return k

        def rtp_only(packets: list[bytes] = packets) -> int:
            k = 0
            for p in packets:
                if parse_rtp(p) is not None:
                    k += 1
            return k

        def demux_only(views: list[tuple[memoryview, bool]] = views) -> int:
            d = PsDemuxer()
            feed = d.feed
            k = 0
            for v, m in views:
                k += len(feed(v, m))
            return k + len(d.flush())

        def rtp_demux(packets: list[bytes] = packets) -> int:
            d = PsDemuxer()
            feed = d.feed
            k = 0
            for raw in packets:
                p = parse_rtp(raw)
                if p is not None:
                    k += len(feed(p.payload, p.marker))
            return k + len(d.flush())

        tb, _ = _best(baseline, repeat)
        tr, _ = _best(rtp_only, repeat)
        td, nf = _best(demux_only, repeat)
        trd, nf2 = _best(rtp_demux, repeat)
        assert nf == nf2 == len(frames), (nf, nf2, len(frames))
        us = 1e6 / n
        print(f"\n[{label}] {n} RTP packets ({n / seconds:.0f}/s per stream), {nf} frames out")
        print(f"  baseline slice loop : {tb * us:6.3f} us/packet")
        print(f"  parse_rtp           : {tr * us:6.3f} us/packet")
        print(f"  demux (feed only)   : {td * us:6.3f} us/packet   ({td / tb:.1f}x baseline; "
              f"{(td - tb) * us:.3f} us above it)")
        print(f"  parse_rtp + demux   : {trd * us:6.3f} us/packet   ({trd / tb:.1f}x baseline)")
        print(f"  => CPU per stream-second for rtp+demux: {trd / seconds * 1000:.3f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0, help="length of the test stream (default 10)")
    ap.add_argument("--repeat", type=int, default=5, help="runs per figure, best kept (default 5)")
    a = ap.parse_args()
    run(a.seconds, a.repeat)


if __name__ == "__main__":
    main()
