"""INVITE dialogs towards devices (live play, playback, download), used by the media service.

The media service builds the offer and owns the RTP side; this module only does the SIP: INVITE with
the GB `Subject: <channel>:<ssrc>,<platform>:0`, ACK after the 2xx, BYE either way. A BYE from the
device (camera rebooted, NVR ran out of channels) ends the session through `on_session_ended`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from xueliang.sip.errors import SipError, SipTimeout
from xueliang.sip.headers import NameAddr

from .errors import GbError, GbTimeout
from .sdp import Sdp, parse_sdp

if TYPE_CHECKING:
    from xueliang.sip.endpoint import Incoming
    from xueliang.sip.message import Response

    from .service import GbService

__all__ = ["InviteManager", "InviteSession"]

log = logging.getLogger("xueliang.gb28181.invite")


@dataclass(eq=False)
class InviteSession:
    """One INVITE dialog with a device."""

    device_id: str
    channel_id: str
    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: str            # our From value without tag
    remote_uri: str           # To value without tag
    remote_target: str        # Contact of the 2xx (where in-dialog requests go)
    remote_host: str
    remote_port: int
    sip_transport: str
    transport: str            # media transport asked by the media service
    offer: Sdp
    answer: Sdp
    cseq: int = 1
    route_set: list[str] = field(default_factory=list)
    started_at: float = field(default_factory=time.time)
    ended: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ssrc(self) -> str | None:
        return self.answer.ssrc or self.offer.ssrc


class InviteManager:
    """Open dialogs by Call-ID; INVITE/ACK/BYE."""

    def __init__(self, service: GbService) -> None:
        self.svc = service
        self.sessions: dict[str, InviteSession] = {}

    async def invite(self, device_id: str, channel_id: str, offer: Sdp, *, transport: str,
                     timeout: float | None = None) -> InviteSession:
        svc = self.svc
        dev = svc.require_device(device_id)
        t = timeout if timeout is not None else max(svc.settings.command_timeout, 8.0)
        ssrc = offer.ssrc or "0000000000"
        body = offer.to_bytes()
        req = svc.new_request("INVITE", dev, channel_id, body, "application/sdp",
                              extra=[("Subject", f"{channel_id}:{ssrc},{svc.settings.sip_id}:0")])
        try:
            resp = await svc.endpoint.request(req, dev.address, transport=dev.transport, timeout=t)
        except SipTimeout:
            svc.stats["timeouts"] += 1
            raise GbTimeout(device_id, f"INVITE {channel_id}", t) from None
        except (SipError, OSError) as exc:
            raise GbError(f"INVITE {channel_id} to {device_id} failed: {exc}", device_id=device_id,
                          command="INVITE") from None
        if resp.status >= 300:
            svc.stats["invite_failures"] += 1
            raise GbError(f"device {device_id} answered {resp.status} {resp.reason} to INVITE {channel_id}",
                          device_id=device_id, command="INVITE", status=resp.status)
        sess = self._session_from_2xx(dev.device_id, channel_id, req, resp, dev.address, dev.transport,
                                      transport, offer)
        self._ack(sess)
        self.sessions[sess.call_id] = sess
        svc.stats["invites"] += 1
        return sess

    def _session_from_2xx(self, device_id: str, channel_id: str, req: Any, resp: Response,
                          addr: tuple[str, int], sip_transport: str, transport: str, offer: Sdp) -> InviteSession:
        try:
            answer = parse_sdp(resp.body) if resp.body else Sdp()
        except ValueError as exc:
            raise GbError(f"device {device_id} answered INVITE {channel_id} with unreadable SDP: {exc}",
                          device_id=device_id, command="INVITE") from None
        contact = resp.headers.get("Contact") or ""
        target = req.uri
        if contact:
            try:
                target = NameAddr.parse(contact).uri
            except SipError:
                target = req.uri
        from_value = req.headers.get("From") or ""
        to_value = resp.headers.get("To") or req.headers.get("To") or ""
        routes = list(reversed(resp.headers.get_all("Record-Route")))
        return InviteSession(
            device_id=device_id, channel_id=channel_id, call_id=req.call_id, local_tag=req.from_tag or "",
            remote_tag=resp.to_tag or "", local_uri=from_value.split(";tag=")[0],
            remote_uri=to_value.split(";tag=")[0], remote_target=target, remote_host=addr[0], remote_port=addr[1],
            sip_transport=sip_transport, transport=transport, offer=offer, answer=answer,
            cseq=req.cseq[0], route_set=routes,
        )

    def _dialog_request(self, sess: InviteSession, method: str, cseq: int) -> Any:
        from xueliang.sip.message import Request

        headers = [
            ("From", f"{sess.local_uri};tag={sess.local_tag}"),
            ("To", f"{sess.remote_uri};tag={sess.remote_tag}" if sess.remote_tag else sess.remote_uri),
            ("Call-ID", sess.call_id),
            ("CSeq", f"{cseq} {method}"),
            ("Contact", self.svc.contact()),
        ]
        headers.extend(("Route", r) for r in sess.route_set)
        return Request(method, sess.remote_target, headers)

    def _ack(self, sess: InviteSession) -> None:
        ack = self._dialog_request(sess, "ACK", sess.cseq)
        self.svc.endpoint.send_ack(ack, (sess.remote_host, sess.remote_port), transport=sess.sip_transport)

    async def bye(self, sess: InviteSession, timeout: float = 4.0) -> None:
        """End the dialog from our side; errors are logged, never raised (the device may be gone)."""
        if sess.ended:
            return
        sess.ended = True
        self.sessions.pop(sess.call_id, None)
        sess.cseq += 1
        req = self._dialog_request(sess, "BYE", sess.cseq)
        try:
            resp = await self.svc.endpoint.request(req, (sess.remote_host, sess.remote_port),
                                                   transport=sess.sip_transport, timeout=timeout)
            if resp.status >= 300:
                log.info("BYE to %s/%s answered %s", sess.device_id, sess.channel_id, resp.status)
        except (SipError, OSError) as exc:
            log.info("BYE to %s/%s failed: %s", sess.device_id, sess.channel_id, exc)

    def on_bye(self, inc: Incoming) -> None:
        sess = self.sessions.pop(inc.request.call_id, None)
        if sess is None:
            inc.respond(481, "Call/Transaction Does Not Exist")
            return
        inc.respond(200, "OK")
        sess.ended = True
        self._ended(sess, "device sent BYE")

    def end_device(self, device_id: str, reason: str) -> None:
        """The device went offline: its dialogs are gone with it."""
        for call_id, sess in list(self.sessions.items()):
            if sess.device_id == device_id:
                del self.sessions[call_id]
                sess.ended = True
                self._ended(sess, reason)

    def _ended(self, sess: InviteSession, reason: str) -> None:
        cb = self.svc.on_session_ended
        if cb is None:
            return
        try:
            cb(sess, reason)
        except Exception:
            log.exception("on_session_ended callback failed")

    def device_of(self, call_id: str) -> str | None:
        sess = self.sessions.get(call_id)
        return sess.device_id if sess else None

