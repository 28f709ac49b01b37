"""Sans-I/O RFC 3261 transactions (section 17) with the RFC 6026 "Accepted" states.

Nothing here reads a clock or touches a socket: every entry point takes ``now`` and output goes
through the ``send(data, target)`` callback given to :class:`TransactionLayer` (``target`` is
opaque here; the endpoint uses ``(transport, address)``).  All timers of all transactions live
in one heap; the I/O layer asks :meth:`TransactionLayer.next_deadline` and calls
:meth:`TransactionLayer.handle_timeout` then — one loop timer instead of a task per transaction,
which matters with thousands of keepalive transactions a second.

Timers (RFC 3261 table 4): A/E retransmit requests (T1 doubling, E capped at T2), B/F give up
after 64*T1, D/K/I/J linger to absorb retransmissions (zero on reliable transports), G
retransmits a final INVITE response until ACK, H gives up waiting for that ACK, L/M keep the
RFC 6026 Accepted state.  The INVITE server transaction also retransmits a 2xx until the ACK
(matched by Call-ID and CSeq) arrives, which RFC 3261 leaves to the TU.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from typing import Any

from xueliang.sip.errors import SipParseError
from xueliang.sip.headers import MAGIC_COOKIE, Via
from xueliang.sip.message import Headers, Request, Response

__all__ = [
    "T1",
    "T2",
    "T4",
    "ClientTransaction",
    "ServerTransaction",
    "TransactionLayer",
    "make_ack_for_non2xx",
    "make_cancel",
    "server_key",
]

T1 = 0.5
T2 = 4.0
T4 = 5.0

SendFn = Callable[[bytes, Any], None]

TRYING = "trying"
CALLING = "calling"
PROCEEDING = "proceeding"
COMPLETED = "completed"
CONFIRMED = "confirmed"
ACCEPTED = "accepted"
TERMINATED = "terminated"


def _via_fields(value: str) -> tuple[str | None, str]:
    """(branch, sent-by) of one Via value, by string search (falls back to a full parse)."""
    semi = value.find(";")
    head = value[:semi] if semi >= 0 else value
    parts = head.split()
    i = value.find(";branch=")
    if i < 0 or len(parts) < 2 or "/" in parts[-1]:
        via = Via.parse(value)
        return via.branch, via.sent_by
    i += 8
    j = value.find(";", i)
    branch = value[i:j] if j >= 0 else value[i:]
    k = branch.find(",")
    if k >= 0:
        branch = branch[:k]
    return branch.strip(), parts[-1]


def server_key(req: Request) -> str:
    """Server transaction key (RFC 3261 17.2.3), with the RFC 2543 fallback.

    ACK maps onto its INVITE so that the ACK of a non-2xx response finds its transaction.
    """
    top = req.headers.get("Via")
    if not top:
        raise SipParseError("request without Via", 400)
    branch, sent_by = _via_fields(top)
    method = "INVITE" if req.method == "ACK" else req.method
    if branch and branch.startswith(MAGIC_COOKIE):
        return f"{branch}|{sent_by}|{method}"
    num = req.cseq[0]
    return f"2543|{req.call_id}|{num}|{req.from_tag}|{sent_by}|{method}"


def client_key_of_response(resp: Response) -> str | None:
    """Client transaction key of a response (top Via branch + CSeq method); None when unreadable."""
    try:
        top = resp.headers.get("Via")
        if not top:
            return None
        branch, _ = _via_fields(top)
        method = resp.cseq[1]
    except SipParseError:
        return None
    return f"{branch}|{method}" if branch else None


def _first_via_line(req: Request) -> str:
    v = req.headers.get("Via")
    if v is None:
        raise SipParseError("request without Via", 400)
    return v


def make_ack_for_non2xx(invite: Request, resp: Response) -> Request:
    """The ACK a UAC transaction sends for a 300-699 answer (RFC 3261 17.1.1.3)."""
    h = Headers()
    h.add("Via", _first_via_line(invite))
    for r in invite.headers.get_lines("Route"):
        h.add("Route", r)
    h.add("Max-Forwards", "70")
    h.add("From", invite.headers.get("From") or "")
    h.add("To", resp.headers.get("To") or invite.headers.get("To") or "")
    h.add("Call-ID", invite.call_id)
    h.add("CSeq", f"{invite.cseq[0]} ACK")
    return Request("ACK", invite.uri, h)


def make_cancel(invite: Request) -> Request:
    """A CANCEL for a pending INVITE (RFC 3261 9.1): same top Via, URI, Call-ID, From, To, CSeq number."""
    h = Headers()
    h.add("Via", _first_via_line(invite))
    for r in invite.headers.get_lines("Route"):
        h.add("Route", r)
    h.add("Max-Forwards", "70")
    h.add("From", invite.headers.get("From") or "")
    h.add("To", invite.headers.get("To") or "")
    h.add("Call-ID", invite.call_id)
    h.add("CSeq", f"{invite.cseq[0]} CANCEL")
    return Request("CANCEL", invite.uri, h)


class _Transaction:
    __slots__ = ("__weakref__", "invite", "key", "layer", "reliable", "state", "target", "timers")

    def __init__(self, layer: TransactionLayer, key: str, request: Request, target: Any, reliable: bool) -> None:
        self.layer = layer
        self.key = key
        self.target = target
        self.reliable = reliable
        self.invite = request.method == "INVITE"
        self.state = ""
        self.timers: dict[str, float] = {}

    def _fire(self, name: str, now: float) -> None:
        raise NotImplementedError

    def _start(self, name: str, deadline: float) -> None:
        self.layer._schedule(self, name, deadline)

    def _stop(self, name: str) -> None:
        self.timers.pop(name, None)

    @property
    def terminated(self) -> bool:
        return self.state == TERMINATED

    def terminate(self) -> None:
        """Drop the transaction now (timers cancelled, key released)."""
        self.state = TERMINATED
        self.timers.clear()
        self.layer._forget(self)


class ClientTransaction(_Transaction):
    """UAC transaction.  ``on_response`` gets provisional responses, the final one and (INVITE)
    further 2xx in the Accepted state; ``on_timeout`` is called once on Timer B/F."""

    __slots__ = ("_ack", "_data", "_interval", "final", "on_response", "on_timeout", "request")

    def __init__(self, layer: TransactionLayer, key: str, request: Request, target: Any, reliable: bool,
                 on_response: Callable[[Response], None], on_timeout: Callable[[], None]) -> None:
        super().__init__(layer, key, request, target, reliable)
        self.request = request
        self.on_response = on_response
        self.on_timeout = on_timeout
        self.final: Response | None = None
        self._data = request.to_bytes()
        self._ack: bytes | None = None
        self._interval = layer.t1

    def _begin(self, now: float) -> None:
        lay = self.layer
        self.state = CALLING if self.invite else TRYING
        lay._send(self._data, self.target)
        if not self.reliable:
            self._start("A" if self.invite else "E", now + lay.t1)
        self._start("B" if self.invite else "F", now + 64 * lay.t1)

    def _receive(self, resp: Response, now: float) -> None:
        lay = self.layer
        st = self.state
        code = resp.status
        if self.invite:
            if st in (CALLING, PROCEEDING):
                if code < 200:
                    self.state = PROCEEDING
                    self._stop("A")
                    self._stop("B")
                    self.on_response(resp)
                    return
                self.final = resp
                self._stop("A")
                self._stop("B")
                if code < 300:
                    self.state = ACCEPTED
                    self._start("M", now + 64 * lay.t1)
                else:
                    ack = make_ack_for_non2xx(self.request, resp)
                    self._ack = ack.to_bytes()
                    lay._send(self._ack, self.target)
                    self.state = COMPLETED
                    if self.reliable:
                        self.terminate()
                    else:
                        self._start("D", now + 32.0)
                self.on_response(resp)
            elif st == ACCEPTED and 200 <= code < 300:
                self.on_response(resp)          # retransmitted / forked 2xx: the TU re-ACKs
            elif st == COMPLETED and code >= 300 and self._ack is not None:
                lay.stats["retransmissions"] += 1
                lay._send(self._ack, self.target)
            return
        if st in (TRYING, PROCEEDING):
            if code < 200:
                self.state = PROCEEDING
                self.on_response(resp)
                return
            self.final = resp
            self._stop("E")
            self._stop("F")
            self.state = COMPLETED
            if self.reliable:
                self.terminate()
            else:
                self._start("K", now + lay.t4)
            self.on_response(resp)

    def _fire(self, name: str, now: float) -> None:
        lay = self.layer
        if name in ("A", "E"):
            if name == "A":
                self._interval *= 2
            elif self.state == PROCEEDING:
                self._interval = lay.t2
            else:
                self._interval = min(self._interval * 2, lay.t2)
            lay.stats["retransmissions"] += 1
            lay._send(self._data, self.target)
            self._start(name, now + self._interval)
        elif name in ("B", "F"):
            lay.stats["timeouts"] += 1
            self.terminate()
            self.on_timeout()
        else:  # D, K, M
            self.terminate()


class ServerTransaction(_Transaction):
    """UAS transaction.  The TU answers with :meth:`respond`; retransmitted requests are answered
    from ``last_response`` without reaching the TU."""

    __slots__ = ("_ack_key", "_interval", "last_response", "last_status", "on_ack_timeout", "request")

    def __init__(self, layer: TransactionLayer, key: str, request: Request, target: Any, reliable: bool) -> None:
        super().__init__(layer, key, request, target, reliable)
        # Kept while the TU may still need it; a non-INVITE transaction drops it with its final
        # response (it lingers 32 s for retransmissions and, at thousands of keepalives a
        # second, the parsed requests would otherwise dominate memory and GC work).
        self.request: Request | None = request
        self.state = PROCEEDING if self.invite else TRYING
        self.last_response: bytes | None = None
        self.last_status = 0
        self._interval = layer.t1
        self._ack_key: str | None = None
        self.on_ack_timeout: Callable[[], None] | None = None

    @property
    def final_sent(self) -> bool:
        return self.last_status >= 200

    def respond(self, resp: Response | bytes, now: float, status: int | None = None) -> bool:
        """Send a response through the transaction; False when a final one was already sent.

        ``resp`` may be pre-serialised bytes (then give ``status``) for pre-built fast answers.
        """
        if self.state in (COMPLETED, CONFIRMED, ACCEPTED, TERMINATED):
            return False
        if isinstance(resp, Response):
            code = resp.status
            data = resp.to_bytes()
        else:
            if status is None:
                raise ValueError("status is required with pre-serialised responses")
            code = status
            data = resp
        lay = self.layer
        self.last_response = data
        self.last_status = code
        lay._send(data, self.target)
        if code < 200:
            self.state = PROCEEDING
            return True
        if not self.invite:
            self.state = COMPLETED
            self.request = None
            if self.reliable:
                self.terminate()
            else:
                self._start("J", now + 64 * lay.t1)
            return True
        if code < 300:
            self.state = ACCEPTED
            req = self.request
            assert req is not None
            self._ack_key = f"{req.call_id}|{req.cseq[0]}"
            lay._ack_waiters[self._ack_key] = self
            if not self.reliable:
                self._start("G2", now + lay.t1)
            self._start("L", now + 64 * lay.t1)
        else:
            self.state = COMPLETED
            if not self.reliable:
                self._start("G", now + lay.t1)
            self._start("H", now + 64 * lay.t1)
        return True

    def _retransmission(self) -> None:
        """The request arrived again: resend the last response where the state machine says so."""
        lay = self.layer
        lay.stats["absorbed"] += 1
        if self.last_response is not None and self.state in (PROCEEDING, COMPLETED, ACCEPTED):
            lay._send(self.last_response, self.target)

    def _ack(self, now: float) -> None:
        if self.state == COMPLETED:
            self.state = CONFIRMED
            self._stop("G")
            self._stop("H")
            if self.reliable:
                self.terminate()
            else:
                self._start("I", now + self.layer.t4)
        elif self.state == ACCEPTED:
            self._stop("G2")       # the 2xx got through; linger for Timer L only

    def _fire(self, name: str, now: float) -> None:
        lay = self.layer
        if name in ("G", "G2"):
            self._interval = min(self._interval * 2, lay.t2)
            if self.last_response is not None:
                lay.stats["retransmissions"] += 1
                lay._send(self.last_response, self.target)
            self._start(name, now + self._interval)
        elif name == "H":
            lay.stats["ack_timeouts"] += 1
            self.terminate()
            if self.on_ack_timeout:
                self.on_ack_timeout()
        else:  # I, J, L
            self.terminate()

    def terminate(self) -> None:
        if self._ack_key is not None and self.layer._ack_waiters.get(self._ack_key) is self:
            del self.layer._ack_waiters[self._ack_key]
        super().terminate()


class TransactionLayer:
    """All transactions of an endpoint plus their single timer heap."""

    def __init__(self, send: SendFn, *, t1: float = T1, t2: float = T2, t4: float = T4) -> None:
        self._send = send
        self.t1 = t1
        self.t2 = t2
        self.t4 = t4
        self.client: dict[str, ClientTransaction] = {}
        self.server: dict[str, ServerTransaction] = {}
        self._ack_waiters: dict[str, ServerTransaction] = {}
        self._heap: list[tuple[float, int, _Transaction, str]] = []
        self._seq = itertools.count()
        self.stats: dict[str, int] = {"retransmissions": 0, "absorbed": 0, "timeouts": 0, "ack_timeouts": 0,
                                      "stray_responses": 0}

    # timers ---------------------------------------------------------------------------------
    def _schedule(self, txn: _Transaction, name: str, deadline: float) -> None:
        txn.timers[name] = deadline
        heapq.heappush(self._heap, (deadline, next(self._seq), txn, name))

    def next_deadline(self) -> float | None:
        """Earliest pending timer, or None; drops cancelled entries on the way."""
        heap = self._heap
        while heap:
            deadline, _, txn, name = heap[0]
            if txn.timers.get(name) == deadline:
                return deadline
            heapq.heappop(heap)
        return None

    def handle_timeout(self, now: float) -> None:
        """Fire every timer due at ``now``."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            deadline, _, txn, name = heapq.heappop(heap)
            if txn.timers.get(name) != deadline:
                continue
            del txn.timers[name]
            txn._fire(name, now)

    def _forget(self, txn: _Transaction) -> None:
        table: dict[str, Any] = self.server if isinstance(txn, ServerTransaction) else self.client
        if table.get(txn.key) is txn:
            del table[txn.key]

    # client side ----------------------------------------------------------------------------
    def send_request(self, req: Request, target: Any, now: float, *, reliable: bool,
                     on_response: Callable[[Response], None], on_timeout: Callable[[], None]) -> ClientTransaction:
        """Start a UAC transaction (the request must carry its top Via with a branch)."""
        if req.method == "ACK":
            raise ValueError("ACK has no client transaction; send it directly")
        top = _first_via_line(req)
        branch, _ = _via_fields(top)
        if not branch:
            raise ValueError("request Via has no branch")
        key = f"{branch}|{req.method}"
        if key in self.client:
            raise ValueError(f"duplicate client transaction {key}")
        txn = ClientTransaction(self, key, req, target, reliable, on_response, on_timeout)
        self.client[key] = txn
        txn._begin(now)
        return txn

    def receive_response(self, resp: Response, now: float) -> bool:
        """Route a response to its client transaction; False (and counted) when none matches."""
        key = client_key_of_response(resp)
        txn = self.client.get(key) if key else None
        if txn is None:
            self.stats["stray_responses"] += 1
            return False
        txn._receive(resp, now)
        return True

    # server side ----------------------------------------------------------------------------
    def receive_request(self, req: Request, target: Any, now: float, *,
                        reliable: bool) -> tuple[bool, ServerTransaction | None]:
        """Match or create the server transaction of an incoming request.

        Returns ``(new, txn)``: ``(True, txn)`` for a new request the TU must see;
        ``(False, None)`` for a retransmission (answered here) or the ACK of a non-2xx;
        ``(True, None)`` for an ACK of a 2xx (no transaction; the TU sees it).
        """
        key = server_key(req)
        txn = self.server.get(key)
        if req.method == "ACK":
            if txn is not None and txn.state in (COMPLETED, CONFIRMED):
                txn._ack(now)
                return False, None
            waiter = self._ack_waiters.get(f"{req.call_id}|{req.cseq[0]}")
            if waiter is not None:
                waiter._ack(now)
            return True, None
        if txn is not None:
            txn._retransmission()
            return False, None
        txn = ServerTransaction(self, key, req, target, reliable)
        self.server[key] = txn
        return True, txn

    def find_invite(self, cancel: Request) -> ServerTransaction | None:
        """The INVITE server transaction a CANCEL refers to (same branch and sent-by)."""
        key = server_key(cancel)
        return self.server.get(key[: key.rfind("|")] + "|INVITE")

    def __len__(self) -> int:
        return len(self.client) + len(self.server)
