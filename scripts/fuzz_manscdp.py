#!/usr/bin/env python3
"""Long-running mutation fuzz of the MANSCDP decoder, bounded in time.

Usage: python scripts/fuzz_manscdp.py [--seconds 60] [--seed N]

Mutates valid bodies (built by the encoder and taken from the field fixtures when present) with
byte flips, inserts, deletes, splices and charset swaps; any exception other than ManscdpError
is a bug and is printed with the input (hex) and a non-zero exit status.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xueliang.gb28181 import manscdp as m

_TOKENS = [
    b"<",
    b">",
    b"</",
    b"/>",
    b"&",
    b"&amp;",
    b"<!DOCTYPE",
    b"<!ENTITY",
    b"]]>",
    b"<![CDATA[",
    b"\x00",
    b"\xff",
    b"\xa1\xa4",
    b'encoding="gb2312"',
    b'encoding="UTF-8"',
    b"<?xml",
    b"?>",
    b"<Item>",
    b"</Item>",
    b'<DeviceList Num="9">',
    b"\xef\xbb\xbf",
    b"<SN>",
    b"999999999999999999999",
]


def _seeds() -> list[bytes]:
    seeds = [
        m.catalog_response(
            1,
            "34020000001180000001",
            3,
            [{"DeviceID": "34020000001310000001", "Name": "东门入口 1", "Info": {"PTZType": 1}}],
        ),
        m.keepalive(2, "34020000001320000001"),
        m.ptz_control(3, "34020000001310000001", "A50F0100000000B5", encoding="UTF-8"),
        m.device_config(4, "D", name="名", heartbeat_interval=30),
        m.alarm_notify(5, "D", time="2024-01-01T00:00:00", description="报警", longitude=1.5, latitude=2.5),
    ]
    root = Path(__file__).resolve().parents[1]
    for cand in (root.parent / "shared" / "fixtures" / "sip", Path("/work/shared/fixtures/sip")):
        if cand.is_dir():
            for f in sorted(cand.glob("*.txt")):
                body = f.read_bytes().partition(b"\r\n\r\n")[2]
                if body.lstrip().startswith(b"<"):
                    seeds.append(body)
            break
    return seeds


def mutate(rng: random.Random, data: bytes, seeds: list[bytes]) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        op = rng.randrange(6)
        pos = rng.randint(0, len(buf))
        if op == 0 and buf:
            buf[min(pos, len(buf) - 1)] = rng.randrange(256)
        elif op == 1:
            buf[pos:pos] = bytes([rng.randrange(256)])
        elif op == 2 and buf:
            del buf[pos : pos + rng.randint(1, 16)]
        elif op == 3:
            buf[pos:pos] = rng.choice(_TOKENS)
        elif op == 4:
            other = rng.choice(seeds)
            a = rng.randint(0, len(other))
            buf[pos:pos] = other[a : a + rng.randint(1, 64)]
        else:
            end = min(len(buf), pos + rng.randint(1, 32))
            buf[pos:end] = buf[pos:end] * rng.randint(2, 6)
    return bytes(buf)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    rng = random.Random(seed)
    seeds = _seeds()
    deadline = time.monotonic() + args.seconds
    runs = ok = rejected = 0
    while time.monotonic() < deadline:
        for _ in range(200):
            data = mutate(rng, rng.choice(seeds), seeds)
            runs += 1
            try:
                m.decode(data)
                ok += 1
            except m.ManscdpError:
                rejected += 1
            except Exception:
                print(f"BUG after {runs} runs (seed {seed}): input hex:\n{data.hex()}", file=sys.stderr)
                traceback.print_exc()
                return 1
    print(
        f"seed {seed}: {runs} inputs in {args.seconds:.0f} s, {ok} decoded, {rejected} rejected with ManscdpError"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
