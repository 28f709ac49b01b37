"""INVITE -> 200 OK -> ACK -> PS/RTP arrives -> BYE -> media stops, over UDP and both TCP roles.

The platform side is a raw socket here: it checks the RTP header (PT 96, SSRC as answered in y=)
and that the payload is MPEG-PS (pack start code), which is what a real platform ingests.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator

import pytest

from xueliang.gb28181.sdp import parse_sdp, play_offer
from xueliang.sim.device import SimDevice
from xueliang.sip.dialog import dialog_from_2xx
from xueliang.sip.endpoint import Incoming, SipEndpoint
from xueliang.sip.message import Request, Response, new_call_id, new_tag

pytest.importorskip("xueliang.sim.media", reason="media sender (xueliang/sim/media.py) not present")

PLATFORM = "34020000002000000001"


class _Platform:
    """Accepts any REGISTER (no auth, this test is about media) and sends INVITE/ACK/BYE."""

    def __init__(self) -> None:
        self.ep = SipEndpoint(self.handle, user_agent="test-platform")
        self.device_addr: tuple[str, int] | None = None

    def handle(self, inc: Incoming) -> None:
        if inc.request.method == "REGISTER":
            self.device_addr = inc.source
        inc.respond(200)

    async def invite(self, channel: str, sdp: bytes) -> tuple[Request, Response]:
        assert self.device_addr is not None
        req = Request("INVITE", f"sip:{channel}@3402000000")
        h = req.headers
        host, port = self.ep.local_address
        h.add("From", f"<sip:{PLATFORM}@3402000000>;tag={new_tag()}")
        h.add("To", f"<sip:{channel}@3402000000>")
        h.add("Call-ID", new_call_id(host))
        h.add("CSeq", "1 INVITE")
        h.add("Contact", f"<sip:{PLATFORM}@{host}:{port}>")
        h.add("Content-Type", "application/sdp")
        req.body = sdp
        return req, await self.ep.request(req, self.device_addr, timeout=10)


@pytest.fixture
async def setup() -> AsyncIterator[tuple[_Platform, SimDevice]]:
    p = _Platform()
    await p.ep.start("127.0.0.1", 0)
    dev = SimDevice("34020000001320000001", kind="ipc", server=p.ep.local_address, media=True, keepalive=5)
    await dev.start(wait_registered=5)
    yield p, dev
    await dev.stop()
    await p.ep.close()


def _check_rtp(pkt: bytes, ssrc: int) -> None:
    assert len(pkt) > 12 and pkt[0] >> 6 == 2
    assert pkt[1] & 0x7F == 96
    assert struct.unpack("!I", pkt[8:12])[0] == ssrc


async def _play(p: _Platform, dev: SimDevice, offer: bytes) -> tuple[Request, Response]:
    req, resp = await p.invite(dev.device_id, offer)
    assert resp.status == 200, resp
    dialog = dialog_from_2xx(req, resp)
    assert p.device_addr is not None
    p.ep.send_ack(dialog.make_ack(), p.device_addr)
    return req, resp


async def _bye(p: _Platform, req: Request, resp: Response) -> None:
    assert p.device_addr is not None
    dialog = dialog_from_2xx(req, resp)
    dialog.local_seq = 1
    r = await p.ep.request(dialog.make_request("BYE"), p.device_addr, timeout=5)
    assert r.status == 200


async def test_udp_media_reaches_platform_and_stops_on_bye(setup: tuple[_Platform, SimDevice]) -> None:
    p, dev = setup
    loop = asyncio.get_running_loop()
    got: asyncio.Queue[bytes] = asyncio.Queue()

    class Rx(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: object) -> None:
            got.put_nowait(data)

    tr, _ = await loop.create_datagram_endpoint(Rx, local_addr=("127.0.0.1", 0))
    try:
        port = tr.get_extra_info("sockname")[1]
        offer = play_offer(origin_user=PLATFORM, address="127.0.0.1", port=port, ssrc="0200000011").to_bytes()
        req, resp = await _play(p, dev, offer)
        ans = parse_sdp(resp.body)
        assert ans.ssrc == "0200000011" and ans.port > 0
        first = await asyncio.wait_for(got.get(), 10)
        _check_rtp(first, 200000011)
        payloads = [first[12:]]
        for _ in range(30):
            payloads.append((await asyncio.wait_for(got.get(), 5))[12:])
        assert any(pl.startswith(b"\x00\x00\x01\xba") for pl in payloads)  # MPEG-PS pack header
        await _bye(p, req, resp)
        await asyncio.sleep(0.2)
        while not got.empty():
            got.get_nowait()
        await asyncio.sleep(0.3)
        assert got.empty(), "media kept flowing after BYE"
    finally:
        tr.close()


async def _read_rfc4571(reader: asyncio.StreamReader) -> bytes:
    n = struct.unpack("!H", await reader.readexactly(2))[0]
    return await reader.readexactly(n)


async def test_tcp_device_active_when_platform_passive(setup: tuple[_Platform, SimDevice]) -> None:
    p, dev = setup
    conn: asyncio.Queue[asyncio.StreamReader] = asyncio.Queue()

    async def on_conn(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await conn.put(r)
        with contextlib.suppress(Exception):
            await r.read(0)

    server = await asyncio.start_server(on_conn, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        offer = play_offer(
            origin_user=PLATFORM, address="127.0.0.1", port=port, ssrc="0200000012", transport="tcp-passive"
        ).to_bytes()
        req, resp = await _play(p, dev, offer)
        ans = parse_sdp(resp.body)
        assert ans.transport == "tcp" and ans.setup == "active"
        reader = await asyncio.wait_for(conn.get(), 10)
        pkt = await asyncio.wait_for(_read_rfc4571(reader), 10)
        _check_rtp(pkt, 200000012)
        await _bye(p, req, resp)
    finally:
        server.close()


async def test_tcp_device_passive_when_platform_active(setup: tuple[_Platform, SimDevice]) -> None:
    p, dev = setup
    offer = play_offer(
        origin_user=PLATFORM, address="127.0.0.1", port=9, ssrc="0200000013", transport="tcp-active"
    ).to_bytes()
    req, resp = await _play(p, dev, offer)
    ans = parse_sdp(resp.body)
    assert ans.transport == "tcp" and ans.setup == "passive" and ans.port > 0
    reader, writer = await asyncio.open_connection(ans.address, ans.port)
    try:
        pkt = await asyncio.wait_for(_read_rfc4571(reader), 10)
        _check_rtp(pkt, 200000013)
    finally:
        writer.close()
        await _bye(p, req, resp)


async def test_no_media_fault_answers_but_sends_nothing(setup: tuple[_Platform, SimDevice]) -> None:
    p, dev = setup
    dev.faults.add("no_media")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    try:
        offer = play_offer(
            origin_user=PLATFORM, address="127.0.0.1", port=sock.getsockname()[1], ssrc="0200000014"
        ).to_bytes()
        req, resp = await _play(p, dev, offer)
        await asyncio.sleep(0.5)
        with pytest.raises(BlockingIOError):
            sock.recv(2048)
        await _bye(p, req, resp)
    finally:
        sock.close()
