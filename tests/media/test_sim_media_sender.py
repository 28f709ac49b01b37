"""The simulator's MediaSender: pacing, looping with continuous timestamps, clean stop."""

from __future__ import annotations

import asyncio
import itertools
import socket

import pytest

from xueliang.media.frame import Frame
from xueliang.media.ps_demux import PsDemuxer
from xueliang.media.rtp import parse_rtp
from xueliang.sim.media import MediaSender

HOST = "127.0.0.1"


class _Collect(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.packets: list[bytes] = []

    def datagram_received(self, data: bytes, addr: object) -> None:
        self.packets.append(data)


async def test_udp_pacing_loop_and_stop() -> None:
    loop = asyncio.get_running_loop()
    tr, proto = await loop.create_datagram_endpoint(_Collect, local_addr=(HOST, 0))
    port = tr.get_extra_info("sockname")[1]
    sender = MediaSender(codec="h264", ssrc=42, transport="udp", remote=(HOST, port), local_host=HOST,
                         width=160, height=96, seconds=0.4, fps=25)   # 10-frame clip, looped
    await sender.start()
    t0 = loop.time()
    await asyncio.sleep(1.0)
    sent = sender.frames_sent
    await sender.stop()
    elapsed = loop.time() - t0
    await asyncio.sleep(0.1)
    n = len(proto.packets)
    await asyncio.sleep(0.2)
    assert len(proto.packets) == n                    # nothing after stop
    tr.close()
    assert abs(sent - 25 * elapsed) <= 3              # paced at fps, not bursted
    pkts = [parse_rtp(p) for p in proto.packets]
    assert all(p is not None and p.ssrc == 42 and p.pt == 96 for p in pkts)
    d = PsDemuxer()
    frames: list[Frame] = []
    for p in pkts:
        frames += d.feed(p.payload, p.marker)  # type: ignore[union-attr]
    assert len(frames) >= 20                          # looped past the 10-frame clip
    steps = {b.pts - a.pts for a, b in itertools.pairwise(frames)}
    assert steps == {3600}                            # timestamps continue across the loop
    markers = [p for p in pkts if p.marker]  # type: ignore[union-attr]
    assert len({p.ts for p in markers}) == len(markers)   # one marker per frame timestamp


async def test_tcp_passive_waits_for_connection_then_streams() -> None:
    sender = MediaSender(codec="h265", ssrc=7, transport="tcp-passive", local_host=HOST,
                         width=160, height=96, seconds=0.4)
    await sender.start()
    assert sender.local_port > 0
    await asyncio.sleep(0.2)
    assert sender.frames_sent == 0                    # nobody connected yet
    reader, writer = await asyncio.open_connection(HOST, sender.local_port)
    data = await asyncio.wait_for(reader.readexactly(2), 2.0)
    length = int.from_bytes(data, "big")
    pkt = parse_rtp(await reader.readexactly(length))
    assert pkt is not None and pkt.ssrc == 7 and bytes(pkt.payload[:4]) == b"\x00\x00\x01\xba"
    writer.close()
    await sender.stop()
    with socket.socket() as s:                        # listening socket released
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((HOST, sender.local_port))


def test_arguments_checked() -> None:
    with pytest.raises(ValueError):
        MediaSender(ssrc=1, transport="sctp", remote=(HOST, 1))
    with pytest.raises(ValueError):
        MediaSender(ssrc=1, transport="udp", remote=None)
