"""asyncio glue around the sans-I/O SIP core: UDP and TCP transports, one loop timer for all
transactions, RFC 3581 rport/received, TCP connection reuse for devices behind NAT.

Hot path (a keepalive MESSAGE over UDP): ``datagram_received`` -> parse -> Via fix-up ->
transaction lookup -> handler called synchronously -> ``Incoming.respond`` -> ``sendto``.  No
task, no future, no per-message timer: the transaction's Timer J goes into the shared heap and
the loop timer is only re-armed when the earliest deadline moves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from xueliang.sip.errors import SipError, SipParseError, SipTimeout
from xueliang.sip.framing import StreamFramer
from xueliang.sip.headers import Via, split_quoted
from xueliang.sip.message import (
    MAX_MESSAGE,
    Headers,
    Request,
    Response,
    make_response,
    new_branch,
    new_tag,
    parse_message,
    reason_phrase,
)
from xueliang.sip.transaction import T1, T2, T4, ServerTransaction, TransactionLayer

__all__ = ["Address", "Incoming", "SipEndpoint", "SipError", "SipTimeout", "SipTransportError"]

log = logging.getLogger(__name__)

Address = tuple[str, int]
Target = tuple[str, Address]

_WILDCARDS = ("", "0.0.0.0", "::")


class SipTransportError(SipError, ConnectionError):
    """The TCP connection a request was waiting on closed before the final response."""

    def __init__(self, message: str) -> None:
        super().__init__(message, 503)


@dataclass(slots=True, eq=False)
class Incoming:
    """A new request handed to the handler, with the means to answer it."""

    request: Request
    source: Address
    transport: str  # "udp" | "tcp"
    endpoint: SipEndpoint
    txn: ServerTransaction | None = None

    def respond(self, status: int, reason: str | None = None, *, headers: Iterable[tuple[str, str]] = (),
                body: bytes = b"", content_type: str | None = None, to_tag: str | None = None) -> None:
        """Answer through the server transaction (retransmissions are then answered from it).

        A final response to a request without a To tag gets a fresh tag unless ``to_tag`` is
        given (RFC 3261 8.2.6.2).  Nothing is sent for ACK.
        """
        req = self.request
        if req.method == "ACK":
            return
        if to_tag is None and status > 100 and req.to_tag is None:
            to_tag = new_tag()
        resp = make_response(req, status, reason, to_tag=to_tag, headers=headers, body=body,
                             content_type=content_type)
        ua = self.endpoint.user_agent
        if ua and "User-Agent" not in resp.headers:
            resp.headers.add("User-Agent", ua)
        self.send_response(resp)

    def send_response_bytes(self, data: bytes, status: int) -> None:
        """Send a pre-serialised response (e.g. a pre-built 200 OK skeleton on the keepalive path)."""
        ep = self.endpoint
        if self.txn is not None:
            if not self.txn.respond(data, ep._now(), status):
                ep._stats["late_responses"] += 1
                return
            ep._rearm()
        else:
            ep._send(data, (self.transport, self.source))

    def send_response(self, resp: Response) -> None:
        """Send a ready-made response for this request (through its transaction when it has one)."""
        ep = self.endpoint
        if self.txn is not None:
            if not self.txn.respond(resp, ep._now()):
                ep._stats["late_responses"] += 1
                return
            ep._rearm()
        else:
            ep._send(resp.to_bytes(), (self.transport, self.source))

    @property
    def responded(self) -> bool:
        """Whether a final response has been sent."""
        return self.txn is not None and self.txn.final_sent


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, ep: SipEndpoint) -> None:
        self.ep = ep

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.ep._on_message(data, (addr[0], addr[1]), "udp")

    def error_received(self, exc: Exception) -> None:
        self.ep._stats["transport_errors"] += 1
        log.debug("UDP error: %s", exc)


class _TcpConnection(asyncio.Protocol):
    """One TCP connection (accepted or opened by us), framed with StreamFramer."""

    def __init__(self, ep: SipEndpoint) -> None:
        self.ep = ep
        self.framer = StreamFramer(ep.max_message)
        self.transport: asyncio.Transport | None = None
        self.peer: Address = ("", 0)
        self.keys: set[Address] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = (peer[0], peer[1])
        self.ep._register_conn(self.peer, self)
        self.ep._stats["tcp_connections"] += 1
        with contextlib.suppress(OSError, AttributeError):
            sock = transport.get_extra_info("socket")
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        try:
            msgs = self.framer.feed(data)
        except SipParseError as exc:
            self.ep._stats["parse_errors"] += 1
            log.info("closing TCP connection from %s: %s", self.peer, exc)
            if self.transport is not None:
                self.transport.close()
            return
        for m in msgs:
            self.ep._on_message(m, self.peer, "tcp")

    def connection_lost(self, exc: Exception | None) -> None:
        self.ep._unregister_conn(self)

    def write(self, data: bytes) -> bool:
        t = self.transport
        if t is None or t.is_closing():
            return False
        t.write(data)
        return True


class SipEndpoint:
    """A SIP endpoint listening on UDP and TCP, running transactions for its user."""

    def __init__(self, handler: Callable[[Incoming], None], *, user_agent: str = "xueliang",
                 max_message: int = MAX_MESSAGE, t1: float = T1, t2: float = T2, t4: float = T4,
                 auto_trying: bool = True, advertised_host: str | None = None) -> None:
        self.handler = handler
        self.user_agent = user_agent
        self.max_message = max_message
        self.auto_trying = auto_trying
        # Optional predicate: MESSAGE requests it accepts are handled without a server transaction
        # (idempotent requests such as keepalives, the hottest path of a GB/T 28181 platform).
        self.stateless: Callable[[Request], bool] | None = None
        self.advertised_host = advertised_host
        self._layer = TransactionLayer(self._send, t1=t1, t2=t2, t4=t4)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp_server: asyncio.AbstractServer | None = None
        self._conns: dict[Address, _TcpConnection] = {}
        self._connecting: dict[Address, asyncio.Future[_TcpConnection]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        self._local: Address = ("0.0.0.0", 0)
        self._ip_for: dict[str, str] = {}
        self._acks: OrderedDict[tuple[str, int], tuple[bytes, Target]] = OrderedDict()
        self._pending: dict[asyncio.Future[Response], Target] = {}
        self._stats: dict[str, int] = dict.fromkeys(
            ("received", "sent", "parse_errors", "bad_requests_answered", "retransmissions", "timeouts",
             "handler_errors", "send_errors", "transport_errors", "tcp_connections", "late_responses",
             "ack_resent", "internal_errors", "connect_errors", "stateless"), 0)

    # ------------------------------------------------------------------ lifecycle
    async def start(self, host: str, port: int, *, udp: bool = True, tcp: bool = True) -> None:
        """Bind UDP and/or TCP on ``host:port`` (the same port for both; 0 picks a free one)."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        attempts = 20 if port == 0 and udp and tcp else 1
        for attempt in range(attempts):
            bound = port
            if udp:
                transport, _ = await loop.create_datagram_endpoint(
                    lambda: _UdpProtocol(self), local_addr=(host, port))
                self._udp = transport
                with contextlib.suppress(OSError, AttributeError):
                    sock = transport.get_extra_info("socket")
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
                bound = transport.get_extra_info("sockname")[1]
            if tcp:
                try:
                    self._tcp_server = await loop.create_server(
                        lambda: _TcpConnection(self), host, bound, reuse_address=True)
                except OSError:
                    if self._udp is not None:
                        self._udp.close()
                        self._udp = None
                    if attempt + 1 < attempts:
                        continue
                    raise
                if not udp:
                    bound = self._tcp_server.sockets[0].getsockname()[1]
            self._local = (host, bound)
            return

    @property
    def local_address(self) -> Address:
        return self._local

    @property
    def stats(self) -> dict[str, int]:
        """Counters: the endpoint's own plus the transaction layer's (``retransmits_sent`` ...)."""
        s = dict(self._stats)
        ls = self._layer.stats
        s["retransmits_sent"] = ls["retransmissions"]
        s["transaction_timeouts"] = ls["timeouts"]
        s["ack_timeouts"] = ls["ack_timeouts"]
        s["stray_responses"] = ls["stray_responses"]
        s["transactions"] = len(self._layer)
        return s

    @property
    def transactions(self) -> TransactionLayer:
        return self._layer

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for fut in list(self._pending):
            if not fut.done():
                fut.set_exception(SipError("endpoint closed", 503))
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._tcp_server is not None:
            self._tcp_server.close()
        for conn in list({id(c): c for c in self._conns.values()}.values()):
            if conn.transport is not None:
                conn.transport.close()
        self._conns.clear()
        if self._tcp_server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._tcp_server.wait_closed(), 1.0)
            self._tcp_server = None
        await asyncio.sleep(0)

    # ------------------------------------------------------------------ timers
    def _now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    def _rearm(self) -> None:
        d = self._layer.next_deadline()
        if d is None or d >= self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        assert self._loop is not None
        self._timer_at = d
        self._timer = self._loop.call_at(d, self._on_timer)

    def _on_timer(self) -> None:
        due = self._timer_at
        self._timer = None
        self._timer_at = math.inf
        try:
            self._layer.handle_timeout(max(self._now(), due))
        except Exception:
            log.exception("transaction timer failed")
        self._rearm()

    # ------------------------------------------------------------------ sending
    def _send(self, data: bytes, target: Target) -> None:
        transport, addr = target
        if transport == "udp":
            if self._udp is None:
                self._stats["send_errors"] += 1
                return
            self._udp.sendto(data, addr)
        else:
            conn = self._conns.get(addr)
            if conn is None or not conn.write(data):
                self._stats["send_errors"] += 1
                return
        self._stats["sent"] += 1

    def send_raw(self, data: bytes, dest: Address, *, transport: str = "udp") -> None:
        """Send bytes as they are (TCP: on an existing connection to/from ``dest``)."""
        transport = transport.lower()
        if transport == "tcp" and dest not in self._conns:
            raise ConnectionError(f"no TCP connection to {dest}")
        self._send(data, (transport, dest))

    def _via_host(self, dest: Address) -> str:
        if self.advertised_host:
            return self.advertised_host
        host = self._local[0]
        if host not in _WILDCARDS:
            return host
        ip = self._ip_for.get(dest[0])
        if ip is None:
            try:
                fam = socket.AF_INET6 if ":" in dest[0] else socket.AF_INET
                with socket.socket(fam, socket.SOCK_DGRAM) as s:
                    s.connect((dest[0], 9))       # UDP connect sends nothing; it picks the route
                    ip = s.getsockname()[0]
            except OSError:
                ip = "127.0.0.1"
            if len(self._ip_for) < 10000:
                self._ip_for[dest[0]] = ip
        return ip

    def _prepare(self, req: Request, dest: Address, transport: str) -> None:
        h = req.headers
        top = h.get("Via")
        if top is None:
            host = self._via_host(dest)
            if ":" in host and not host.startswith("["):
                host = f"[{host}]"
            h.insert_first("Via", f"SIP/2.0/{transport.upper()} {host}:{self._local[1]};rport;branch={new_branch()}")
        elif ";branch=" not in top.lower():
            h.replace_first("Via", f"{h.get_lines('Via')[0]};branch={new_branch()}")
        if "Max-Forwards" not in h:
            h.add("Max-Forwards", "70")
        if self.user_agent and "User-Agent" not in h:
            h.add("User-Agent", self.user_agent)

    async def _connection(self, dest: Address) -> _TcpConnection:
        conn = self._conns.get(dest)
        if conn is not None:
            return conn
        pending = self._connecting.get(dest)
        if pending is not None:
            return await asyncio.shield(pending)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[_TcpConnection] = loop.create_future()
        self._connecting[dest] = fut
        try:
            try:
                _, proto = await loop.create_connection(lambda: _TcpConnection(self), dest[0], dest[1])
            except OSError as exc:
                self._stats["connect_errors"] += 1
                raise SipTransportError(f"cannot connect to {dest}: {exc}") from exc
            self._register_conn(dest, proto)
            fut.set_result(proto)
            return proto
        except BaseException as exc:
            fut.set_exception(exc if isinstance(exc, Exception) else ConnectionError(str(exc)))
            fut.exception()  # mark retrieved
            raise
        finally:
            self._connecting.pop(dest, None)

    def _register_conn(self, key: Address, conn: _TcpConnection) -> None:
        conn.keys.add(key)
        self._conns[key] = conn

    def _unregister_conn(self, conn: _TcpConnection) -> None:
        lost = False
        for k in conn.keys:
            if self._conns.get(k) is conn:
                del self._conns[k]
                lost = True
        keys = set(conn.keys)
        conn.keys.clear()
        if not lost:
            return
        # requests waiting for an answer on this connection will never get one: fail them now
        for fut, (transport, dest) in list(self._pending.items()):
            if transport == "tcp" and dest in keys and not fut.done():
                fut.set_exception(SipTransportError(f"TCP connection to {dest} lost"))

    def has_connection(self, dest: Address) -> bool:
        """Whether a TCP connection to/from ``dest`` is open (devices behind NAT keep theirs)."""
        return dest in self._conns

    async def request(self, req: Request, dest: Address, *, transport: str = "udp", timeout: float = 32.0,
                      on_provisional: Callable[[Response], None] | None = None) -> Response:
        """Send ``req`` in a client transaction and return the final response.

        Raises SipTimeout when none arrives within ``timeout`` (or Timer B/F); SipTransportError
        (a SipError and ConnectionError) when a TCP connection cannot be made or drops while
        the request waits.
        """
        loop = asyncio.get_running_loop()
        transport = transport.lower()
        reliable = transport == "tcp"
        if reliable:
            await self._connection(dest)
        self._prepare(req, dest, transport)
        fut: asyncio.Future[Response] = loop.create_future()

        def on_response(resp: Response) -> None:
            if resp.status < 200:
                if on_provisional is not None:
                    try:
                        on_provisional(resp)
                    except Exception:
                        log.exception("on_provisional failed")
                return
            if not fut.done():
                fut.set_result(resp)
            else:
                self._resend_ack(resp)

        def on_timeout() -> None:
            if not fut.done():
                self._stats["timeouts"] += 1
                fut.set_exception(SipTimeout(f"no final response to {req.method} from {dest}"))

        txn = self._layer.send_request(req, (transport, dest), loop.time(), reliable=reliable,
                                       on_response=on_response, on_timeout=on_timeout)
        self._rearm()
        handle = loop.call_later(timeout, on_timeout)
        self._pending[fut] = (transport, dest)
        try:
            return await fut
        finally:
            handle.cancel()
            self._pending.pop(fut, None)
            if txn.final is None and not txn.terminated:
                txn.terminate()

    def send_ack(self, req: Request, dest: Address, *, transport: str = "udp") -> None:
        """Send the ACK for a 2xx (no transaction); it is re-sent if the 2xx is retransmitted."""
        transport = transport.lower()
        self._prepare(req, dest, transport)
        data = req.to_bytes()
        target: Target = (transport, dest)
        try:
            key = (req.call_id, req.cseq[0])
        except SipParseError:
            key = None
        if key is not None:
            self._acks[key] = (data, target)
            while len(self._acks) > 4096:
                self._acks.popitem(last=False)
        self._send(data, target)

    def _resend_ack(self, resp: Response) -> None:
        try:
            key = (resp.call_id, resp.cseq[0])
        except SipParseError:
            return
        item = self._acks.get(key)
        if item is not None:
            self._stats["ack_resent"] += 1
            self._send(*item)

    # ------------------------------------------------------------------ receiving
    def _on_message(self, data: bytes, source: Address, transport: str) -> None:
        """Entry of every received message; nothing raised here may reach the transport."""
        try:
            self._process(data, source, transport)
        except Exception:
            self._stats["internal_errors"] += 1
            log.exception("SIP receive path failed on a message from %s", source)

    def _process(self, data: bytes, source: Address, transport: str) -> None:
        stats = self._stats
        stats["received"] += 1
        reliable = transport == "tcp"
        try:
            msg = parse_message(data, max_message=self.max_message, datagram=not reliable)
        except SipParseError as exc:
            if not data.strip(b"\r\n\t "):
                return  # a bare CRLF keep-alive datagram
            stats["parse_errors"] += 1
            self._answer_bad(exc, source, transport)
            return
        now = self._now()
        if isinstance(msg, Response):
            self._layer.receive_response(msg, now)
            self._rearm()
            return
        stateless = self.stateless
        if stateless is not None and msg.method == "MESSAGE":
            try:
                _fix_via(msg, source)
                if stateless(msg):
                    # Idempotent fast path (GB keepalives): no transaction, no timer, nothing lingering
                    # for 32 s; a retransmission simply gets another identical 200.
                    stats["stateless"] += 1
                    self.handler(Incoming(msg, source, transport, self, None))
                    return
            except SipParseError as exc:
                stats["parse_errors"] += 1
                exc.partial = msg
                self._answer_bad(exc, source, transport)
                return
        try:
            if stateless is None or msg.method != "MESSAGE":
                _fix_via(msg, source)
            new, txn = self._layer.receive_request(msg, (transport, source), now, reliable=reliable)
        except SipParseError as exc:
            stats["parse_errors"] += 1
            exc.partial = msg
            self._answer_bad(exc, source, transport)
            return
        if not new:
            stats["retransmissions"] += 1
            return
        method = msg.method
        if txn is not None and method == "INVITE" and self.auto_trying:
            txn.respond(make_response(msg, 100), now)
        inc = Incoming(msg, source, transport, self, txn)
        if method == "CANCEL" and txn is not None:
            self._cancel(inc, now)
        try:
            self.handler(inc)
        except Exception:
            stats["handler_errors"] += 1
            log.exception("SIP handler failed on %s", method)
            if txn is not None and not txn.final_sent:
                inc.respond(500)
        self._rearm()

    def _cancel(self, inc: Incoming, now: float) -> None:
        """Answer a CANCEL: 481 without a matching INVITE, else 200 and 487 to the INVITE."""
        inv = self._layer.find_invite(inc.request)
        if inv is None:
            inc.respond(481)
            return
        inc.respond(200)
        if not inv.final_sent and inv.request is not None:
            resp = make_response(inv.request, 487, to_tag=inv.request.to_tag or new_tag())
            inv.respond(resp, now)

    def _answer_bad(self, exc: SipParseError, source: Address, transport: str) -> None:
        """400 (or exc.status) for a request we could read enough of; otherwise just drop it."""
        req = exc.partial
        if not isinstance(req, Request) or req.method == "ACK":
            return
        h = req.headers
        if "Via" not in h:
            return
        rh = Headers()
        for name in ("Via", "From", "To", "Call-ID", "CSeq"):
            for v in h.get_lines(name):
                rh.add(name, v)
        status = exc.status if 400 <= exc.status <= 699 else 400
        detail = " ".join(str(exc).split())[:120]
        reason = f"{reason_phrase(status)} ({detail})" if detail else reason_phrase(status)
        self._send(Response(status, reason, rh).to_bytes(), (transport, source))
        self._stats["bad_requests_answered"] += 1


def _fix_via(req: Request, source: Address) -> None:
    """RFC 3581 / 3261 18.2.1: add received (and fill rport) on the top Via of an incoming request.

    String surgery on the common single-value, unquoted Via (the keepalive hot path); a full
    parse for anything unusual.
    """
    h = req.headers
    idx = h._keys.index("via")
    line = h._values[idx]
    ip, port = source
    semi = line.find(";")
    head = line[:semi] if semi >= 0 else line
    parts = head.split()
    has_rport = ";rport" in line or ";RPORT" in line
    if not has_rport and len(parts) == 2 and "," not in head:
        host = parts[1]
        if host == ip or host.startswith(ip + ":"):
            return
    if "," in line or '"' in line or len(parts) != 2 or "/" in parts[1] or host_is_v6(parts[1]):
        _fix_via_slow(h, idx, line, ip, port, has_rport)
        return
    out = [head]
    seen_received = False
    for p in line[semi + 1 :].split(";") if semi >= 0 else ():
        name = p.split("=", 1)[0].strip().lower()
        if name == "rport":
            p = f"rport={port}"
        elif name == "received":
            p = f"received={ip}"
            seen_received = True
        out.append(p)
    if not seen_received:
        out.append(f"received={ip}")
    h._values[idx] = ";".join(out)


def host_is_v6(sent_by: str) -> bool:
    return sent_by.startswith("[")


def _fix_via_slow(h: Headers, idx: int, line: str, ip: str, port: int, has_rport: bool) -> None:
    rest: list[str] = []
    top = line
    if "," in line:
        items = split_quoted(line, ",")
        top, rest = items[0], items[1:]
    via = Via.parse(top)
    changed = False
    if via.host.strip("[]") != ip or has_rport:
        via.params["received"] = ip
        changed = True
    if "rport" in via.params:
        via.params["rport"] = str(port)
        changed = True
    if changed:
        h._values[idx] = ", ".join([str(via), *rest])
