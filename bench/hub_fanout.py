"""CPU per extra viewer: StreamHub fan-out + one FLV tag per frame per viewer, same process.

A 1280x720 25 fps ~4 Mbit/s H.264 stream (`make_test_video`, cached) is pushed into a StreamHub
as fast as the CPU allows (no pacing: we measure CPU, not wall time). Every viewer does what the
HTTP-FLV endpoint does per loop turn: `await viewer.get_batch()` and build its FLV tags with its own
`FlvMuxer` and one `bytes.join` (the socket write is left out: it is the kernel's copy, the same
for any server). Baseline, same run: the single-viewer cost. Printed per viewer count: CPU ms per
stream-second, the marginal cost of each extra viewer, and that cost as a ratio of the
single-viewer cost.

    .venv/bin/python bench/hub_fanout.py [--seconds 20] [--viewers 1,2,8,32,128] [--codec h264]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xueliang.media.flv import FlvMuxer
from xueliang.media.frame import Frame
from xueliang.media.hub import StreamHub
from xueliang.media.testvideo import make_test_video


def _stream(frames: list[Frame], seconds: float, fps: int) -> list[Frame]:
    """`seconds` of stream from the looped clip, timestamps continuing."""
    need = int(seconds * fps)
    step = 90000 // fps
    out = []
    for i in range(need):
        f = frames[i % len(frames)]
        off = (i // len(frames)) * len(frames) * step
        out.append(Frame(f.codec, f.pts + off, f.dts + off, f.data, f.keyframe))
    return out


async def run(stream: list[Frame], n_viewers: int, codec: str) -> tuple[float, int]:
    """CPU seconds to push `stream` through a hub to `n_viewers` FLV viewers; bytes out."""
    hub = StreamHub("bench", max_viewer_buffer=64 * 1024 * 1024)
    viewers = [(hub.add_viewer(), FlvMuxer(codec, None)) for _ in range(n_viewers)]
    out_bytes = 0
    for _, m in viewers:
        out_bytes += len(m.header(width=1280, height=720))
    # fresh Frame objects each run, as from a live ingest (the FLV conversion cache is per object)
    stream = [Frame(f.codec, f.pts, f.dts, f.data, f.keyframe) for f in stream]
    t0 = time.process_time()
    for f in stream:
        hub.push(f)
        for v, m in viewers:
            batch = await v.get_batch()
            assert batch is not None
            out_bytes += len(b"".join([m.tag(x) for x in batch]))
    cpu = time.process_time() - t0
    hub.close()
    return cpu, out_bytes


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=20.0, help="stream-seconds per measurement")
    ap.add_argument("--viewers", default="1,2,8,32,128")
    ap.add_argument("--codec", default="h264", choices=["h264", "h265"])
    ap.add_argument("--bitrate", type=int, default=4_000_000)
    ap.add_argument("--repeat", type=int, default=3, help="best of N runs per viewer count")
    args = ap.parse_args()
    fps = 25
    clip = make_test_video(args.codec, 1280, 720, fps, seconds=4, bitrate=args.bitrate)
    stream = _stream(clip, args.seconds, fps)
    mbit = sum(len(f.data) for f in stream) * 8 / args.seconds / 1e6
    counts = sorted({int(x) for x in args.viewers.split(",")} | {1})
    print(f"stream: {args.codec} 1280x720 {fps} fps, {mbit:.2f} Mbit/s, {args.seconds:.0f} stream-seconds, "
          f"best of {args.repeat}")
    print(f"{'viewers':>8} {'ms CPU/stream-s':>16} {'µs/viewer/frame':>16} {'extra viewer ms/s':>18} "
          f"{'ratio vs 1 viewer':>18} {'out MB':>8}")
    base = None
    for n in counts:
        best = min([await run(stream, n, args.codec) for _ in range(args.repeat)], key=lambda r: r[0])
        cpu, out = best
        per_s = cpu / args.seconds * 1000
        if base is None:
            base = per_s
        per_frame_viewer = cpu / len(stream) / n * 1e6
        extra = (per_s - base) / (n - 1) if n > 1 else float("nan")
        ratio = extra / base if n > 1 else float("nan")
        print(f"{n:>8} {per_s:>16.3f} {per_frame_viewer:>16.2f} {extra:>18.4f} {ratio:>18.3f} {out / 1e6:>8.1f}")


if __name__ == "__main__":
    asyncio.run(main())
