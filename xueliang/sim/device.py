"""A simulated GB/T 28181 device: IPC, NVR or lower platform, 2016 or 2022, over real SIP.

Why it exists: the platform must be tested (and demonstrated) against many devices that behave
like field equipment, including the bad habits (wrong SumNum, duplicates, catalog that stops half
way, silence, wrong SSRC). Every bad habit is a switchable fault in `SimDevice.faults`, changeable
while the device runs, so a test can flip it and watch the platform cope.

The device speaks through `xueliang.sip.endpoint.SipEndpoint` (its own, or one shared by many
simulated devices with `SimHost`), registers with digest authentication, keeps alive, answers
queries and controls, accepts subscriptions, and answers INVITEs; media is sent by
`xueliang.sim.media.MediaSender` when enabled.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import itertools
import logging
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from xueliang.gb28181 import manscdp as mc
from xueliang.gb28181.ids import make_id
from xueliang.gb28181.manscdp import Manscdp, ManscdpError
from xueliang.gb28181.ptz import decode_ptz
from xueliang.gb28181.sdp import Sdp, parse_sdp
from xueliang.sip.auth import authorization_header
from xueliang.sip.dialog import Dialog, dialog_from_request
from xueliang.sip.endpoint import Incoming, SipEndpoint
from xueliang.sip.errors import SipError
from xueliang.sip.headers import parse_uri
from xueliang.sip.message import Request, Response, new_call_id, new_tag

log = logging.getLogger(__name__)

Address = tuple[str, int]

MANSCDP_TYPE = "Application/MANSCDP+xml"
FAULTS = frozenset(
    {
        "silent",
        "wrong_password",
        "sumnum_wrong",
        "catalog_half",
        "sumnum_zero",
        "duplicates",
        "utf8",
        "wrong_ssrc",
        "no_media",
        "send_before_ack",
    }
)
KINDS = {"ipc": 132, "nvr": 118, "dvr": 111, "platform": 200}
GB_VERSIONS = {"2016": "2.0", "2022": "3.0"}

_PLACES = ["东门入口", "西门出口", "南广场", "北停车场", "大厅", "走廊", "仓库", "机房"]


def _now_str() -> str:
    return _dt.datetime.now().strftime("%Y-%m-%dT%H:%M:%S")


@dataclass
class SimChannel:
    """One catalog item: a camera, or for a lower platform a business group / virtual organisation."""

    channel_id: str
    name: str
    parent_id: str = ""
    kind: str = "camera"  # camera | business_group | virtual_org | device
    civil_code: str = "340200"
    address: str = "模拟地址"
    longitude: float = 117.2272
    latitude: float = 31.8206
    business_group_id: str = ""
    ptz_type: int = 1
    status: str = "ON"
    manufacturer: str = "xueliang-sim"
    model: str = "SIM-CAM"
    extra: dict[str, Any] = field(default_factory=dict)

    def to_item(self, gb_version: str = "2016") -> dict[str, Any]:
        """The catalog <Item> for this channel (2022 adds the new fields)."""
        if self.kind in ("business_group", "virtual_org"):
            item: dict[str, Any] = {"DeviceID": self.channel_id, "Name": self.name}
            if self.parent_id:
                item["ParentID"] = self.parent_id
            if self.business_group_id:
                item["BusinessGroupID"] = self.business_group_id
            return {**item, **self.extra}
        item = {
            "DeviceID": self.channel_id,
            "Name": self.name,
            "Manufacturer": self.manufacturer,
            "Model": self.model,
            "Owner": "Owner",
            "CivilCode": self.civil_code,
            "Address": self.address,
            "Parental": 0,
            "ParentID": self.parent_id or None,  # None: element left out (an IPC is its own root)
            "SafetyWay": 0,
            "RegisterWay": 1,
            "Secrecy": 0,
            "Status": self.status,
            "Longitude": self.longitude,
            "Latitude": self.latitude,
            "Info": {"PTZType": self.ptz_type},
        }
        if self.business_group_id:
            item["BusinessGroupID"] = self.business_group_id
        if gb_version == "2022":
            item.update(
                {
                    "GrassrootsCode": self.civil_code + "001",
                    "PointType": 1,
                    "FunctionType": 1,
                    "MAC": "02:00:00:"
                    + ":".join(f"{b:02x}" for b in int(self.channel_id[-6:]).to_bytes(3, "big")),
                    "InstallTime": "2023-01-01T00:00:00",
                    "ManagementUnit": "模拟管理单位",
                    "RecordSaveDays": 30,
                }
            )
        item.update(self.extra)
        return item


@dataclass
class _Call:
    dialog: Dialog
    channel_id: str
    offer: Sdp
    ssrc: int
    transport: str  # device role: udp | tcp-active | tcp-passive
    remote: Address | None
    local_port: int | None
    sender: Any = None
    started: bool = False


@dataclass
class _Subscription:
    dialog: Dialog
    event: str
    dest: Address
    transport: str
    expires_at: float
    task: asyncio.Task[None] | None = None


def _free_udp_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def build_channels(
    kind: str, device_id: str, channels: int, *, prefix: str, first_serial: int, civil_code: str = "340200"
) -> list[SimChannel]:
    """The catalog of a simulated device (IDs unique across devices given distinct serial ranges)."""
    out: list[SimChannel] = []
    base_lng, base_lat = 117.2272, 31.8206
    if kind == "ipc":
        return [
            SimChannel(
                device_id,
                f"{_PLACES[first_serial % len(_PLACES)]} {first_serial}",
                parent_id="",
                civil_code=civil_code,
                longitude=base_lng,
                latitude=base_lat,
            )
        ]
    if kind == "platform":
        bg = make_id(prefix, 215, first_serial)
        out.append(SimChannel(bg, "模拟业务分组", kind="business_group", parent_id=device_id))
        orgs = [make_id(prefix, 216, first_serial + i) for i in range(max(1, (channels + 3) // 4))]
        for i, org in enumerate(orgs):
            out.append(
                SimChannel(org, f"虚拟组织 {i + 1}", kind="virtual_org", parent_id=bg, business_group_id=bg)
            )
        for i in range(channels):
            cid = make_id(prefix, 131, first_serial + i)
            out.append(
                SimChannel(
                    cid,
                    f"{_PLACES[i % len(_PLACES)]} {i + 1}",
                    parent_id=orgs[i // 4 % len(orgs)],
                    business_group_id=bg,
                    civil_code=civil_code,
                    longitude=round(base_lng + 0.001 * (first_serial + i), 6),
                    latitude=round(base_lat + 0.0005 * (first_serial + i), 6),
                )
            )
        return out
    for i in range(channels):
        cid = make_id(prefix, 131, first_serial + i)
        out.append(
            SimChannel(
                cid,
                f"{_PLACES[i % len(_PLACES)]} {i + 1}",
                parent_id=device_id,
                civil_code=civil_code,
                longitude=round(base_lng + 0.001 * (first_serial + i), 6),
                latitude=round(base_lat + 0.0005 * (first_serial + i), 6),
            )
        )
    return out


class SimDevice:
    """One simulated device. `await start()` registers and keeps alive; `await stop()` unregisters."""

    def __init__(
        self,
        device_id: str,
        *,
        server: Address,
        server_id: str = "34020000002000000001",
        server_domain: str | None = None,
        password: str = "12345678",
        kind: str = "nvr",
        channels: int | list[SimChannel] = 4,
        channel_prefix: str | None = None,
        channel_first_serial: int = 1,
        transport: str = "udp",
        gb_version: str = "2016",
        keepalive: float = 60.0,
        expires: int = 3600,
        local_host: str = "127.0.0.1",
        local_port: int = 0,
        media: bool = False,
        codec: str = "h264",
        catalog_page: int = 4,
        name: str | None = None,
        endpoint: SipEndpoint | None = None,
        faults: Iterable[str] = (),
        reboot_delay: float = 0.5,
        request_timeout: float = 8.0,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}")
        if gb_version not in GB_VERSIONS:
            raise ValueError("gb_version must be 2016 or 2022")
        self.device_id = device_id
        self.server = server
        self.server_id = server_id
        self.server_domain = server_domain or server_id[:10]
        self.password = password
        self.kind = kind
        self.transport = transport.lower()
        self.gb_version = gb_version
        self.keepalive_interval = keepalive
        self.expires = expires
        self.local_host = local_host
        self.local_port = local_port
        self.media = media
        self.codec = codec
        self.catalog_page = max(1, catalog_page)
        self.name = name or f"模拟{kind.upper()} {device_id[-4:]}"
        self.faults: set[str] = set(faults)
        self.reboot_delay = reboot_delay
        self.request_timeout = request_timeout
        if isinstance(channels, list):
            self.channels = channels
        else:
            self.channels = build_channels(
                kind,
                device_id,
                channels,
                prefix=channel_prefix or device_id[:10],
                first_serial=channel_first_serial,
            )
        self.presets: dict[str, dict[int, str]] = {}
        self.received_controls: list[dict[str, Any]] = []
        self.received_queries: list[Manscdp] = []
        self.sent_keepalives = 0
        self.register_count = 0
        self.last_register_status: int | None = None
        self.registered = asyncio.Event()
        self.guard_armed = False
        self.recording: set[str] = set()
        self.calls: dict[str, _Call] = {}
        self.subscriptions: dict[str, _Subscription] = {}
        self.errors: list[str] = []
        self._own_endpoint = endpoint is None
        self.endpoint = endpoint
        self._sn = itertools.count(1)
        self._cseq = itertools.count(1)
        self._reg_call_id = ""
        self._reg_tag = new_tag()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._life: asyncio.Task[None] | None = None
        self._running = False
        self._wake = asyncio.Event()

    # ------------------------------------------------------------------ properties
    @property
    def encoding(self) -> str:
        return "UTF-8" if "utf8" in self.faults else "GB2312"

    @property
    def channel_ids(self) -> set[str]:
        return {c.channel_id for c in self.channels}

    @property
    def contact(self) -> str:
        assert self.endpoint is not None
        host, port = self.endpoint.local_address
        if host in ("0.0.0.0", ""):
            host = self.local_host
        tp = ";transport=tcp" if self.transport == "tcp" else ""
        return f"<sip:{self.device_id}@{host}:{port}{tp}>"

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        t = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(t)
        t.add_done_callback(self._task_done)
        return t

    def _task_done(self, t: asyncio.Task[Any]) -> None:
        self._tasks.discard(t)
        if not t.cancelled() and t.exception() is not None:
            exc = t.exception()
            self.errors.append(f"{type(exc).__name__}: {exc}")
            log.warning("sim %s: task failed: %r", self.device_id, exc)

    # ------------------------------------------------------------------ lifecycle
    async def start(self, *, wait_registered: float | None = None) -> None:
        """Open the endpoint (unless shared), then register and keep alive in the background."""
        if self.endpoint is None:
            self.endpoint = SipEndpoint(self.handle, user_agent="xueliang-sim")
            await self.endpoint.start(self.local_host, self.local_port, udp=True, tcp=True)
        self._running = True
        self._life = asyncio.get_running_loop().create_task(self._lifecycle())
        if wait_registered:
            await asyncio.wait_for(self.registered.wait(), wait_registered)

    async def stop(self, *, unregister: bool = True) -> None:
        """Unregister (Expires: 0), stop media and timers, close the endpoint if it is ours."""
        self._running = False
        if self._life is not None:
            self._life.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._life
        for call in list(self.calls.values()):
            await self._stop_call(call)
        self.calls.clear()
        for sub in self.subscriptions.values():
            if sub.task is not None:
                sub.task.cancel()
        self.subscriptions.clear()
        if unregister and self.registered.is_set() and "silent" not in self.faults:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.register(expires=0), 3.0)
        self.registered.clear()
        for t in list(self._tasks):
            t.cancel()
        for t in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if self._own_endpoint and self.endpoint is not None:
            await self.endpoint.close()
            self.endpoint = None

    async def _lifecycle(self) -> None:
        """Register (retrying with back-off), keep alive, re-register before expiry."""
        backoff = 0.5
        while self._running:
            if "silent" in self.faults:
                await self._sleep(min(self.keepalive_interval, 1.0))
                continue
            try:
                status = await self.register()
            except (SipError, OSError, TimeoutError) as exc:
                log.info("sim %s: register failed: %s", self.device_id, exc)
                status = 0
            if status != 200:
                await self._sleep(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            backoff = 0.5
            refresh_at = time.monotonic() + max(1.0, self.expires * 0.8)
            misses = 0
            while self._running and time.monotonic() < refresh_at and self.registered.is_set():
                await self._sleep(min(self.keepalive_interval, max(0.05, refresh_at - time.monotonic())))
                if not self._running or not self.registered.is_set():
                    break
                if "silent" in self.faults or time.monotonic() >= refresh_at:
                    continue
                if await self._send_keepalive():
                    misses = 0
                else:
                    misses += 1
                    if misses >= 3:
                        self.registered.clear()  # platform lost: register again

    async def _sleep(self, seconds: float) -> None:
        """Sleep that `wake()` can cut short (re-register on TeleBoot, interval changes)."""
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), max(0.0, seconds))

    def wake(self) -> None:
        self._wake.set()

    # ------------------------------------------------------------------ outgoing
    def _new_request(
        self,
        method: str,
        *,
        to_user: str | None = None,
        body: bytes = b"",
        content_type: str | None = None,
        call_id: str | None = None,
        from_tag: str | None = None,
    ) -> Request:
        assert self.endpoint is not None
        user = to_user or self.server_id
        dom = self.server_domain
        req = Request(method, f"sip:{user}@{dom}")
        h = req.headers
        h.add("From", f"<sip:{self.device_id}@{self.device_id[:10]}>;tag={from_tag or new_tag()}")
        h.add("To", f"<sip:{user}@{dom}>")
        h.add("Call-ID", call_id or new_call_id(self.local_host))
        h.add("CSeq", f"{next(self._cseq)} {method}")
        h.add("Max-Forwards", "70")
        if content_type:
            h.add("Content-Type", content_type)
        req.body = body
        return req

    async def _send(self, req: Request, *, timeout: float | None = None) -> Response:
        assert self.endpoint is not None
        return await self.endpoint.request(
            req, self.server, transport=self.transport, timeout=timeout or self.request_timeout
        )

    async def register(self, expires: int | None = None) -> int:
        """One REGISTER exchange with digest; returns the final status (200 on success)."""
        if self.endpoint is None:
            raise RuntimeError("device not started")
        exp = self.expires if expires is None else expires
        if not self._reg_call_id:
            self._reg_call_id = new_call_id(self.local_host)
        auth: str | None = None
        status = 0
        for _ in range(3):
            req = self._new_request(
                "REGISTER", to_user=self.device_id, call_id=self._reg_call_id, from_tag=self._reg_tag
            )
            req.uri = f"sip:{self.server_id}@{self.server_domain}"
            req.headers.add("Contact", self.contact)
            req.headers.add("Expires", str(exp))
            req.headers.add("X-GB-Ver", GB_VERSIONS[self.gb_version])
            if auth:
                req.headers.add("Authorization", auth)
            resp = await self._send(req)
            status = resp.status
            if status in (401, 407) and auth is None:
                name = "WWW-Authenticate" if status == 401 else "Proxy-Authenticate"
                challenge = resp.headers.get(name)
                if not challenge:
                    break
                pw = self.password + "-wrong" if "wrong_password" in self.faults else self.password
                auth = authorization_header(challenge, "REGISTER", req.uri, self.device_id, pw)
                continue
            break
        self.last_register_status = status
        if status == 200 and exp > 0:
            self.register_count += 1
            self.registered.set()
        elif exp == 0 or status != 200:
            self.registered.clear()
        return status

    async def _send_keepalive(self) -> bool:
        body = mc.keepalive(next(self._sn), self.device_id, encoding=self.encoding)
        try:
            resp = await self._send(self._new_request("MESSAGE", body=body, content_type=MANSCDP_TYPE))
        except (SipError, OSError, TimeoutError):
            return False
        self.sent_keepalives += 1
        return resp.status == 200

    async def send_message(self, body: bytes) -> Response:
        """Send a MANSCDP MESSAGE to the platform (out of dialog)."""
        return await self._send(self._new_request("MESSAGE", body=body, content_type=MANSCDP_TYPE))

    async def send_alarm(
        self,
        channel_id: str | None = None,
        *,
        priority: int = 1,
        method: int = 2,
        description: str = "模拟报警",
        alarm_type: int | None = None,
        longitude: float | None = None,
        latitude: float | None = None,
    ) -> int:
        """Send an Alarm notify (MESSAGE, and NOTIFY to Alarm subscribers); returns the MESSAGE status."""
        ch = self._channel(channel_id)
        body = mc.alarm_notify(
            next(self._sn),
            ch.channel_id if ch else (channel_id or self.device_id),
            time=_now_str(),
            priority=priority,
            method=method,
            description=description,
            alarm_type=alarm_type,
            longitude=longitude if longitude is not None else (ch.longitude if ch else None),
            latitude=latitude if latitude is not None else (ch.latitude if ch else None),
            encoding=self.encoding,
        )
        await self._notify_subscribers("Alarm", body)
        resp = await self.send_message(body)
        return resp.status

    async def send_position(
        self,
        channel_id: str | None = None,
        *,
        longitude: float,
        latitude: float,
        speed: float = 0.0,
        direction: float = 0.0,
        altitude: float = 0.0,
    ) -> int:
        """Send a MobilePosition notify (MESSAGE, and NOTIFY to subscribers); returns the status."""
        body = mc.mobile_position_notify(
            next(self._sn),
            channel_id or self.device_id,
            time=_now_str(),
            longitude=longitude,
            latitude=latitude,
            speed=speed,
            direction=direction,
            altitude=altitude,
            encoding=self.encoding,
        )
        await self._notify_subscribers("MobilePosition", body)
        resp = await self.send_message(body)
        return resp.status

    def _channel(self, channel_id: str | None) -> SimChannel | None:
        for c in self.channels:
            if c.channel_id == channel_id:
                return c
        cams = [c for c in self.channels if c.kind == "camera"]
        return cams[0] if cams and channel_id is None else None

    # ------------------------------------------------------------------ incoming
    def handles(self, user: str) -> bool:
        return user == self.device_id or user in self.channel_ids

    def handle(self, inc: Incoming) -> None:
        """SIP handler (plain function on the loop, spawns tasks when it must await)."""
        req = inc.request
        method = req.method
        if "silent" in self.faults:
            return  # no answer at all: the platform must time out
        try:
            if method == "MESSAGE":
                self._on_message(inc)
            elif method == "INVITE":
                self._on_invite(inc)
            elif method == "ACK":
                self._on_ack(inc)
            elif method == "BYE":
                self._on_bye(inc)
            elif method == "SUBSCRIBE":
                self._on_subscribe(inc)
            elif method in ("INFO", "OPTIONS", "NOTIFY", "CANCEL"):
                if not inc.responded:
                    inc.respond(200)
            else:
                inc.respond(405, headers=[("Allow", "INVITE, ACK, BYE, CANCEL, MESSAGE, SUBSCRIBE, INFO")])
        except Exception as exc:  # never let one bad request kill the device
            log.exception("sim %s: error handling %s", self.device_id, method)
            self.errors.append(f"{method}: {exc}")
            if not inc.responded and method != "ACK":
                inc.respond(500)

    def _on_message(self, inc: Incoming) -> None:
        try:
            msg = mc.decode(inc.request.body)
        except ManscdpError as exc:
            inc.respond(400, f"Bad MANSCDP ({str(exc)[:60]})")
            return
        inc.respond(200)
        if msg.root == "Query":
            self.received_queries.append(msg)
            self._spawn(self._answer_query(msg))
        elif msg.root == "Control":
            self._spawn(self._answer_control(msg))
        # Response/Notify from the platform (e.g. a cascade test) need no action

    async def _answer_query(self, q: Manscdp) -> None:
        enc = self.encoding
        cmd = q.cmd_type
        if cmd == "Catalog":
            await self._send_catalog(q.sn)
            return
        body: bytes | None
        if cmd == "DeviceInfo":
            body = mc.response(
                cmd,
                q.sn,
                self.device_id,
                {
                    "DeviceName": self.name,
                    "Result": "OK",
                    "DeviceType": self.kind.upper(),
                    "Manufacturer": "xueliang-sim",
                    "Model": f"SIM-{self.kind.upper()}",
                    "Firmware": "1.0.0",
                    "Channel": sum(1 for c in self.channels if c.kind == "camera"),
                },
                encoding=enc,
            )
        elif cmd == "DeviceStatus":
            body = mc.response(
                cmd,
                q.sn,
                q.device_id or self.device_id,
                {
                    "Result": "OK",
                    "Online": "ONLINE",
                    "Status": "OK",
                    "Encode": "ON",
                    "Record": "ON" if self.recording else "OFF",
                    "DeviceTime": _now_str(),
                    "Alarmstatus": [],
                },
                encoding=enc,
            )
        elif cmd == "ConfigDownload":
            host, port = self.server
            body = mc.response(
                cmd,
                q.sn,
                self.device_id,
                {
                    "Result": "OK",
                    "BasicParam": {
                        "Name": self.name,
                        "DeviceID": self.device_id,
                        "SIPServerID": self.server_id,
                        "SIPServerIP": host,
                        "SIPServerPort": port,
                        "DomainName": self.server_domain,
                        "Expiration": self.expires,
                        "HeartBeatInterval": int(self.keepalive_interval),
                        "HeartBeatCount": 3,
                    },
                },
                encoding=enc,
            )
        elif cmd == "PresetQuery":
            presets = self.presets.get(q.device_id, {})
            body = mc.response(
                cmd,
                q.sn,
                q.device_id,
                {"PresetList": [{"PresetID": i, "PresetName": n} for i, n in sorted(presets.items())]},
                encoding=enc,
            )
        elif cmd == "RecordInfo":
            ch = self._channel(q.device_id)
            start = str(q.fields.get("StartTime", ""))
            end = str(q.fields.get("EndTime", ""))
            items = [
                {
                    "DeviceID": q.device_id,
                    "Name": ch.name if ch else q.device_id,
                    "FilePath": f"/sim/{q.device_id}/0001.ps",
                    "Address": "模拟地址",
                    "StartTime": start,
                    "EndTime": end,
                    "Secrecy": 0,
                    "Type": "time",
                }
            ]
            body = mc.response(
                cmd,
                q.sn,
                q.device_id,
                {"Name": ch.name if ch else "", "SumNum": len(items), "RecordList": items},
                encoding=enc,
            )
        elif cmd == "MobilePosition":
            ch = self._channel(q.device_id if q.device_id != self.device_id else None)
            body = mc.mobile_position_notify(
                q.sn,
                q.device_id,
                time=_now_str(),
                longitude=ch.longitude if ch else 0.0,
                latitude=ch.latitude if ch else 0.0,
                encoding=enc,
            )
        elif cmd == "Alarm":
            body = mc.response(
                cmd, q.sn, q.device_id, {"Result": "OK", "SumNum": 0, "AlarmList": []}, encoding=enc
            )
        else:
            body = mc.result_response(cmd, q.sn, q.device_id or self.device_id, ok=False, encoding=enc)
        await self.send_message(body)

    def catalog_pages(self, sn: int, *, notify: bool = False) -> list[bytes]:
        """The catalog split into MESSAGE bodies, faults applied (sumnum_*, duplicates, catalog_half)."""
        items = [c.to_item(self.gb_version) for c in self.channels]
        if "duplicates" in self.faults and items:
            items = items + items[: max(1, len(items) // 2)]
        total = len(self.channels)
        if "sumnum_wrong" in self.faults:
            total += 3
        if "sumnum_zero" in self.faults:
            total = 0
        size = self.catalog_page
        chunks = [items[i : i + size] for i in range(0, len(items), size)] or [[]]
        if "catalog_half" in self.faults and len(chunks) > 1:
            chunks = chunks[: len(chunks) // 2]
        enc = self.encoding
        if notify:
            return [
                mc.catalog_notify(sn, self.device_id, ch, sum_num=total, event="ADD", encoding=enc)
                for ch in chunks
            ]
        return [mc.catalog_response(sn, self.device_id, total, ch, encoding=enc) for ch in chunks]

    async def _send_catalog(self, sn: int) -> None:
        for body in self.catalog_pages(sn):
            if "silent" in self.faults or not self._running:
                return
            await self.send_message(body)

    async def _answer_control(self, c: Manscdp) -> None:
        f = c.fields
        rec: dict[str, Any] = {
            "cmd_type": c.cmd_type,
            "device_id": c.device_id,
            "sn": c.sn,
            "fields": f,
            "at": time.time(),
            "ptz": None,
        }
        ok = True
        reboot = False
        if c.cmd_type == "DeviceConfig":
            basic = f.get("BasicParam")
            if isinstance(basic, dict):
                if basic.get("Name"):
                    self.name = str(basic["Name"])
                if str(basic.get("HeartBeatInterval", "")).isdigit():
                    self.keepalive_interval = float(basic["HeartBeatInterval"])
                    self.wake()
                if str(basic.get("Expiration", "")).isdigit():
                    self.expires = int(basic["Expiration"])
        elif "PTZCmd" in f:
            try:
                d = decode_ptz(str(f["PTZCmd"]))
                rec["ptz"] = d
                if d["kind"] == "preset":
                    table = self.presets.setdefault(c.device_id, {})
                    if d["op"] == "set":
                        table[d["index"]] = f"预置位 {d['index']}"
                    elif d["op"] == "delete":
                        table.pop(d["index"], None)
            except ValueError as exc:
                rec["error"] = str(exc)
                ok = False
        elif "TeleBoot" in f:
            reboot = True
        elif "GuardCmd" in f:
            self.guard_armed = f["GuardCmd"] == "SetGuard"
        elif "RecordCmd" in f:
            if f["RecordCmd"] == "Record":
                self.recording.add(c.device_id)
            else:
                self.recording.discard(c.device_id)
        self.received_controls.append(rec)
        await self.send_message(
            mc.result_response(c.cmd_type, c.sn, c.device_id or self.device_id, ok, encoding=self.encoding)
        )
        if reboot:
            self._spawn(self._reboot())

    async def _reboot(self) -> None:
        """TeleBoot: drop media and subscriptions, go quiet, then register afresh (new Call-ID)."""
        for call in list(self.calls.values()):
            await self._stop_call(call)
        self.calls.clear()
        self.registered.clear()
        await asyncio.sleep(self.reboot_delay)
        self._reg_call_id = ""
        self._reg_tag = new_tag()
        self.wake()

    # ------------------------------------------------------------------ subscriptions
    def _on_subscribe(self, inc: Incoming) -> None:
        req = inc.request
        event = (req.headers.get("Event") or "").split(";")[0].strip()
        try:
            expires = int(req.headers.get("Expires") or "3600")
        except ValueError:
            expires = 3600
        key = req.call_id
        old = self.subscriptions.pop(key, None)
        if old and old.task:
            old.task.cancel()
        if event not in ("Catalog", "Alarm", "MobilePosition", "PTZPosition"):
            inc.respond(489, "Bad Event")
            return
        dialog = dialog_from_request(req, local_tag=old.dialog.local_tag if old else None)
        if old:
            dialog.local_seq = old.dialog.local_seq
        inc.respond(
            200, to_tag=dialog.local_tag, headers=[("Expires", str(expires)), ("Contact", self.contact)]
        )
        if expires == 0:
            return
        sub = _Subscription(dialog, event, inc.source, inc.transport, time.monotonic() + expires)
        self.subscriptions[key] = sub
        body: Manscdp | None = None
        with contextlib.suppress(ManscdpError):
            body = mc.decode(req.body) if req.body else None
        if event == "Catalog":
            sn = body.sn if body else next(self._sn)
            sub.task = self._spawn(self._notify_catalog(sub, sn))
        elif event == "MobilePosition":
            interval = 5.0
            if body is not None and str(body.fields.get("Interval", "")).isdigit():
                interval = max(0.2, float(body.fields["Interval"]))
            sub.task = self._spawn(self._position_loop(sub, interval))

    async def _send_notify(self, sub: _Subscription, body: bytes) -> int:
        assert self.endpoint is not None
        remaining = max(0, int(sub.expires_at - time.monotonic()))
        req = sub.dialog.make_request(
            "NOTIFY",
            body=body,
            content_type=MANSCDP_TYPE,
            headers=[
                ("Event", sub.event),
                ("Subscription-State", f"active;expires={remaining}"),
                ("Contact", self.contact),
            ],
        )
        dest = self.server if self.transport == "tcp" else sub.dest
        resp = await self.endpoint.request(req, dest, transport=self.transport, timeout=self.request_timeout)
        return resp.status

    async def _notify_subscribers(self, event: str, body: bytes) -> None:
        for sub in list(self.subscriptions.values()):
            if sub.event == event and time.monotonic() < sub.expires_at:
                with contextlib.suppress(SipError, OSError, TimeoutError):
                    await self._send_notify(sub, body)

    async def _notify_catalog(self, sub: _Subscription, sn: int) -> None:
        for body in self.catalog_pages(sn, notify=True):
            await self._send_notify(sub, body)

    async def _position_loop(self, sub: _Subscription, interval: float) -> None:
        step = 0
        while time.monotonic() < sub.expires_at and self._running:
            for ch in [c for c in self.channels if c.kind == "camera"][:4]:
                body = mc.mobile_position_notify(
                    next(self._sn),
                    ch.channel_id,
                    time=_now_str(),
                    longitude=round(ch.longitude + 0.0001 * step, 6),
                    latitude=round(ch.latitude + 0.0001 * step, 6),
                    speed=5.0,
                    direction=45.0,
                    encoding=self.encoding,
                )
                with contextlib.suppress(SipError, OSError, TimeoutError):
                    await self._send_notify(sub, body)
            step += 1
            await asyncio.sleep(interval)

    # ------------------------------------------------------------------ INVITE / media
    def _on_invite(self, inc: Incoming) -> None:
        req = inc.request
        if req.to_tag:  # re-INVITE: keep the session, answer with the same SDP
            call = self.calls.get(req.call_id)
            if call is None:
                inc.respond(481)
                return
            inc.respond(
                200,
                body=self._answer_sdp(call).to_bytes(),
                content_type="application/sdp",
                headers=[("Contact", self.contact)],
            )
            return
        try:
            user = parse_uri(req.uri).user or ""
        except Exception:
            user = ""
        channel_id = user if user in self.channel_ids else self.device_id
        try:
            offer = parse_sdp(req.body)
        except ValueError as exc:
            inc.respond(400, f"Bad SDP ({str(exc)[:60]})")
            return
        if not offer.port or not offer.address:
            inc.respond(488, "No media address in offer")
            return
        ssrc_text = offer.ssrc or "0000000000"
        try:
            ssrc = int(ssrc_text) & 0xFFFFFFFF
        except ValueError:
            ssrc = 0
        if "wrong_ssrc" in self.faults:
            ssrc = (ssrc + 12345) % 1_000_000_000
        if offer.transport == "tcp":
            role = "tcp-passive" if (offer.setup or "passive") == "active" else "tcp-active"
        else:
            role = "udp"
        remote: Address | None = None if role == "tcp-passive" else (offer.address, offer.port)
        dialog = dialog_from_request(req)
        call = _Call(dialog, channel_id, offer, ssrc, role, remote, None)
        self._spawn(self._accept_invite(inc, call))

    def _answer_sdp(self, call: _Call) -> Sdp:
        assert self.endpoint is not None
        host = self.endpoint.local_address[0]
        if host in ("0.0.0.0", ""):
            host = self.local_host
        return Sdp(
            session=call.offer.session or "Play",
            origin_user=call.channel_id,
            address=host,
            port=call.local_port or 0,
            transport="tcp" if call.transport.startswith("tcp") else "udp",
            setup=("active" if call.transport == "tcp-active" else "passive")
            if call.transport != "udp"
            else None,
            ssrc=f"{call.ssrc:010d}",
            media_format="",
            payloads={96: "PS/90000"},
            direction="sendonly",
            uri=call.offer.uri,
            start=call.offer.start,
            end=call.offer.end,
        )

    def _media_sender_cls(self) -> Any:
        try:
            from xueliang.sim.media import MediaSender
        except Exception as exc:  # missing module or its dependencies
            log.error("sim %s: media requested but xueliang.sim.media is unusable: %s", self.device_id, exc)
            return None
        return MediaSender

    async def _accept_invite(self, inc: Incoming, call: _Call) -> None:
        want_media = self.media and "no_media" not in self.faults
        if want_media:
            cls = self._media_sender_cls()
            if cls is None:
                inc.respond(488, "Media sender unavailable")
                return
            if call.transport == "udp":
                call.local_port = _free_udp_port(self.local_host)
            call.sender = cls(
                codec=self.codec,
                ssrc=call.ssrc,
                transport=call.transport,
                remote=call.remote,
                local_port=call.local_port if call.transport == "udp" else None,
            )
            if call.transport == "tcp-passive" or "send_before_ack" in self.faults:
                # passive: must listen before answering; send_before_ack: field devices that do
                await call.sender.start()
                call.started = True
                call.local_port = call.sender.local_port
        elif call.transport == "udp":
            call.local_port = _free_udp_port(self.local_host)
        else:
            call.local_port = 9  # discard port: nothing will be sent
        self.calls[call.dialog.call_id] = call
        inc.respond(
            200,
            to_tag=call.dialog.local_tag,
            body=self._answer_sdp(call).to_bytes(),
            content_type="application/sdp",
            headers=[("Contact", self.contact)],
        )

    def _on_ack(self, inc: Incoming) -> None:
        call = self.calls.get(inc.request.call_id)
        if call is None or call.started or call.sender is None:
            return
        call.started = True
        self._spawn(call.sender.start())

    def _on_bye(self, inc: Incoming) -> None:
        call = self.calls.pop(inc.request.call_id, None)
        if call is None:
            inc.respond(481)
            return
        inc.respond(200)
        self._spawn(self._stop_call(call))

    async def _stop_call(self, call: _Call) -> None:
        if call.sender is not None and call.started:
            try:
                await call.sender.stop()
            except Exception as exc:
                log.warning("sim %s: media stop failed: %s", self.device_id, exc)
            call.started = False

    async def bye(self, call_id: str) -> int:
        """Device-initiated BYE (e.g. media source gone)."""
        call = self.calls.pop(call_id, None)
        if call is None:
            return 481
        await self._stop_call(call)
        resp = await self._send_in_dialog(call.dialog, "BYE")
        return resp.status

    async def _send_in_dialog(self, dialog: Dialog, method: str) -> Response:
        assert self.endpoint is not None
        req = dialog.make_request(method)
        return await self.endpoint.request(
            req, self.server, transport=self.transport, timeout=self.request_timeout
        )

    def stats(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "registered": self.registered.is_set(),
            "register_count": self.register_count,
            "keepalives": self.sent_keepalives,
            "controls": len(self.received_controls),
            "queries": len(self.received_queries),
            "calls": len(self.calls),
            "subscriptions": len(self.subscriptions),
            "faults": sorted(self.faults),
            "errors": len(self.errors),
        }


class SimHost:
    """One SipEndpoint shared by many simulated devices, dispatching by Request-URI / To user.

    At thousands of devices one socket per device costs file descriptors and memory; a host keeps
    one UDP+TCP socket pair and routes each request to the device owning the target ID.
    """

    def __init__(self) -> None:
        self.endpoint = SipEndpoint(self.handle, user_agent="xueliang-sim")
        self._by_id: dict[str, SimDevice] = {}

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        await self.endpoint.start(host, port, udp=True, tcp=True)

    def add(self, device: SimDevice) -> None:
        self._by_id[device.device_id] = device
        for cid in device.channel_ids:
            self._by_id.setdefault(cid, device)

    def handle(self, inc: Incoming) -> None:
        req = inc.request
        user = ""
        with contextlib.suppress(Exception):
            user = parse_uri(req.uri).user or ""
        dev = self._by_id.get(user)
        if dev is None:
            with contextlib.suppress(Exception):
                to = req.headers.get("To") or ""
                start = to.find("sip:")
                user = to[start + 4 : to.find("@", start)] if start >= 0 else ""
                dev = self._by_id.get(user)
        if dev is None:
            if req.method != "ACK":
                inc.respond(404)
            return
        dev.handle(inc)

    async def close(self) -> None:
        await self.endpoint.close()
