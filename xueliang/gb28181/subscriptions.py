"""Platform -> device subscriptions (Catalog, Alarm, MobilePosition) and the NOTIFYs they bring.

A subscription is a SUBSCRIBE dialog: the device's 2xx gives the remote tag; refreshes are sent
in-dialog at 80 % of the granted Expires by the service's periodic tick (no task per subscription);
`stop()` sends Expires: 0 to each. The Event header names the package after the MANSCDP command
(`Catalog`, `Alarm`, `MobilePosition`); some platforms use `presence` for the last two, which is why
the mapping is a table (the body's CmdType carries the meaning either way).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from xueliang.sip.errors import SipError, SipTimeout
from xueliang.sip.message import Request, new_call_id, new_tag

from . import manscdp
from .errors import GbError, GbTimeout

if TYPE_CHECKING:
    from xueliang.sip.endpoint import Incoming

    from .service import GbService

__all__ = ["Subscription", "SubscriptionManager"]

log = logging.getLogger("xueliang.gb28181.subscriptions")

EVENT_PACKAGE = {"Catalog": "Catalog", "Alarm": "Alarm", "MobilePosition": "MobilePosition"}


@dataclass(eq=False)
class Subscription:
    device_id: str
    kind: str               # Catalog | Alarm | MobilePosition
    call_id: str
    local_tag: str
    remote_tag: str
    target: str
    cseq: int
    expires: int
    refresh_at: float       # monotonic
    fields: dict[str, Any]
    active: bool = True


class SubscriptionManager:
    def __init__(self, service: GbService) -> None:
        self.svc = service
        self.subs: dict[str, Subscription] = {}   # by Call-ID
        self._refreshing: set[str] = set()

    def find(self, device_id: str, kind: str) -> Subscription | None:
        for sub in self.subs.values():
            if sub.device_id == device_id and sub.kind == kind and sub.active:
                return sub
        return None

    async def subscribe(self, device_id: str, kind: str, *, expires: int = 3600,
                        **fields: Any) -> Subscription:
        """Subscribe to `kind` events of a device; returns once the device accepted."""
        if kind not in EVENT_PACKAGE:
            raise ValueError(f"unknown subscription kind {kind!r} (Catalog, Alarm, MobilePosition)")
        svc = self.svc
        dev = svc.require_device(device_id)
        old = self.find(device_id, kind)
        if old is not None:
            await self._send(old, old.expires)
            return old
        sub = Subscription(device_id, kind, new_call_id(svc.local_host()), new_tag(), "",
                           f"sip:{device_id}@{dev.host}:{dev.port}", 0, expires, 0.0, dict(fields))
        await self._send(sub, expires)
        self.subs[sub.call_id] = sub
        return sub

    async def unsubscribe(self, sub: Subscription) -> None:
        sub.active = False
        self.subs.pop(sub.call_id, None)
        try:
            await self._send(sub, 0, timeout=3.0)
        except (GbError, GbTimeout) as exc:
            log.info("unsubscribe %s/%s: %s", sub.device_id, sub.kind, exc)

    async def _send(self, sub: Subscription, expires: int, timeout: float | None = None) -> None:
        svc = self.svc
        dev = svc.require_device(sub.device_id)
        sub.cseq += 1
        sn = svc.commands.next_sn()
        body = manscdp.query(sub.kind, sn, sub.device_id, dev.charset, **sub.fields)
        to = f"<sip:{sub.device_id}@{dev.domain or svc.settings.sip_domain}>"
        if sub.remote_tag:
            to += f";tag={sub.remote_tag}"
        headers = [
            ("From", f"<sip:{svc.settings.sip_id}@{svc.settings.sip_domain}>;tag={sub.local_tag}"),
            ("To", to), ("Call-ID", sub.call_id), ("CSeq", f"{sub.cseq} SUBSCRIBE"),
            ("Contact", svc.contact()), ("Event", EVENT_PACKAGE[sub.kind]), ("Expires", str(expires)),
            ("Content-Type", "Application/MANSCDP+xml"),
        ]
        req = Request("SUBSCRIBE", sub.target, headers, body)
        t = timeout if timeout is not None else svc.settings.command_timeout
        try:
            resp = await svc.endpoint.request(req, dev.address, transport=dev.transport, timeout=t)
        except SipTimeout:
            raise GbTimeout(sub.device_id, f"SUBSCRIBE {sub.kind}", t) from None
        except (SipError, OSError) as exc:
            raise GbError(f"SUBSCRIBE {sub.kind} to {sub.device_id} failed: {exc}",
                          device_id=sub.device_id, command="SUBSCRIBE") from None
        if resp.status >= 300:
            raise GbError(f"device {sub.device_id} answered {resp.status} to SUBSCRIBE {sub.kind}",
                          device_id=sub.device_id, command="SUBSCRIBE", status=resp.status)
        if resp.to_tag:
            sub.remote_tag = resp.to_tag
        granted = resp.headers.get("Expires")
        if granted and granted.strip().isdigit():
            expires = int(granted.strip())
        sub.expires = expires
        sub.refresh_at = time.monotonic() + max(1.0, expires * 0.8)

    def on_notify(self, inc: Incoming) -> None:
        """Answer 200 at once, then decode and dispatch the body like a MESSAGE Notify."""
        req = inc.request
        sub = self.subs.get(req.call_id)
        state = (req.headers.get("Subscription-State") or "").strip().lower()
        inc.respond(200, "OK")
        self.svc.stats["notifies"] += 1
        if sub is not None and state.startswith("terminated"):
            sub.active = False
            self.subs.pop(sub.call_id, None)
        device_id = sub.device_id if sub else None
        self.svc.on_manscdp_body(device_id, inc, notify=True)

    def tick(self, now: float) -> None:
        for sub in list(self.subs.values()):
            if sub.active and sub.refresh_at <= now and sub.call_id not in self._refreshing:
                self._refreshing.add(sub.call_id)
                self.svc.spawn(self._refresh(sub))

    async def _refresh(self, sub: Subscription) -> None:
        try:
            await self._send(sub, sub.expires)
        except (GbError, GbTimeout, LookupError) as exc:
            log.info("refresh of %s subscription of %s failed: %s", sub.kind, sub.device_id, exc)
            sub.refresh_at = time.monotonic() + 30.0
        finally:
            self._refreshing.discard(sub.call_id)

    def drop_device(self, device_id: str) -> None:
        for call_id, sub in list(self.subs.items()):
            if sub.device_id == device_id:
                sub.active = False
                del self.subs[call_id]

    async def stop(self) -> None:
        for sub in list(self.subs.values()):
            await self.unsubscribe(sub)
