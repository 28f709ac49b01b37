"""Long fuzz run of PsDemuxer (and the RTP/RFC 4571 parsers): random and mutated streams, any split.

The demuxer's promise: whatever bytes arrive, `feed`/`flush` never raise and only return Frames with
a known codec and non-empty bytes data. Run for as long as you like:
    python scripts/fuzz_ps.py --seconds 600 [--seed N]
Prints the seed of any failing case so it can be replayed.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xueliang.media.frame import Frame
from xueliang.media.ps_demux import PsDemuxer
from xueliang.media.ps_mux import PsMuxer
from xueliang.media.rtp import FramingError, Rfc4571Framer, parse_rtp
from xueliang.media.testvideo import make_test_audio, make_test_video

CODECS = {"h264", "h265", "pcma", "pcmu", "aac"}


def _corpus() -> list[bytes]:
    out = []
    for codec in ("h264", "h265"):
        video = make_test_video(codec, 320, 180, 25, 2)[:8]
        audio = make_test_audio(1)
        mux = PsMuxer(codec, "pcma", max_pes_payload=3000)
        out.append(b"".join(mux.mux(v) + mux.mux(a) for v, a in zip(video, audio, strict=False)))
    fixtures = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "ps"
    for name in ("rtp_ps_camera_first_packet_256B.bin", "Audio_G711_PS2.mpg"):
        p = fixtures / name
        if p.exists():
            data = p.read_bytes()
            out.append(data[12:] if name.endswith(".bin") else data[:200_000])
    return out


def _mutate(rnd: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rnd.randint(1, 40)):
        if not buf:
            buf = bytearray(b"\x00")
        pos = rnd.randrange(len(buf))
        op = rnd.randrange(6)
        if op == 0:
            buf[pos] ^= rnd.randint(1, 255)
        elif op == 1:
            del buf[pos : pos + rnd.randint(1, 500)]
        elif op == 2:
            buf[pos:pos] = buf[pos : pos + rnd.randint(1, 500)]
        elif op == 3:
            buf[pos:pos] = rnd.choice([b"\x00\x00\x01\xba", b"\x00\x00\x01\xe0\x00\x00", b"\x00\x00\x01\xbc\xff\xff",
                                       b"\x00\x00\x01\xc0\x00\x05", b"\x00\x00\x00\x01\x65", b"\x00\x00\x01\xb9"])
        elif op == 4:
            buf[pos : pos + 2] = bytes((rnd.randrange(256), rnd.randrange(256)))
        else:
            buf[pos:pos] = rnd.randbytes(rnd.randint(1, 64))
    return bytes(buf)


def _check(frames: list[Frame]) -> None:
    for f in frames:
        assert isinstance(f, Frame), f
        assert f.codec in CODECS, f.codec
        assert isinstance(f.data, bytes) and f.data, "empty frame"
        assert isinstance(f.pts, int) and isinstance(f.dts, int)


def one_case(seed: int, corpus: list[bytes]) -> None:
    rnd = random.Random(seed)
    data = _mutate(rnd, rnd.choice(corpus)) if rnd.random() < 0.9 else rnd.randbytes(rnd.randint(0, 5000))
    d = PsDemuxer()
    pos = 0
    while pos < len(data):
        size = rnd.choice([1, 2, 3, 5, 13, 188, 1388, 1400, 4000, 65536])
        _check(d.feed(data[pos : pos + size], rnd.random() < 0.1))
        pos += size
    _check(d.flush())
    # RTP parser and TCP framer on the same bytes
    parse_rtp(data[:1500])
    f = Rfc4571Framer(max_garbage=1 << 20)
    try:
        for k in range(0, len(data), 777):
            for v in f.feed(data[k : k + 777]):
                parse_rtp(v)
    except FramingError:
        pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--seed", type=int, default=None, help="replay one case")
    a = ap.parse_args()
    corpus = _corpus()
    if a.seed is not None:
        one_case(a.seed, corpus)
        print(f"seed {a.seed}: ok")
        return
    base = random.randrange(1 << 30)
    end = time.monotonic() + a.seconds
    n = 0
    while time.monotonic() < end:
        seed = base + n
        try:
            one_case(seed, corpus)
        except Exception:
            traceback.print_exc()
            print(f"FAILED at seed {seed} (replay: python scripts/fuzz_ps.py --seed {seed})")
            sys.exit(1)
        n += 1
    print(f"{n} cases, no failure (seeds {base}..{base + n - 1})")


if __name__ == "__main__":
    main()
