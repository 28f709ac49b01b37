"""SipEndpoint over real UDP and TCP sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from sip_helpers import keepalive

from xueliang.sip.dialog import dialog_from_2xx
from xueliang.sip.endpoint import Incoming, SipEndpoint
from xueliang.sip.message import Request, Response, SipTimeout, new_branch, parse_message
from xueliang.sip.transaction import make_cancel

pytestmark = pytest.mark.timeout(30)


class RawUdp(asyncio.DatagramProtocol):
    """A bare UDP peer: what it receives lands in a queue."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.queue.put_nowait((data, addr))

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    def send(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        self.transport.sendto(data, addr)

    async def recv(self, timeout: float = 2.0) -> bytes:
        data, _ = await asyncio.wait_for(self.queue.get(), timeout)
        return data


async def raw_udp() -> RawUdp:
    loop = asyncio.get_running_loop()
    _, proto = await loop.create_datagram_endpoint(RawUdp, local_addr=("127.0.0.1", 0))
    return proto


def raw_message(branch: str, *, port: int = 5999, call_id: str = "raw-1", extra: str = "") -> bytes:
    body = b"<?xml version=\"1.0\"?>\r\n<Notify><CmdType>Keepalive</CmdType><SN>1</SN></Notify>\r\n"
    head = (
        "MESSAGE sip:34020000002000000001@3402000000 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 10.99.99.99:{port};rport;branch={branch}\r\n"
        "From: <sip:34020000001320000001@3402000000>;tag=dev1\r\n"
        "To: <sip:34020000002000000001@3402000000>\r\n"
        f"Call-ID: {call_id}\r\nCSeq: 20 MESSAGE\r\nContent-Type: Application/MANSCDP+xml\r\n{extra}"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class Server:
    """An endpoint whose handler records requests and answers with ``status`` (None = no answer)."""

    def __init__(self, status: int | None = 200) -> None:
        self.status = status
        self.seen: list[Incoming] = []
        self.ep = SipEndpoint(self.handle, user_agent="test-server")

    def handle(self, inc: Incoming) -> None:
        self.seen.append(inc)
        if self.status is not None:
            inc.respond(self.status)


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    s = Server()
    await s.ep.start("127.0.0.1", 0)
    yield s
    await s.ep.close()


@pytest.fixture
async def client() -> AsyncIterator[SipEndpoint]:
    c = SipEndpoint(lambda inc: inc.respond(200), user_agent="test-client")
    await c.start("127.0.0.1", 0)
    yield c
    await c.close()


async def test_message_over_udp(server: Server, client: SipEndpoint) -> None:
    resp = await client.request(keepalive(), server.ep.local_address)
    assert resp.status == 200 and resp.to_tag and resp.headers.get("User-Agent") == "test-server"
    (inc,) = server.seen
    assert inc.transport == "udp" and inc.source == ("127.0.0.1", client.local_address[1])
    via = inc.request.via[0]
    assert via.rport == client.local_address[1] and via.received == "127.0.0.1"
    assert inc.request.headers.get("User-Agent") == "test-client" and inc.request.headers.get("Max-Forwards") == "70"
    assert server.ep.stats["received"] == 1 and server.ep.stats["sent"] == 1
    assert client.stats["timeouts"] == 0


async def test_message_over_tcp_and_connection_reuse(server: Server, client: SipEndpoint) -> None:
    resp = await client.request(keepalive(), server.ep.local_address, transport="tcp")
    assert resp.status == 200
    (inc,) = server.seen
    assert inc.transport == "tcp"
    # the platform talks back down the device's own connection (NAT): no new connection
    assert server.ep.has_connection(inc.source)
    back = await server.ep.request(keepalive(), inc.source, transport="tcp")
    assert back.status == 200
    assert server.ep.stats["tcp_connections"] == 1 and client.stats["tcp_connections"] == 1


async def test_udp_retransmission_absorbed(server: Server) -> None:
    peer = await raw_udp()
    try:
        msg = raw_message(new_branch())
        peer.send(msg, server.ep.local_address)
        first = await peer.recv()
        peer.send(msg, server.ep.local_address)
        second = await peer.recv()
        assert first == second  # resent from the transaction, same To tag
        assert len(server.seen) == 1
        assert server.ep.stats["retransmissions"] == 1
    finally:
        assert peer.transport is not None
        peer.transport.close()


async def test_rport_answer_goes_to_source(server: Server) -> None:
    peer = await raw_udp()
    try:
        peer.send(raw_message(new_branch(), port=5999), server.ep.local_address)
        resp = parse_message(await peer.recv())  # arrived at our real port, not 10.99.99.99:5999
        assert isinstance(resp, Response) and resp.status == 200
        via = resp.via[0]
        assert via.host == "10.99.99.99" and via.received == "127.0.0.1" and via.rport == peer.port
    finally:
        assert peer.transport is not None
        peer.transport.close()


async def test_timeout_with_udp_retransmissions() -> None:
    silent = await raw_udp()
    ep = SipEndpoint(lambda inc: None, t1=0.02)
    await ep.start("127.0.0.1", 0)
    try:
        t0 = time.monotonic()
        with pytest.raises(SipTimeout):
            await ep.request(keepalive(), ("127.0.0.1", silent.port))
        elapsed = time.monotonic() - t0
        assert 1.0 < elapsed < 5.0  # Timer F = 64 * T1 = 1.28 s
        assert silent.queue.qsize() >= 6  # original + Timer E retransmissions
        assert ep.stats["timeouts"] == 1 and ep.stats["retransmits_sent"] >= 5
        with pytest.raises(TimeoutError):  # the caller's own bound also works
            await ep.request(keepalive(), ("127.0.0.1", silent.port), timeout=0.1)
        assert ep.stats["transactions"] == 0
    finally:
        await ep.close()
        assert silent.transport is not None
        silent.transport.close()


async def test_tcp_framing_split_at_every_byte_boundary(server: Server) -> None:
    reader, writer = await asyncio.open_connection(*server.ep.local_address)
    try:
        template = raw_message("z9hG4bKsplit000000", call_id="split-000000")
        for cut in range(1, len(template)):
            msg = raw_message(f"z9hG4bKsplit{cut:06d}", call_id=f"split-{cut:06d}")
            writer.write(msg[:cut])
            await writer.drain()
            await asyncio.sleep(0)
            writer.write(msg[cut:])
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2.0)
            assert head.startswith(b"SIP/2.0 200 OK\r\n") and f"split-{cut:06d}".encode() in head
        assert len(server.seen) == len(template) - 1
        # CRLF keep-alives between messages are ignored
        writer.write(b"\r\n\r\n" + raw_message("z9hG4bKlast", call_id="last") + b"\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2.0)
        assert b"Call-ID: last" in head
    finally:
        writer.close()


async def test_parse_errors_answered_and_counted(server: Server) -> None:
    peer = await raw_udp()
    try:
        broken = raw_message(new_branch()).replace(b"Call-ID: raw-1\r\n", b"")
        peer.send(broken, server.ep.local_address)
        resp = await peer.recv()
        assert resp.startswith(b"SIP/2.0 400 Bad Request (missing Call-ID header)\r\nVia: ")
        peer.send(b"\x00\xffgarbage that is not SIP", server.ep.local_address)
        peer.send(b"SIP/2.0 200 OK\r\n\r\n", server.ep.local_address)  # unparseable response: dropped
        peer.send(b"\r\n\r\n", server.ep.local_address)  # keep-alive: ignored, not an error
        peer.send(raw_message(new_branch()), server.ep.local_address)
        ok = parse_message(await peer.recv())
        assert isinstance(ok, Response) and ok.status == 200
        assert peer.queue.empty()
        assert server.ep.stats["parse_errors"] == 3 and server.ep.stats["bad_requests_answered"] == 1
        assert len(server.seen) == 1
    finally:
        assert peer.transport is not None
        peer.transport.close()


async def test_handler_exception_gives_500(client: SipEndpoint) -> None:
    def boom(inc: Incoming) -> None:
        raise RuntimeError("handler bug")

    ep = SipEndpoint(boom)
    await ep.start("127.0.0.1", 0)
    try:
        resp = await client.request(keepalive(), ep.local_address)
        assert resp.status == 500 and ep.stats["handler_errors"] == 1
    finally:
        await ep.close()


def invite(uri: str) -> Request:
    r = keepalive(uri)
    r.method = "INVITE"
    r.headers.set("CSeq", "1 INVITE")
    r.headers.add("Contact", "<sip:34020000002000000001@127.0.0.1>")
    r.headers.set("Content-Type", "application/sdp")
    r.body = b"v=0\r\n"
    return r


async def test_invite_error_acked_inside_transaction(server: Server, client: SipEndpoint) -> None:
    server.status = 486
    provisional: list[int] = []
    resp = await client.request(invite("sip:cam@x"), server.ep.local_address, on_provisional=lambda r: provisional.append(r.status))
    assert resp.status == 486 and provisional == [100]  # auto 100 Trying
    for _ in range(50):  # the ACK reaches the server transaction, not the handler
        if server.ep.transactions.server and all(t.state != "completed" for t in server.ep.transactions.server.values()):
            break
        await asyncio.sleep(0.01)
    assert [i.request.method for i in server.seen] == ["INVITE"]
    assert all(t.state == "confirmed" for t in server.ep.transactions.server.values())


async def test_invite_200_ack_and_bye(server: Server, client: SipEndpoint) -> None:
    def handle(inc: Incoming) -> None:
        server.seen.append(inc)
        if inc.request.method == "INVITE":
            inc.respond(200, to_tag="cam", headers=[("Contact", f"<sip:cam@127.0.0.1:{server.ep.local_address[1]}>")],
                        body=b"v=0\r\n", content_type="application/sdp")
        elif inc.request.method != "ACK":
            inc.respond(200)

    server.ep.handler = handle
    inv = invite("sip:cam@x")
    ok = await client.request(inv, server.ep.local_address)
    assert ok.status == 200 and ok.to_tag == "cam" and ok.body == b"v=0\r\n"
    dialog = dialog_from_2xx(inv, ok)
    client.send_ack(dialog.make_ack(), server.ep.local_address)
    bye = await client.request(dialog.make_request("BYE"), server.ep.local_address)
    assert bye.status == 200
    assert [i.request.method for i in server.seen] == ["INVITE", "ACK", "BYE"]


async def test_cancel_pending_invite(server: Server, client: SipEndpoint) -> None:
    server.status = None  # the handler never answers the INVITE itself
    inv = invite("sip:cam@x")
    task = asyncio.ensure_future(client.request(inv, server.ep.local_address))
    for _ in range(100):
        if server.seen:
            break
        await asyncio.sleep(0.01)
    cancel_resp = await client.request(make_cancel(inv), server.ep.local_address)
    assert cancel_resp.status == 200
    final = await asyncio.wait_for(task, 5)
    assert final.status == 487
    assert [i.request.method for i in server.seen] == ["INVITE", "CANCEL"]
    unknown = invite("sip:cam@y")
    unknown.headers.add("Via", f"SIP/2.0/UDP 127.0.0.1:{client.local_address[1]};rport;branch={new_branch()}")
    stray = await client.request(make_cancel(unknown), server.ep.local_address)
    assert stray.status == 481


@pytest.mark.parametrize(
    ("via", "expected"),
    [
        ("SIP/2.0/UDP 192.168.230.100:5060;rport=5060;branch=z9hG4bK8;received=192.168.230.100",
         "SIP/2.0/UDP 192.168.230.100:5060;rport=40001;branch=z9hG4bK8;received=10.1.1.1"),
        ("SIP/2.0/UDP 192.168.1.5:5060;rport;branch=z9hG4bK9",
         "SIP/2.0/UDP 192.168.1.5:5060;rport=40001;branch=z9hG4bK9;received=10.1.1.1"),
        ("SIP/2.0/UDP 192.168.1.5:5060;branch=z9hG4bK9",
         "SIP/2.0/UDP 192.168.1.5:5060;branch=z9hG4bK9;received=10.1.1.1"),
        ("SIP/2.0/UDP 10.1.1.1:5060;branch=z9hG4bK9", "SIP/2.0/UDP 10.1.1.1:5060;branch=z9hG4bK9"),
        ("SIP/2.0/UDP 192.168.1.5", "SIP/2.0/UDP 192.168.1.5;received=10.1.1.1"),
        ("SIP/2.0/UDP 192.168.1.5;rport;branch=z9hG4bKa, SIP/2.0/UDP proxy;branch=z9hG4bKb",
         "SIP/2.0/UDP 192.168.1.5;rport=40001;branch=z9hG4bKa;received=10.1.1.1, SIP/2.0/UDP proxy;branch=z9hG4bKb"),
        ("SIP / 2.0 / UDP [2001:db8::1]:5060;rport;branch=z9hG4bKc",
         "SIP/2.0/UDP [2001:db8::1]:5060;rport=40001;branch=z9hG4bKc;received=10.1.1.1"),
    ],
)
def test_fix_via_received_and_rport(via: str, expected: str) -> None:
    from xueliang.sip.endpoint import _fix_via

    r = keepalive()
    r.headers.insert_first("Via", via)
    _fix_via(r, ("10.1.1.1", 40001))
    assert r.headers.get_lines("Via")[0] == expected


async def test_tcp_connection_lost_fails_request_fast(client: SipEndpoint) -> None:
    from xueliang.sip.endpoint import SipTransportError

    async def rude(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    srv = await asyncio.start_server(rude, "127.0.0.1", 0)
    addr = srv.sockets[0].getsockname()[:2]
    try:
        t0 = time.monotonic()
        with pytest.raises(SipTransportError):
            await client.request(keepalive(), (addr[0], addr[1]), transport="tcp")
        assert time.monotonic() - t0 < 3.0
        assert not client.has_connection((addr[0], addr[1]))
    finally:
        srv.close()


async def test_prebuilt_response_bytes(client: SipEndpoint) -> None:
    from xueliang.sip.message import make_response

    def handler(inc: Incoming) -> None:
        inc.send_response_bytes(make_response(inc.request, 200, to_tag="pre").to_bytes(), 200)

    ep = SipEndpoint(handler)
    await ep.start("127.0.0.1", 0)
    try:
        resp = await client.request(keepalive(), ep.local_address)
        assert resp.status == 200 and resp.to_tag == "pre"
    finally:
        await ep.close()


async def test_tcp_connect_refused(client: SipEndpoint) -> None:
    from xueliang.sip.endpoint import SipTransportError

    silent = await raw_udp()  # a port with no TCP listener
    try:
        with pytest.raises(SipTransportError):
            await client.request(keepalive(), ("127.0.0.1", silent.port), transport="tcp")
        assert client.stats["connect_errors"] == 1
    finally:
        assert silent.transport is not None
        silent.transport.close()
