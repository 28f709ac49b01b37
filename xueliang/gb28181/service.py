"""GbService: the platform's GB/T 28181 device side (devices and lower platforms registering with us).

One object per process, fed by the SipEndpoint handler (`handle`, a plain function: it never awaits
and spawns a task only when something must be awaited). It owns the in-memory registry, the one
periodic checker (offline deadlines, catalog timeouts, subscription refreshes), and delegates:
REGISTER -> `registry.Registrar`, catalog pages -> `catalog.CatalogManager`, queries/controls ->
`commands.Commands`, SUBSCRIBE/NOTIFY -> `subscriptions`, INVITE/BYE -> `invite`.

Hot path: a keepalive MESSAGE is recognised by a byte search (no XML parse), touches one slotted
object and is answered with a 200 built by string concatenation from the request's
Via/From/To/Call-ID/CSeq, handed to the server transaction pre-serialised. The database is written
only when a device changes state (offline -> online), through the batch writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Coroutine, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from xueliang.sip.message import Request, new_call_id, new_tag

from . import manscdp, ptz
from .catalog import CatalogManager
from .commands import Commands
from .errors import DeviceOffline, GbError, GbTimeout, UnknownDevice
from .invite import InviteManager, InviteSession
from .registry import DeviceState, DeviceTable, Registrar, gb_version_of, uri_user_host
from .subscriptions import Subscription, SubscriptionManager

if TYPE_CHECKING:
    from collections.abc import Callable

    from xueliang.config import Settings
    from xueliang.events import EventBus
    from xueliang.sip.endpoint import Incoming, SipEndpoint

    from .sdp import Sdp

__all__ = ["GbService"]

log = logging.getLogger("xueliang.gb28181.service")

_KEEPALIVE_MARK = b"<CmdType>Keepalive</CmdType>"


def _is_keepalive(req: Any) -> bool:
    return _KEEPALIVE_MARK in req.body
AUTO_QUERY_CONCURRENCY = 256
_STAT_KEYS = (
    "registrations", "register_challenges", "register_stale", "register_failures", "unregistrations",
    "keepalives", "messages", "notifies", "unknown_device", "timeouts", "online_transitions",
    "offline_transitions", "catalog_pages", "catalog_items", "catalog_timeouts", "catalog_syncs",
    "command_errors", "unmatched_responses", "bad_bodies", "alarms", "positions", "invites",
    "invite_failures", "handler_errors",
)


def _wall(ts: float | None = None) -> datetime:
    return datetime.fromtimestamp(time.time() if ts is None else ts, UTC)


def _charset_of(encoding: str) -> str:
    return "UTF-8" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else "GB2312"


def _parse_time(value: Any) -> datetime:
    """GB times are local and zone-less ('2026-11-25T10:00:00'); bad or missing -> now."""
    if isinstance(value, str) and value.strip():
        text = value.strip().replace(" ", "T")
        with contextlib.suppress(ValueError):
            dt = datetime.fromisoformat(text)
            return dt.astimezone(UTC) if dt.tzinfo is None else dt
    return _wall()


def _float(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return None if f != f else f


def _int(value: Any) -> int | None:
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


class GbService:
    """The device service: registration, keepalive, catalog, queries/controls, notifies, INVITE."""

    def __init__(self, settings: Settings, endpoint: SipEndpoint, writer: Any, events: EventBus,
                 repo: Any) -> None:
        self.settings = settings
        self.endpoint = endpoint
        # Keepalives are idempotent: answered without a SIP transaction (DESIGN.md hot path).
        endpoint.stateless = _is_keepalive
        self.writer = writer
        self.events = events
        self.repo = repo
        self.stats: dict[str, int] = defaultdict(int, dict.fromkeys(_STAT_KEYS, 0))
        self.table = DeviceTable()
        self.tag = new_tag()   # To-tag of our answers to out-of-dialog requests (REGISTER, MESSAGE)
        self._tag_suffix = ";tag=" + self.tag
        ua = getattr(endpoint, "user_agent", "")
        self._ok_tail = (f"User-Agent: {ua}\r\n" if ua else "") + "Content-Length: 0\r\n\r\n"
        self.channel_map: dict[str, str] = {}            # channel_id -> device_id
        self.device_channels: dict[str, set[str]] = {}   # device_id -> its channel IDs (bulk offline)
        self.registrar = Registrar(self)
        self.catalog = CatalogManager(self)
        self.commands = Commands(self)
        self.subscriptions = SubscriptionManager(self)
        self.invites = InviteManager(self)
        # set by the media service: called when a device ends (BYE) or loses an INVITE dialog
        self.on_session_ended: Callable[[InviteSession, str], None] | None = None
        self.auto_query = True
        # first registrations after an outage come in thousands: bound the DeviceInfo+Catalog storm
        self._auto_slots = asyncio.Semaphore(AUTO_QUERY_CONCURRENCY)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ticker: asyncio.Task[None] | None = None
        self._cseq = 0
        self._started = False

    # ================================================================ lifecycle
    async def start(self, runtime_devices: list[dict[str, Any]]) -> None:
        """Restore devices whose registration is still valid as online; start the periodic checker.

        Restored devices get a grace deadline of keepalive_interval * count from now, so their next
        keepalive lands without a re-REGISTER; devices the store believed online but whose
        registration lapsed while we were down are written offline.
        """
        s = self.settings
        now_wall = time.time()
        now = time.monotonic()
        grace = s.keepalive_interval * s.keepalive_timeout_count
        restored = 0
        for row in runtime_devices:
            device_id = row.get("device_id")
            if not device_id:
                continue
            self.registrar.passwords[device_id] = row.get("password") or None
            registered_at = _ts(row.get("registered_at"))
            expires = int(row.get("expires") or 0)
            status = row.get("status")
            if status != "online":
                continue
            if registered_at is None or not row.get("host") or registered_at + expires <= now_wall:
                self.writer.status_change("device", device_id, "offline", _wall(), "registration expired")
                self.events.publish("device.status", device_id=device_id, status="offline",
                                    reason="registration expired")
                self.stats["offline_transitions"] += 1
                continue
            dev = DeviceState(device_id)
            dev.host = str(row.get("host"))
            dev.port = int(row.get("port") or 5060)
            dev.transport = (row.get("transport") or "udp").lower()
            dev.gb_version = row.get("gb_version") or "2016"
            dev.ver_header = "3.0" if dev.gb_version == "2022" else None
            dev.charset = row.get("charset") or "GB2312"
            dev.expires = expires
            dev.registered_at = registered_at
            dev.expires_at = now + (registered_at + expires - now_wall)
            dev.last_seen = now
            dev.heartbeat_interval = float(row["heartbeat_interval"]) if row.get("heartbeat_interval") else None
            dev.heartbeat_count = int(row["heartbeat_count"]) if row.get("heartbeat_count") else None
            dev.password = row.get("password") or None
            dev.domain = device_id[:10]
            dev.online = True
            self.table.add(dev)
            self.table.schedule(device_id, min(now + grace, dev.expires_at))
            restored += 1
        log.info("device service: %d devices restored online", restored)
        self._started = True
        self._ticker = asyncio.create_task(self._tick_loop(), name="gb-ticker")
        self.spawn(self._load_channel_map())

    async def stop(self) -> None:
        """Unsubscribe, stop the checker and background tasks. Registrations stay in the store."""
        self._started = False
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.subscriptions.stop(), 5.0)
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        # remember the last keepalive of every online device for the next start's restore
        now = time.monotonic()
        for dev in self.table.devices.values():
            if dev.online:
                self.writer.upsert_device({"device_id": dev.device_id,
                                           "keepalive_at": _wall(time.time() - (now - dev.last_seen))})

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """A tracked background task (cancelled at stop; exceptions logged, never lost)."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            if isinstance(exc, (GbError, GbTimeout, LookupError)):
                log.info("background task: %s", exc)
            else:
                log.error("background task failed", exc_info=exc)

    async def _load_channel_map(self) -> None:
        """Fill channel_id -> device_id from the store in pages (lookups fall back to the repo)."""
        page, size = 1, 5000
        while True:
            try:
                items, total = await self.repo.list_channels(page=page, size=size)
            except Exception:
                log.exception("channel map load failed")
                return
            for ch in items:
                if ch.get("device_id") and ch.get("channel_id") and ch.get("source", "gb") == "gb":
                    self.remember_channel(ch["device_id"], ch["channel_id"])
            if len(items) < size or page * size >= total:
                return
            page += 1

    async def _tick_loop(self) -> None:
        s = self.settings
        period = min(1.0, max(0.05, s.keepalive_interval / 4))
        while True:
            await asyncio.sleep(period)
            try:
                self.tick(time.monotonic())
            except Exception:
                log.exception("device service tick failed")

    def tick(self, now: float) -> None:
        """One pass of the periodic checker: deadlines, catalog timeouts, subscription refreshes."""
        s = self.settings
        interval, count = s.keepalive_interval, s.keepalive_timeout_count

        def deadline_of(dev: DeviceState) -> float:
            return dev.deadline(interval, count)

        for dev in list(self.table.due(now, deadline_of)):
            reason = "registration expired" if dev.expires_at <= now else "keepalive timeout"
            self.set_offline(dev, reason)
        self.catalog.check_timeouts(now)
        self.subscriptions.tick(now)

    # ================================================================ SIP entry
    def handle(self, inc: Incoming) -> None:
        """SipEndpoint handler: one new request. Never raises (a bug answers 500, is counted)."""
        try:
            method = inc.request.method
            if method == "MESSAGE":
                self._on_message(inc)
            elif method == "REGISTER":
                self.registrar.on_register(inc)
            elif method == "NOTIFY":
                self.subscriptions.on_notify(inc)
            elif method == "BYE":
                self.invites.on_bye(inc)
            elif method in ("ACK", "CANCEL"):
                return  # ACK of our 2xx needs nothing; CANCEL is answered by the endpoint
            elif method in ("OPTIONS", "INFO"):
                inc.respond(200, "OK", to_tag=self.tag)
            else:
                inc.respond(405, "Method Not Allowed", headers=[
                    ("Allow", "REGISTER, MESSAGE, NOTIFY, BYE, ACK, OPTIONS, INFO")])
        except Exception:
            self.stats["handler_errors"] += 1
            log.exception("device service failed on %s", inc.request.method)
            with contextlib.suppress(Exception):
                if not inc.responded:
                    inc.respond(500)

    def _ok_fast(self, inc: Incoming) -> None:
        """200 OK built by concatenation (the request's Via lines already carry received/rport).

        The constant part (User-Agent, Content-Length, our To-tag) is prepared once; measured in
        bench/sip_keepalive.py against make_response + to_bytes.
        """
        h = inc.request.headers
        parts = ["SIP/2.0 200 OK"]
        add = parts.append
        for k, v in zip(h._keys, h._values, strict=True):
            if k == "via":
                add("Via: " + v)
            elif k == "from":
                add("From: " + v)
            elif k == "to":
                add("To: " + v if ";tag=" in v else "To: " + v + self._tag_suffix)
            elif k == "call-id":
                add("Call-ID: " + v)
            elif k == "cseq":
                add("CSeq: " + v)
        add(self._ok_tail)
        inc.send_response_bytes("\r\n".join(parts).encode("utf-8", "surrogateescape"), 200)

    def _on_message(self, inc: Incoming) -> None:
        req = inc.request
        body = req.body
        self.stats["messages"] += 1
        device_id = uri_user_host(req.headers.get("From") or "")[0]
        if _KEEPALIVE_MARK in body:
            dev = self.table.devices.get(device_id)
            now = time.monotonic()
            if dev is None or dev.expires_at <= now:
                self._unknown(inc, device_id)
                return
            self._keepalive(inc, dev, now, body)
            return
        dev = self.table.devices.get(device_id)
        if dev is None and device_id in self.channel_map:
            # some NVRs and lower platforms send alarms/positions with a channel ID in From
            dev = self.table.devices.get(self.channel_map[device_id])
        now = time.monotonic()
        if dev is None or dev.expires_at <= now:
            self._unknown(inc, device_id)
            return
        dev.last_seen = now
        try:
            msg = manscdp.decode(body)
        except manscdp.ManscdpError as exc:
            self.stats["bad_bodies"] += 1
            inc.respond(400, "Bad MANSCDP Body", to_tag=self.tag)
            log.info("bad MANSCDP body from %s: %s", device_id, exc)
            return
        if msg.root == "Notify" and msg.cmd_type == "Keepalive":
            self._keepalive(inc, dev, now, body)
            return
        inc.respond(200, "OK", to_tag=self.tag)
        dev.charset = _charset_of(msg.encoding)
        self.dispatch(dev.device_id, msg)

    def _unknown(self, inc: Incoming, device_id: str) -> None:
        """A MESSAGE from a device that is not registered (or whose registration lapsed).

        403, not 200: a 200 would tell the device all is well and it would never re-register,
        staying invisible. Not 401 either: eXosip-based devices answer a 401 to a MESSAGE by
        re-sending the same MESSAGE with credentials (a wasted round trip that still leaves them
        unregistered), whereas a 403 counts as a failed keepalive in the common stacks
        (eXosip, Hikvision, Dahua) and after that they REGISTER again.
        """
        self.stats["unknown_device"] += 1
        inc.respond(403, "Forbidden", to_tag=self.tag)

    def _keepalive(self, inc: Incoming, dev: DeviceState, now: float, body: bytes) -> None:
        dev.last_seen = now
        self.stats["keepalives"] += 1
        self._ok_fast(inc)
        src = inc.source
        if src[1] != dev.port or src[0] != dev.host:   # NAT rebinding: answer where it now comes from
            dev.host, dev.port = src
            dev.transport = inc.transport
        if not dev.online:
            head = body[:80].lower()
            dev.charset = "UTF-8" if b"utf-8" in head or b"utf8" in head else "GB2312"
            self.set_online(dev, "keepalive")

    # ================================================================ state transitions
    def on_registered(self, device_id: str, inc: Incoming, *, domain: str, expires: int, ver: str | None,
                      contact: str, password: str | None) -> None:
        """Called by the registrar after a 200 OK was sent."""
        now = time.monotonic()
        dev = self.table.get(device_id)
        if dev is None:
            dev = DeviceState(device_id)
            self.table.add(dev)
        was_online = dev.online and dev.expires_at > now
        dev.host, dev.port = inc.source
        dev.transport = inc.transport
        dev.domain = domain or device_id[:10]
        dev.contact = contact
        dev.ver_header = ver.strip() if ver else None
        dev.gb_version = gb_version_of(ver)
        dev.expires = expires
        dev.expires_at = now + expires
        dev.registered_at = time.time()
        dev.last_seen = now
        dev.password = password
        self.writer.upsert_device({
            "device_id": device_id, "host": dev.host, "port": dev.port, "transport": dev.transport,
            "gb_version": dev.gb_version, "expires": expires, "registered_at": _wall(dev.registered_at),
            "keepalive_at": _wall(dev.registered_at),
        })
        if not was_online:
            self.set_online(dev, "register")
        else:
            self.table.schedule(device_id, dev.deadline(self.settings.keepalive_interval,
                                                         self.settings.keepalive_timeout_count))

    def on_unregistered(self, device_id: str) -> None:
        dev = self.table.get(device_id)
        if dev is not None and dev.online:
            self.set_offline(dev, "unregister")
        self.table.remove(device_id)

    def set_online(self, dev: DeviceState, reason: str) -> None:
        dev.online = True
        at = _wall()
        self.stats["online_transitions"] += 1
        self.writer.status_change("device", dev.device_id, "online", at, reason)
        self.events.publish("device.status", device_id=dev.device_id, status="online", reason=reason)
        self.table.schedule(dev.device_id, dev.deadline(self.settings.keepalive_interval,
                                                         self.settings.keepalive_timeout_count))
        if self.auto_query and self._started:
            self.spawn(self._auto_queries(dev.device_id))

    def set_offline(self, dev: DeviceState, reason: str) -> None:
        """Device offline: one device status row, one bulk channel-status write, no event per channel.

        At 500k channels an outage would otherwise write (and publish) a status event per channel;
        the device's own event carries the meaning, and channel rows are flipped to offline in one
        batched statement so channel lists filtered by status stay right.
        """
        if not dev.online:
            return
        dev.online = False
        at = _wall()
        self.stats["offline_transitions"] += 1
        self.writer.status_change("device", dev.device_id, "offline", at, reason)
        self.events.publish("device.status", device_id=dev.device_id, status="offline", reason=reason)
        self._channels_offline(dev.device_id)
        self.commands.cancel_device(dev.device_id, reason)
        self.invites.end_device(dev.device_id, f"device offline ({reason})")
        self.subscriptions.drop_device(dev.device_id)
        self.catalog.fail(dev.device_id, f"device offline ({reason})")

    def remember_channel(self, device_id: str, channel_id: str) -> None:
        self.channel_map[channel_id] = device_id
        self.device_channels.setdefault(device_id, set()).add(channel_id)

    def forget_channel(self, device_id: str, channel_id: str) -> None:
        self.channel_map.pop(channel_id, None)
        chans = self.device_channels.get(device_id)
        if chans is not None:
            chans.discard(channel_id)

    def _channels_offline(self, device_id: str) -> None:
        """Flip the device's channels to offline in one batched write, without per-channel events.

        Uses the writer's bulk `device_channels_status(device_id, status)` (one UPDATE .. WHERE
        device_id) when the store offers it; otherwise a status-only upsert of the known channels,
        which the writer turns into one executemany.
        """
        bulk = getattr(self.writer, "device_channels_status", None)
        if bulk is not None:
            bulk(device_id, "offline")
            return
        ids = self.device_channels.get(device_id)
        if ids:
            self.writer.upsert_channels(device_id, [{"channel_id": c, "status": "offline"} for c in ids])

    async def _auto_queries(self, device_id: str) -> None:
        """First registration or back online: DeviceInfo, then Catalog, without an operator's click."""
        async with self._auto_slots:
            try:
                await self.device_info(device_id)
            except (GbError, GbTimeout, LookupError) as exc:
                log.info("DeviceInfo of %s after it came online: %s", device_id, exc)
            if not self.catalog.running(device_id):
                with contextlib.suppress(LookupError, RuntimeError):
                    await self.refresh_catalog(device_id)

    # ================================================================ MANSCDP dispatch
    def on_manscdp_body(self, device_id: str | None, inc: Incoming, *, notify: bool) -> None:
        """A NOTIFY (already answered) body: decode and dispatch like a MESSAGE."""
        req = inc.request
        if device_id is None:
            device_id = uri_user_host(req.headers.get("From") or "")[0]
        if not req.body:
            return
        try:
            msg = manscdp.decode(req.body)
        except manscdp.ManscdpError as exc:
            self.stats["bad_bodies"] += 1
            log.info("bad MANSCDP NOTIFY body from %s: %s", device_id, exc)
            return
        dev = self.table.get(device_id)
        if dev is not None:
            dev.last_seen = time.monotonic()
        self.dispatch(device_id, msg)

    def dispatch(self, device_id: str, msg: manscdp.Manscdp) -> None:
        root, cmd = msg.root, msg.cmd_type
        if root == "Response":
            if cmd == "Catalog":
                sum_num, items = manscdp.catalog_items(msg)
                self.catalog.on_response(device_id, sum_num, items)
                return
            matched = self.commands.on_response(device_id, msg)
            if cmd == "DeviceInfo":
                self._device_info_update(device_id, msg)
            elif cmd == "ConfigDownload":
                self._config_update(device_id, msg)
            if not matched and cmd not in ("DeviceInfo", "ConfigDownload"):
                self.stats["unmatched_responses"] += 1
        elif root == "Notify":
            if cmd == "Alarm":
                self._alarm(device_id, msg)
            elif cmd == "MobilePosition":
                self._position(device_id, msg)
            elif cmd == "Catalog":
                _, items = manscdp.catalog_items(msg)
                self.catalog.on_notify(device_id, items)
            elif cmd == "MediaStatus":
                log.info("media status from %s: %s", device_id, msg.fields.get("NotifyType"))
            elif cmd == "Keepalive":
                dev = self.table.get(device_id)
                if dev is not None:
                    dev.last_seen = time.monotonic()
                    if not dev.online and dev.expires_at > dev.last_seen:
                        self.set_online(dev, "keepalive")

    def _device_info_update(self, device_id: str, msg: manscdp.Manscdp) -> None:
        f = msg.fields
        row: dict[str, Any] = {"device_id": device_id}
        for src, col in (("DeviceName", "name"), ("Manufacturer", "manufacturer"), ("Model", "model"),
                         ("Firmware", "firmware")):
            v = f.get(src)
            if isinstance(v, str) and v.strip() and v.strip().lower() != "null":
                row[col] = v.strip()
        ch = _int(f.get("Channel"))
        if ch is not None:
            row["channel_count"] = ch
        if len(row) > 1:
            self.writer.upsert_device(row)

    def _config_update(self, device_id: str, msg: manscdp.Manscdp) -> None:
        basic = msg.fields.get("BasicParam")
        if not isinstance(basic, dict):
            return
        hb, cnt = _int(basic.get("HeartBeatInterval")), _int(basic.get("HeartBeatCount"))
        dev = self.table.get(device_id)
        if dev is not None:
            if hb:
                dev.heartbeat_interval = float(hb)
            if cnt:
                dev.heartbeat_count = cnt
        row: dict[str, Any] = {"device_id": device_id}
        if hb:
            row["heartbeat_interval"] = hb
        if cnt:
            row["heartbeat_count"] = cnt
        if len(row) > 1:
            self.writer.upsert_device(row)

    def _alarm(self, device_id: str, msg: manscdp.Manscdp) -> None:
        f = msg.fields
        info = f.get("Info") if isinstance(f.get("Info"), dict) else {}
        at = _parse_time(f.get("AlarmTime"))
        row = {
            "device_id": device_id, "channel_id": msg.device_id or device_id,
            "priority": _int(f.get("AlarmPriority")), "method": _int(f.get("AlarmMethod")),
            "type": _int((info or {}).get("AlarmType")), "description": f.get("AlarmDescription") or "",
            "time": at, "longitude": _float(f.get("Longitude")), "latitude": _float(f.get("Latitude")),
        }
        self.stats["alarms"] += 1
        self.writer.add_alarm(row)
        self._publish_alarm({**row, "time": at.isoformat()})
        dev = self.table.get(device_id)
        if dev is not None:  # 2016 §9.4: the platform confirms an alarm notification with a Response
            body = manscdp.result_response("Alarm", msg.sn, msg.device_id or device_id, True,
                                           encoding=dev.charset)
            self.spawn(self._send_quiet(dev, body, "Alarm response"))

    def _publish_alarm(self, data: dict[str, Any]) -> None:
        """CONTRACTS names a `type` key in alarm events, which `EventBus.publish(type, **data)` cannot
        take as a keyword; it goes through once publish's first parameter is positional-only, and is
        sent as `alarm_type` until then."""
        try:
            self.events.publish("alarm", **data)
        except TypeError:
            data["alarm_type"] = data.pop("type", None)
            self.events.publish("alarm", **data)

    async def _send_quiet(self, dev: DeviceState, body: bytes, what: str) -> None:
        with contextlib.suppress(GbError, GbTimeout):
            await self.commands.send_message(dev, body, what, timeout=5.0)

    def _position(self, device_id: str, msg: manscdp.Manscdp) -> None:
        f = msg.fields
        at = _parse_time(f.get("Time"))
        row = {
            "device_id": device_id, "channel_id": msg.device_id or device_id, "time": at,
            "longitude": _float(f.get("Longitude")), "latitude": _float(f.get("Latitude")),
            "speed": _float(f.get("Speed")), "direction": _float(f.get("Direction")),
            "altitude": _float(f.get("Altitude")),
        }
        self.stats["positions"] += 1
        self.writer.add_position(row)
        self.events.publish("position", **{**row, "time": at.isoformat()})

    # ================================================================ helpers for the parts
    def local_host(self) -> str:
        host = self.endpoint.local_address[0]
        if host in ("", "0.0.0.0", "::"):
            return self.endpoint.advertised_host or self.settings.advertised_media_ip
        return host

    def contact(self) -> str:
        return f"<sip:{self.settings.sip_id}@{self.local_host()}:{self.endpoint.local_address[1]}>"

    def new_request(self, method: str, dev: DeviceState, target: str, body: bytes, content_type: str | None,
                    *, extra: Iterable[tuple[str, str]] = ()) -> Request:
        """An out-of-dialog request to a device (or one of its channels), sent where it registered from."""
        s = self.settings
        self._cseq = (self._cseq + 1) % 2_000_000_000
        headers = [
            ("From", f"<sip:{s.sip_id}@{s.sip_domain}>;tag={new_tag()}"),
            ("To", f"<sip:{target}@{dev.domain or s.sip_domain}>"),
            ("Call-ID", new_call_id(self.local_host())),
            ("CSeq", f"{self._cseq or 1} {method}"),
        ]
        if method in ("INVITE", "SUBSCRIBE"):
            headers.append(("Contact", self.contact()))
        if dev.gb_version == "2022":
            headers.append(("X-GB-Ver", "3.0"))
        headers.extend(extra)
        if content_type:
            headers.append(("Content-Type", content_type))
        return Request(method, f"sip:{target}@{dev.host}:{dev.port}", headers, body)

    def require_device(self, device_id: str) -> DeviceState:
        dev = self.table.get(device_id)
        if dev is not None and dev.online:
            return dev
        if dev is not None or device_id in self.registrar.passwords:
            raise DeviceOffline(f"device {device_id} is offline")
        raise UnknownDevice(f"unknown device {device_id}")

    async def device_of_channel(self, channel_id: str) -> DeviceState:
        device_id = self.channel_map.get(channel_id)
        if device_id is None:
            if channel_id in self.table.devices:
                device_id = channel_id
            else:
                row = await self.repo.get_channel(channel_id)
                if row is None or not row.get("device_id"):
                    raise UnknownDevice(f"unknown channel {channel_id}")
                if row.get("source", "gb") != "gb":
                    raise UnknownDevice(f"channel {channel_id} is not a GB/T 28181 channel")
                device_id = str(row["device_id"])
                self.remember_channel(device_id, channel_id)
        return self.require_device(device_id)

    # ================================================================ public API (platform.gb)
    def online_devices(self) -> int:
        return sum(1 for d in self.table.devices.values() if d.online)

    def device_state(self, device_id: str) -> dict[str, Any] | None:
        """Runtime view of one device (address, edition, last keepalive) for the API's detail page."""
        dev = self.table.get(device_id)
        if dev is None:
            return None
        return {"device_id": dev.device_id, "online": dev.online, "host": dev.host, "port": dev.port,
                "transport": dev.transport, "gb_version": dev.gb_version, "charset": dev.charset,
                "expires": dev.expires, "registered_at": dev.registered_at,
                "seconds_since_keepalive": round(time.monotonic() - dev.last_seen, 3),
                "catalog": self.catalog.progress(device_id)}

    def catalog_progress(self, device_id: str) -> dict[str, Any] | None:
        return self.catalog.progress(device_id)

    async def refresh_catalog(self, device_id: str) -> None:
        """Start a catalog sync and return at once (progress: events and catalog_progress)."""
        dev = self.require_device(device_id)
        if self.catalog.running(device_id):
            raise RuntimeError(f"a catalog sync of {device_id} is already running")
        sn = self.commands.next_sn()
        self.catalog.begin(device_id, sn)
        self.stats["catalog_syncs"] += 1
        self.spawn(self._send_catalog_query(dev, sn))

    async def _send_catalog_query(self, dev: DeviceState, sn: int) -> None:
        try:
            await self.commands.send_message(dev, manscdp.catalog_query(sn, dev.device_id, encoding=dev.charset),
                                             "Catalog")
        except (GbError, GbTimeout) as exc:
            self.catalog.fail(dev.device_id, str(exc))

    async def device_info(self, device_id: str) -> dict[str, Any]:
        dev = self.require_device(device_id)
        return await self.commands.query(dev, "DeviceInfo",
                                         lambda sn: manscdp.device_info_query(sn, device_id, encoding=dev.charset))

    async def device_status(self, device_id: str) -> dict[str, Any]:
        dev = self.require_device(device_id)
        return await self.commands.query(
            dev, "DeviceStatus", lambda sn: manscdp.device_status_query(sn, device_id, encoding=dev.charset))

    async def config_download(self, device_id: str, config_type: str = "BasicParam") -> dict[str, Any]:
        dev = self.require_device(device_id)
        return await self.commands.query(
            dev, "ConfigDownload",
            lambda sn: manscdp.config_download_query(sn, device_id, config_type, encoding=dev.charset))

    async def preset_query(self, channel_id: str) -> list[dict[str, Any]]:
        dev = await self.device_of_channel(channel_id)
        res = await self.commands.query(
            dev, "PresetQuery", lambda sn: manscdp.preset_query(sn, channel_id, encoding=dev.charset),
            target=channel_id)
        return [dict(i) for i in res.get("items", []) if isinstance(i, dict)]

    async def record_info(self, channel_id: str, start: str, end: str, record_type: str = "all") -> dict[str, Any]:
        """Recordings of a channel between two GB times ('YYYY-MM-DDTHH:MM:SS'), all pages merged."""
        dev = await self.device_of_channel(channel_id)
        return await self.commands.query(
            dev, "RecordInfo",
            lambda sn: manscdp.record_info_query(sn, channel_id, start, end, record_type=record_type,
                                                 encoding=dev.charset),
            target=channel_id)

    async def mobile_position_query(self, device_id: str, interval: int = 5) -> dict[str, Any]:
        """Ask for positions; they arrive as Notify/MobilePosition (stored and published)."""
        dev = self.require_device(device_id)
        await self.commands.send_message(
            dev, manscdp.mobile_position_query(self.commands.next_sn(), device_id, interval, encoding=dev.charset),
            "MobilePosition")
        return {"result": "OK", "answer": "200"}

    async def ptz(self, channel_id: str, command: str, speed: int) -> dict[str, Any]:
        code = ptz.command_ptz(command, speed)   # ValueError on a bad command: the API answers 422
        dev = await self.device_of_channel(channel_id)
        return await self.commands.control(
            dev, "DeviceControl", "PTZCmd",
            lambda sn: manscdp.ptz_control(sn, channel_id, code, encoding=dev.charset),
            target=channel_id, expects_response=False)

    async def preset(self, channel_id: str, op: str, index: int) -> dict[str, Any]:
        code = ptz.preset_cmd(op, index)
        dev = await self.device_of_channel(channel_id)
        return await self.commands.control(
            dev, "DeviceControl", "PTZCmd",
            lambda sn: manscdp.ptz_control(sn, channel_id, code, encoding=dev.charset),
            target=channel_id, expects_response=False)

    async def reboot(self, device_id: str) -> dict[str, Any]:
        dev = self.require_device(device_id)
        return await self.commands.control(
            dev, "DeviceControl", "TeleBoot", lambda sn: manscdp.teleboot(sn, device_id, encoding=dev.charset),
            expects_response=False)

    async def record(self, channel_id: str, start: bool) -> dict[str, Any]:
        dev = await self.device_of_channel(channel_id)
        return await self.commands.control(
            dev, "DeviceControl", "RecordCmd",
            lambda sn: manscdp.record_control(sn, channel_id, start, encoding=dev.charset), target=channel_id)

    async def guard(self, device_id: str, arm: bool) -> dict[str, Any]:
        dev = self.require_device(device_id)
        return await self.commands.control(
            dev, "DeviceControl", "GuardCmd",
            lambda sn: manscdp.guard_control(sn, device_id, arm, encoding=dev.charset))

    async def reset_alarm(self, device_id: str, method: str | None = None,
                          alarm_type: str | None = None) -> dict[str, Any]:
        dev = self.require_device(device_id)
        return await self.commands.control(
            dev, "DeviceControl", "AlarmCmd",
            lambda sn: manscdp.alarm_reset(sn, device_id, method=method, alarm_type=alarm_type,
                                           encoding=dev.charset))

    async def iframe(self, channel_id: str) -> dict[str, Any]:
        dev = await self.device_of_channel(channel_id)
        return await self.commands.control(
            dev, "DeviceControl", "IFameCmd",
            lambda sn: manscdp.iframe_control(sn, channel_id, encoding=dev.charset), target=channel_id,
            expects_response=False)

    async def home_position(self, channel_id: str, enabled: bool, preset: int, reset_time: int) -> dict[str, Any]:
        dev = await self.device_of_channel(channel_id)
        return await self.commands.control(
            dev, "DeviceControl", "HomePosition",
            lambda sn: manscdp.home_position(sn, channel_id, enabled=enabled, preset=preset, reset_time=reset_time,
                                             encoding=dev.charset), target=channel_id)

    async def drag_zoom(self, channel_id: str, *, zoom_in: bool, length: int, width: int, mid_x: int,
                        mid_y: int, length_x: int, length_y: int) -> dict[str, Any]:
        dev = await self.device_of_channel(channel_id)
        return await self.commands.control(
            dev, "DeviceControl", "DragZoomIn" if zoom_in else "DragZoomOut",
            lambda sn: manscdp.drag_zoom(sn, channel_id, zoom_in=zoom_in, length=length, width=width,
                                         mid_x=mid_x, mid_y=mid_y, length_x=length_x, length_y=length_y,
                                         encoding=dev.charset), target=channel_id, expects_response=False)

    async def device_config(self, device_id: str, **fields: Any) -> dict[str, Any]:
        """BasicParam: name, expiration, heartbeat_interval, heartbeat_count (others refused)."""
        allowed = {"name", "expiration", "heartbeat_interval", "heartbeat_count"}
        bad = set(fields) - allowed
        if bad:
            raise ValueError(f"unknown device_config fields: {', '.join(sorted(bad))}")
        dev = self.require_device(device_id)
        res = await self.commands.control(
            dev, "DeviceConfig", "DeviceConfig",
            lambda sn: manscdp.device_config(sn, device_id, encoding=dev.charset, **fields))
        if res.get("result", "OK") == "OK":
            row: dict[str, Any] = {"device_id": device_id}
            if fields.get("heartbeat_interval"):
                dev.heartbeat_interval = float(fields["heartbeat_interval"])
                row["heartbeat_interval"] = int(fields["heartbeat_interval"])
            if fields.get("heartbeat_count"):
                dev.heartbeat_count = int(fields["heartbeat_count"])
                row["heartbeat_count"] = int(fields["heartbeat_count"])
            if fields.get("name"):
                row["name"] = fields["name"]
            if len(row) > 1:
                self.writer.upsert_device(row)
        return res

    async def ptz_precise(self, channel_id: str, pan: float, tilt: float, zoom: float) -> dict[str, Any]:
        """2022 PTZPreciseCtrl; refused for 2016 devices before anything is sent."""
        dev = await self.device_of_channel(channel_id)
        fields = {"PTZPreciseCtrl": {"Pan": pan, "Tilt": tilt, "Zoom": zoom}}
        return await self.commands.control(
            dev, "DeviceControl", "PTZPreciseCtrl",
            lambda sn: manscdp.control(sn, channel_id, fields, encoding=dev.charset), target=channel_id)

    async def broadcast(self, device_id: str, channel_id: str) -> dict[str, Any]:
        """Voice broadcast invitation: Notify/Broadcast with SourceID (us) and TargetID (the channel)."""
        dev = self.require_device(device_id)
        sid = self.settings.sip_id

        def build(sn: int) -> bytes:
            enc = "UTF-8" if dev.charset == "UTF-8" else "GB2312"
            return (f'<?xml version="1.0" encoding="{enc}"?>\r\n<Notify>\r\n<CmdType>Broadcast</CmdType>\r\n'
                    f"<SN>{sn}</SN>\r\n<SourceID>{sid}</SourceID>\r\n<TargetID>{channel_id}</TargetID>\r\n"
                    "</Notify>\r\n").encode("ascii")

        return await self.commands.control(dev, "Broadcast", "Broadcast", build)

    async def subscribe(self, device_id: str, kind: str, *, expires: int = 3600, **fields: Any) -> Subscription:
        return await self.subscriptions.subscribe(device_id, kind, expires=expires, **fields)

    async def unsubscribe(self, device_id: str, kind: str) -> bool:
        sub = self.subscriptions.find(device_id, kind)
        if sub is None:
            return False
        await self.subscriptions.unsubscribe(sub)
        return True

    async def invite(self, device_id: str, channel_id: str, offer: Sdp, *, transport: str) -> InviteSession:
        return await self.invites.invite(device_id, channel_id, offer, transport=transport)

    async def bye(self, session: InviteSession) -> None:
        await self.invites.bye(session)

    def forget_device(self, device_id: str, *, deleted: bool = False) -> None:
        """The API added, changed or deleted a device: drop what is cached about it.

        Call it after repo.add_device / update_device (password) / delete_device, so the next
        REGISTER reads the store again (unknown IDs are otherwise remembered for a few seconds).
        `deleted=True` also takes an online device offline and forgets its registration.
        """
        self.registrar.passwords.pop(device_id, None)
        self.registrar._negative.pop(device_id, None)
        if not deleted:
            return
        dev = self.table.get(device_id)
        if dev is not None and dev.online:
            self.set_offline(dev, "deleted")
        self.table.remove(device_id)


def _ts(value: Any) -> float | None:
    """ISO string / datetime / epoch from the store -> epoch seconds (naive values are UTC)."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, datetime):
        dt = value
    else:
        try:
            dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()
