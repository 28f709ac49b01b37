#!/usr/bin/env python3
"""Long fuzz run of the SIP receive path (codec, structured headers, framing, transaction keys).

    .venv/bin/python scripts/fuzz_sip.py --seconds 300            # atheris when installed
    .venv/bin/python scripts/fuzz_sip.py --seconds 60 --engine hypothesis

Seeds are the field messages and the RFC 4475 torture set in ../shared/fixtures.  Only
SipParseError/SipError may escape a target; anything else is a crash (non-zero exit, with the
input saved by libFuzzer as var/fuzz/crash-*, or printed by hypothesis).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "sip")]


def seeds() -> list[bytes]:
    from sip_helpers import fixtures_dir

    d = fixtures_dir()
    if d is None:
        return [b"MESSAGE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\n"
                b"To: <sip:c@d>\r\nCall-ID: x\r\nCSeq: 1 MESSAGE\r\nContent-Length: 2\r\n\r\nhi"]
    return [p.read_bytes() for p in sorted((d / "sip").glob("*.txt"))] + [
        p.read_bytes() for p in sorted((d / "rfc4475").glob("*.dat"))]


def run_atheris(seconds: int) -> int:
    import atheris

    with atheris.instrument_imports():
        from fuzz_targets import exercise_message, exercise_stream

    def one_input(data: bytes) -> None:
        if not data:
            return
        if data[0] & 1:
            exercise_stream(data[1:], data[0])
        else:
            exercise_message(data[1:])

    corpus = Path(tempfile.mkdtemp(prefix="sipfuzz-"))
    for i, s in enumerate(seeds()):
        (corpus / f"seed{i:03d}").write_bytes(b"\x00" + s)
    crashes = ROOT / "var" / "fuzz"
    crashes.mkdir(parents=True, exist_ok=True)
    atheris.Setup([sys.argv[0], f"-max_total_time={seconds}", "-max_len=8192", "-print_final_stats=1",
                   f"-artifact_prefix={crashes}/", str(corpus)], one_input)
    atheris.Fuzz()  # exits the process; non-zero on a crash
    return 0


def run_hypothesis(seconds: int) -> int:
    from fuzz_targets import exercise_message, exercise_stream
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    pool = seeds()
    tokens = [b"\r\n", b" ", b";", b",", b"<", b">", b'"', b"=", b"\x00", b"\xff", b"l: 99999", b"Via: ",
              b"SIP/2.0", b";branch=z9hG4bK", b";rport", b";tag=", b"\r\n\r\n", b"\r\n "]

    @st.composite
    def mutated(draw: st.DrawFn) -> bytes:
        data = bytearray(draw(st.sampled_from(pool)))
        for _ in range(draw(st.integers(1, 10))):
            if not data:
                break
            pos = draw(st.integers(0, len(data) - 1))
            op = draw(st.integers(0, 3))
            if op == 0:
                data[pos] = draw(st.integers(0, 255))
            elif op == 1:
                data[pos:pos] = draw(st.sampled_from(tokens))
            elif op == 2:
                del data[pos : pos + draw(st.integers(1, 50))]
            else:
                data[pos:pos] = draw(st.binary(max_size=32))
        return bytes(data)

    @settings(max_examples=2000, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(mutated(), st.integers(0, 10_000))
    def target(data: bytes, cut: int) -> None:
        exercise_message(data)
        exercise_stream(data, cut % (len(data) + 1))

    end = time.monotonic() + seconds
    rounds = 0
    while time.monotonic() < end:
        target()
        rounds += 1
    print(f"hypothesis: {rounds * 2000} examples in {seconds} s, no crash")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=60, help="time bound of the run")
    ap.add_argument("--engine", choices=["auto", "atheris", "hypothesis"], default="auto")
    args = ap.parse_args()
    engine = args.engine
    if engine == "auto":
        try:
            import atheris  # noqa: F401
            engine = "atheris"
        except ImportError:
            engine = "hypothesis"
    print(f"fuzzing the SIP core with {engine} for {args.seconds} s", flush=True)
    return run_atheris(args.seconds) if engine == "atheris" else run_hypothesis(args.seconds)


if __name__ == "__main__":
    sys.exit(main())
