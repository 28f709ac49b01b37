"""SIP dialogs (RFC 3261 12) for INVITE sessions and SUBSCRIBE subscriptions (RFC 6665).

A Dialog is plain state: Call-ID, tags, CSeq counters, remote target and route set.  It builds
in-dialog requests (BYE, INFO for MANSRTSP, NOTIFY, re-SUBSCRIBE, ACK) with the right
Request-URI/Route (loose and strict routing) and checks the CSeq of requests it receives.  Via
and transport are the endpoint's business.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterable
from dataclasses import dataclass, field

from xueliang.sip.errors import SipError, SipParseError
from xueliang.sip.headers import NameAddr, parse_uri
from xueliang.sip.message import Headers, Request, Response, new_tag

__all__ = ["Dialog", "dialog_from_2xx", "dialog_from_request"]


def _strip_tag(value: str) -> str:
    na = NameAddr.parse(value)
    na.params.pop("tag", None)
    return str(na)


def _contact_uri(msg: Request | Response) -> str:
    c = msg.headers.get("Contact")
    if not c:
        raise SipError("no Contact to build a dialog from", 400)
    return NameAddr.parse(c).uri


@dataclass
class Dialog:
    """State of one dialog; ``kind`` is "invite" or "subscribe"."""

    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: str            # name-addr of our side, without tag (From of our requests)
    remote_uri: str           # name-addr of the peer, without tag
    remote_target: str        # peer's Contact URI: Request-URI of in-dialog requests
    local_seq: int = 0
    remote_seq: int | None = None
    route_set: list[str] = field(default_factory=list)
    kind: str = "invite"
    event: str | None = None  # SUBSCRIBE dialogs: the Event package ("Catalog", "presence" ...)
    invite_seq: int | None = None  # CSeq of the INVITE that made the dialog (for its ACK)

    @property
    def id(self) -> tuple[str, str, str]:
        return self.call_id, self.local_tag, self.remote_tag

    def _base(self, method: str, seq: int, headers: Iterable[tuple[str, str]]) -> Request:
        uri = self.remote_target
        routes = list(self.route_set)
        if routes:
            first = NameAddr.parse(routes[0])
            if "lr" not in parse_uri(first.uri).params:
                # strict routing (RFC 3261 12.2.1.1): first route becomes the Request-URI
                uri = first.uri
                routes = [*routes[1:], f"<{self.remote_target}>"]
        h = Headers()
        for r in routes:
            h.add("Route", r)
        h.add("Max-Forwards", "70")
        h.add("From", f"{self.local_uri};tag={self.local_tag}")
        h.add("To", f"{self.remote_uri};tag={self.remote_tag}")
        h.add("Call-ID", self.call_id)
        h.add("CSeq", f"{seq} {method}")
        for n, v in headers:
            h.add(n, v)
        return Request(method, uri, h)

    def make_request(self, method: str, body: bytes = b"", content_type: str | None = None,
                     headers: Iterable[tuple[str, str]] = ()) -> Request:
        """Next in-dialog request (BYE, INFO, NOTIFY, SUBSCRIBE ...); increments the local CSeq.

        The endpoint adds Via (and User-Agent) when it sends it.
        """
        if method in ("ACK", "CANCEL"):
            raise ValueError("use make_ack() for ACK; CANCEL belongs to the INVITE transaction")
        self.local_seq += 1
        req = self._base(method, self.local_seq, headers)
        if content_type:
            req.headers.add("Content-Type", content_type)
        req.body = body
        return req

    def make_ack(self, cseq: int | None = None, body: bytes = b"", content_type: str | None = None) -> Request:
        """The ACK for a 2xx to our INVITE (same CSeq number as the INVITE)."""
        seq = cseq if cseq is not None else (self.invite_seq if self.invite_seq is not None else self.local_seq)
        req = self._base("ACK", seq, ())
        if content_type:
            req.headers.add("Content-Type", content_type)
        req.body = body
        return req

    def receive_request(self, req: Request) -> None:
        """Validate an in-dialog request (CSeq must grow; ACK/CANCEL exempt) and follow target refreshes.

        Raises SipError(500) on an out-of-order CSeq, as RFC 3261 12.2.2 asks.
        """
        num, _method = req.cseq
        if req.method not in ("ACK", "CANCEL"):
            if self.remote_seq is not None and num <= self.remote_seq:
                raise SipError("CSeq lower than the dialog's remote sequence", 500)
            self.remote_seq = num
        if req.method in ("INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY") and req.headers.get("Contact"):
            with contextlib.suppress(SipParseError):
                self.remote_target = _contact_uri(req)

    def matches(self, msg: Request | Response) -> bool:
        """Whether a message belongs to this dialog (by Call-ID and tags, from our point of view)."""
        if msg.call_id != self.call_id:
            return False
        if isinstance(msg, Request):
            return msg.from_tag == self.remote_tag and msg.to_tag == self.local_tag
        return msg.from_tag == self.local_tag and msg.to_tag == self.remote_tag


def dialog_from_2xx(request: Request, response: Response) -> Dialog:
    """UAC side: the dialog made by a 2xx to our INVITE or SUBSCRIBE (RFC 3261 12.1.2).

    For SUBSCRIBE a NOTIFY may arrive before the 2xx; pass that NOTIFY as ``response``-like
    source via :func:`dialog_from_request` with ``uac=True`` instead.
    """
    local_tag = request.from_tag
    remote_tag = response.to_tag
    if not local_tag or not remote_tag:
        raise SipError("2xx without tags cannot make a dialog", 400)
    num, method = request.cseq
    routes = list(reversed(response.headers.get_all("Record-Route")))
    kind = "subscribe" if method == "SUBSCRIBE" else "invite"
    return Dialog(
        call_id=request.call_id, local_tag=local_tag, remote_tag=remote_tag,
        local_uri=_strip_tag(request.headers.get("From") or ""),
        remote_uri=_strip_tag(response.headers.get("To") or ""),
        remote_target=_contact_uri(response), local_seq=num, remote_seq=None, route_set=routes,
        kind=kind, event=request.headers.get("Event") if kind == "subscribe" else None,
        invite_seq=num if method == "INVITE" else None,
    )


def dialog_from_request(request: Request, local_tag: str | None = None, *, local_seq: int | None = None) -> Dialog:
    """UAS side: the dialog a new INVITE or SUBSCRIBE makes (RFC 3261 12.1.1).

    ``local_tag`` is the To tag put in the 2xx (a fresh one when omitted; read it back from
    ``dialog.local_tag``).  The local CSeq starts at a random value unless given.
    """
    remote_tag = request.from_tag
    if not remote_tag:
        raise SipError("request without From tag cannot make a dialog", 400)
    num, method = request.cseq
    kind = "subscribe" if method == "SUBSCRIBE" else "invite"
    return Dialog(
        call_id=request.call_id, local_tag=local_tag or request.to_tag or new_tag(), remote_tag=remote_tag,
        local_uri=_strip_tag(request.headers.get("To") or ""),
        remote_uri=_strip_tag(request.headers.get("From") or ""),
        remote_target=_contact_uri(request),
        local_seq=local_seq if local_seq is not None else random.randint(1, 2**20), remote_seq=num,
        route_set=request.headers.get_all("Record-Route"), kind=kind,
        event=request.headers.get("Event") if kind == "subscribe" else None,
    )
