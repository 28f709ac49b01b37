"""Not a test: measures the keepalive hot path (parse + make_response + to_bytes).

Run: .venv/bin/python tests/sip/perf_probe.py
"""

from __future__ import annotations

import time
from pathlib import Path

from xueliang.sip.message import make_response, parse_message

_FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "sip"


def main(n: int = 50_000) -> None:
    data = (_FIXTURES / "05_keepalive_status_ok.txt").read_bytes()
    for _ in range(1000):
        make_response(parse_message(data), 200, to_tag="abc").to_bytes()
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n):
            make_response(parse_message(data), 200, to_tag="abc").to_bytes()
        best = min(best, (time.perf_counter() - t0) / n)
    t0 = time.perf_counter()
    for _ in range(n):
        parse_message(data)
    parse_only = (time.perf_counter() - t0) / n
    print(f"keepalive parse+make_response+to_bytes: {best * 1e6:.2f} us (parse alone {parse_only * 1e6:.2f} us)")


if __name__ == "__main__":
    main()
