"""Not a test: measures the keepalive hot path.

1. parse + make_response + to_bytes of the field keepalive (pure codec);
2. the UDP endpoint: a raw UDP client sends keepalives (each with a fresh branch) to a
   SipEndpoint whose handler answers 200, windowed, on uvloop when available — per-message
   wall time of the whole round trip (client send + server receive/parse/transaction/respond +
   client receive), both in this one process on one core;
3. SipEndpoint.request() round trips between two endpoints (client transaction included).

Run: .venv/bin/python tests/sip/perf_probe.py
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[2]), str(Path(__file__).resolve().parent)]

from sip_helpers import fixture_bytes, keepalive  # noqa: E402

from xueliang.sip.endpoint import Incoming, SipEndpoint  # noqa: E402
from xueliang.sip.message import Request, make_response, parse_message  # noqa: E402


def _best(fn: Callable[[], object], batch: int = 2000, rounds: int = 60) -> float:
    """Best per-call time over many short batches: a shared, loaded machine preempts some
    batches; the minimum is the cost of the code itself."""
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(batch):
            fn()
        best = min(best, (time.perf_counter() - t0) / batch)
    return best


def codec() -> None:
    data = fixture_bytes("sip", "05_keepalive_status_ok.txt")
    req = parse_message(data)
    assert isinstance(req, Request)
    full = _best(lambda: make_response(parse_message(data), 200, to_tag="abc").to_bytes())  # type: ignore[arg-type]
    parse = _best(lambda: parse_message(data))
    build = _best(lambda: make_response(req, 200, to_tag="abc").to_bytes())
    print(f"keepalive parse+make_response+to_bytes: {full * 1e6:.2f} us "
          f"(parse {parse * 1e6:.2f} us, make_response+to_bytes {build * 1e6:.2f} us)")


class _Blaster(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.got = 0
        self.event = asyncio.Event()
        self.want = 0

    def datagram_received(self, data: bytes, addr: object) -> None:
        self.got += 1
        if self.got >= self.want:
            self.event.set()


async def endpoint_udp(n: int = 20_000, window: int = 200) -> None:
    def handler(inc: Incoming) -> None:
        inc.respond(200)

    server = SipEndpoint(handler)
    await server.start("127.0.0.1", 0, tcp=False)
    template = fixture_bytes("sip", "05_keepalive_status_ok.txt")
    msgs = [template.replace(b"z9hG4bK824544922", f"z9hG4bK{i:012d}".encode()) for i in range(n)]
    loop = asyncio.get_running_loop()
    tr, proto = await loop.create_datagram_endpoint(_Blaster, local_addr=("127.0.0.1", 0))
    dest = server.local_address
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    sent = 0
    while sent < n:
        batch = min(window, n - sent)
        proto.want = proto.got + batch
        proto.event.clear()
        for i in range(sent, sent + batch):
            tr.sendto(msgs[i], dest)
        sent += batch
        await asyncio.wait_for(proto.event.wait(), 10)
    dt = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    print(f"UDP endpoint keepalive round trip: {dt / n * 1e6:.1f} us/msg wall, {cpu / n * 1e6:.1f} us/msg CPU "
          f"({n / dt:,.0f} msg/s; server stats: {server.stats['received']} received, "
          f"{server.stats['transactions']} live transactions)")
    tr.close()
    await server.close()


async def endpoint_request(n: int = 3000) -> None:
    server = SipEndpoint(lambda inc: inc.respond(200))
    client = SipEndpoint(lambda inc: None)
    await server.start("127.0.0.1", 0)
    await client.start("127.0.0.1", 0)
    t0 = time.perf_counter()
    for _ in range(n // 100):
        await asyncio.gather(*(client.request(keepalive(), server.local_address) for _ in range(100)))
    dt = time.perf_counter() - t0
    print(f"SipEndpoint.request() -> SipEndpoint, UDP, 100 in flight: {dt / n * 1e6:.1f} us per request")
    await client.close()
    await server.close()


def main() -> None:
    codec()
    try:
        import uvloop

        uvloop.install()
        name = "uvloop"
    except ImportError:  # pragma: no cover
        name = "asyncio"
    print(f"event loop: {name}")
    asyncio.run(endpoint_udp())
    asyncio.run(endpoint_request())


if __name__ == "__main__":
    main()
