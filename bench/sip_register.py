"""Digest REGISTERs per second: GbService vs a bare uvloop responder, both driven by SIPp.

    .venv/bin/python bench/sip_register.py [--devices 2000] [--start 500] [--step 500] [--max 10000]

Each SIPp call is one registration: REGISTER, 401 challenge, REGISTER with an MD5 digest computed by
SIPp, 200. Device IDs and credentials come from an -inf file (field0 / field1), so the platform sees
many devices (first registrations, then re-registrations as the file wraps). The rate rises in steps
of at most `--seconds` (<= 5 s); the highest step with no failed call and no retransmission is
reported for:
  * baseline: a bare uvloop UDP responder answering 401 (fixed challenge) without Authorization and
    200 with it, copying Via/From/To/Call-ID/CSeq, verifying nothing;
  * xueliang: GbService (nonce signing and checking, digest verification, registry update, one
    batched device upsert per registration and a status event per first registration).
Both in the same run; their ratio is the figure to compare across machines.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sip_keepalive import (
    SCENARIOS,
    GbUnderBench,
    compare,
    device_ids,
    inf_variant,
    start_kamailio,
    write_inf,
)


class ChallengeResponder:
    """Bare uvloop responder: 401 to a REGISTER without Authorization, 200 to one with it."""

    class _Proto(asyncio.DatagramProtocol):
        CHALLENGE = b'WWW-Authenticate: Digest realm="3402000000", nonce="0123456789abcdef", algorithm=MD5\r\n'

        def connection_made(self, transport: Any) -> None:
            self.t = transport

        def datagram_received(self, data: bytes, addr: Any) -> None:
            head = data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
            authed = False
            out = []
            for line in head[1:]:
                k = line[:line.find(b":")].strip().lower()
                if k in (b"via", b"v", b"from", b"f", b"call-id", b"i", b"cseq"):
                    out.append(line)
                elif k in (b"to", b"t"):
                    out.append(line + b";tag=bench" if b"tag=" not in line else line)
                elif k == b"authorization":
                    authed = True
            start = b"SIP/2.0 200 OK" if authed else b"SIP/2.0 401 Unauthorized"
            extra = b"Expires: 3600\r\n" if authed else self.CHALLENGE
            self.t.sendto(start + b"\r\n" + b"\r\n".join(out) + b"\r\n" + extra + b"Content-Length: 0\r\n\r\n",
                          addr)

    async def start(self) -> int:
        loop = asyncio.get_running_loop()
        self.transport, _ = await loop.create_datagram_endpoint(self._Proto, local_addr=("127.0.0.1", 0))
        return int(self.transport.get_extra_info("sockname")[1])

    async def stop(self) -> None:
        self.transport.close()


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", type=int, default=2000)
    ap.add_argument("--start", type=int, default=500)
    ap.add_argument("--step", type=int, default=500)
    ap.add_argument("--max", type=int, default=30000)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--no-kamailio", action="store_true", help="skip the Kamailio ceiling")
    args = ap.parse_args()
    if not shutil.which("sipp"):
        print("sipp not installed: skipped")
        return
    seconds = min(args.seconds, 5.0)
    with tempfile.TemporaryDirectory(prefix="xl-bench-reg-") as tmp:
        work = Path(tmp)
        inf = write_inf(work / "devices.csv", device_ids(args.devices))
        scen = inf_variant(SCENARIOS / "register.xml", work)
        base = ChallengeResponder()
        targets = {"baseline": await base.start()}
        gb = GbUnderBench(work)
        targets["xueliang"] = await gb.start()
        kam = await start_kamailio(work, targets, disabled=args.no_kamailio)
        try:
            best = await compare(targets, scen, work, inf, start=args.start, step=args.step, maximum=args.max,
                                 seconds=seconds)
        finally:
            if kam is not None:
                await kam.stop()
            stats = dict(gb.gb.stats)
            await gb.db.writer.flush()
            await gb.stop()
            await base.stop()
    b, x = best["baseline"], best["xueliang"]
    print(f"\ndigest REGISTERs/s held with no failure or retransmission: xueliang {x}, bare uvloop responder {b}, "
          f"ratio {x / b if b else float('nan'):.2f}")
    if best.get("kamailio"):
        print(f"kamailio (one worker) ceiling {best['kamailio']}: xueliang at {x / best['kamailio']:.2f} of it")
    print(f"service counters: registrations={stats.get('registrations')} "
          f"challenges={stats.get('register_challenges')} failures={stats.get('register_failures')}")


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.run(main())
    except ImportError:  # pragma: no cover
        asyncio.run(main())
