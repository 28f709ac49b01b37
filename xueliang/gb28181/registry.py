"""Device registry: in-memory state of every registered device, the deadline heap, and REGISTER.

Why it looks like this:
* 500,000 devices send about 8,300 keepalives a second. A keepalive must only touch one small
  slotted object (`DeviceState.last_seen = now`): no DB, no heap operation, no task.
* Offline detection is ONE periodic check over a heap of (deadline, device_id). Heap entries are
  lazy: when one pops, the real deadline is recomputed from `last_seen` / `expires_at`; if the
  device has been seen since, it is pushed back with its new deadline. So each device has at most
  one live entry and keepalives never touch the heap.
* REGISTER is answered without awaiting anything when the device's password is already known
  (restored at start, or seen on a previous REGISTER); only an unknown device costs one DB read.
"""

from __future__ import annotations

import heapq
import logging
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from xueliang.sip.auth import NonceManager, challenge_header, parse_authorization, verify
from xueliang.sip.errors import SipParseError
from xueliang.sip.headers import NameAddr, parse_params

from .access import AccessList

if TYPE_CHECKING:
    from xueliang.sip.endpoint import Incoming

    from .service import GbService

__all__ = ["DeviceState", "DeviceTable", "Registrar", "gb_date", "gb_version_of"]

log = logging.getLogger("xueliang.gb28181.registry")


class DeviceState:
    """What the platform remembers about one registered device (kept small: 500k of them)."""

    __slots__ = (
        "channel_count", "charset", "contact", "device_id", "domain", "expires", "expires_at",
        "gb_version", "heartbeat_count", "heartbeat_interval", "host", "last_seen", "online",
        "password", "port", "registered_at", "transport", "ver_header",
    )

    def __init__(self, device_id: str) -> None:
        self.device_id = device_id
        self.host = ""
        self.port = 0
        self.transport = "udp"
        self.domain = ""              # host part of its From URI: used in the To of our requests
        self.contact = ""
        self.gb_version = "2016"      # "2016" | "2022"
        self.ver_header: str | None = None   # the X-GB-Ver value it sent, echoed back
        self.charset = "GB2312"       # what its bodies are written in; we answer the same
        self.expires = 0
        self.expires_at = 0.0         # monotonic
        self.registered_at = 0.0      # wall clock
        self.last_seen = 0.0          # monotonic
        self.online = False
        self.heartbeat_interval: float | None = None
        self.heartbeat_count: int | None = None
        self.password: str | None = None
        self.channel_count = 0

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    def deadline(self, default_interval: float, default_count: int) -> float:
        """Monotonic time at which the device is considered gone."""
        interval = self.heartbeat_interval or default_interval
        count = self.heartbeat_count or default_count
        return min(self.last_seen + interval * count, self.expires_at)


class DeviceTable:
    """Registered devices by ID, plus the lazy deadline heap."""

    def __init__(self) -> None:
        self.devices: dict[str, DeviceState] = {}
        self._heap: list[tuple[float, str]] = []
        self._scheduled: dict[str, float] = {}

    def get(self, device_id: str) -> DeviceState | None:
        return self.devices.get(device_id)

    def add(self, dev: DeviceState) -> None:
        self.devices[dev.device_id] = dev

    def remove(self, device_id: str) -> DeviceState | None:
        self._scheduled.pop(device_id, None)
        return self.devices.pop(device_id, None)

    def schedule(self, device_id: str, at: float) -> None:
        """Make sure the device is checked no later than `at` (monotonic)."""
        cur = self._scheduled.get(device_id)
        if cur is not None and cur <= at:
            return
        self._scheduled[device_id] = at
        heapq.heappush(self._heap, (at, device_id))

    def due(self, now: float, deadline_of: Callable[[DeviceState], float]) -> Iterator[DeviceState]:
        """Yield devices whose real deadline has passed; reschedule the ones seen since."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            at, device_id = heapq.heappop(heap)
            if self._scheduled.get(device_id) != at:
                continue  # superseded entry
            del self._scheduled[device_id]
            dev = self.devices.get(device_id)
            if dev is None or not dev.online:
                continue
            real = deadline_of(dev)
            if real > now:
                self._scheduled[device_id] = real
                heapq.heappush(heap, (real, device_id))
            else:
                yield dev

    def __len__(self) -> int:
        return len(self.devices)


def gb_date(now: float | None = None) -> str:
    """GB/T 28181 Date header: local time with milliseconds and no zone (devices set their clock)."""
    t = time.time() if now is None else now
    dt = datetime.fromtimestamp(t)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}"


def gb_version_of(header: str | None) -> str:
    """'2022' for X-GB-Ver 3.x, else '2016' (2.0, absent or unknown: the conservative choice)."""
    if header and header.strip().startswith("3"):
        return "2022"
    return "2016"


def uri_user_host(value: str) -> tuple[str, str]:
    """(user, host) of a From/To/Contact value, cheaply; ('', '') when unreadable."""
    start = value.find("sip:")
    if start < 0:
        start = value.find("sips:")
        if start < 0:
            return "", ""
        start += 5
    else:
        start += 4
    at = value.find("@", start)
    if at < 0:
        return "", ""
    user = value[start:at]
    end = at + 1
    n = len(value)
    while end < n and value[end] not in ">;:? ":
        end += 1
    return user, value[at + 1:end]


def requested_expires(req: Any, default: int) -> int | None:
    """Expires from the header, else the Contact's expires param, else `default`; None if garbage."""
    raw = req.headers.get("Expires")
    if raw is None:
        contact = req.headers.get("Contact")
        if contact and contact.strip() != "*":
            try:
                raw = NameAddr.parse(contact).params.get("expires")
            except SipParseError:
                raw = None
            if raw is None and ";" in contact.rpartition(">")[2]:
                raw = parse_params(contact.rpartition(">")[2]).get("expires")
    if raw is None:
        return default
    raw = raw.strip()
    if not raw.isdigit():
        return None
    return int(raw)


class Registrar:
    """REGISTER processing: allowlists, digest challenge/verify, expiry, never half-accepting."""

    def __init__(self, service: GbService) -> None:
        self.svc = service
        s = service.settings
        self.nonces = NonceManager(s.secret_key or (s.sip_id + s.sip_password + str(id(self))), ttl=s.nonce_ttl)
        self.access = AccessList(s.allow_ips, s.allow_id_prefixes)
        # device_id -> password (None = use the platform password), for devices known to the store
        self.passwords: dict[str, str | None] = {}
        self._negative: dict[str, float] = {}   # device_id -> monotonic until which it is known-unknown
        self._runtime_read_at = -1e9

    # -- entry ---------------------------------------------------------------------------------
    def on_register(self, inc: Incoming) -> None:
        svc = self.svc
        req = inc.request
        host = inc.source[0]
        device_id, domain = uri_user_host(req.headers.get("From") or "")
        if not device_id:
            device_id, domain = uri_user_host(req.headers.get("To") or "")
        if not device_id or not device_id.isdigit() or len(device_id) not in (18, 20):
            self._deny(inc, device_id or "?", "bad device id", 400)
            return
        why = self.access.check(host, device_id)
        if why is not None:
            self._deny(inc, device_id, f"not allowed ({why} allowlist)", 403)
            return
        auth = req.headers.get("Authorization")
        if not auth:
            svc.stats["register_challenges"] += 1
            self._challenge(inc, stale=False)
            return
        try:
            creds = parse_authorization(auth)
        except SipParseError:
            self._deny(inc, device_id, "malformed Authorization", 400)
            return
        verdict = self.nonces.check(creds.nonce)
        if verdict == "stale":
            svc.stats["register_stale"] += 1
            self._challenge(inc, stale=True)
            return
        if verdict != "ok" or creds.realm != svc.settings.realm:
            svc.stats["register_challenges"] += 1
            self._challenge(inc, stale=False)
            return
        if device_id in self.passwords:
            self._finish(inc, device_id, domain, creds, self.passwords[device_id], known=True)
            return
        until = self._negative.get(device_id)
        if until is not None and until > time.monotonic():
            self._finish(inc, device_id, domain, creds, None, known=False)
            return
        svc.spawn(self._lookup_and_finish(inc, device_id, domain, creds))

    async def _lookup_and_finish(self, inc: Incoming, device_id: str, domain: str, creds: Any) -> None:
        try:
            found, password = await self._password_of(device_id)
        except Exception:
            log.exception("device lookup failed for %s", device_id)
            inc.respond(500, "Store Unavailable")
            return
        if not found:
            self._negative[device_id] = time.monotonic() + 5.0
            if len(self._negative) > 100_000:
                self._negative.clear()
            self._finish(inc, device_id, domain, creds, None, known=False)
        else:
            self.passwords[device_id] = password
            self._finish(inc, device_id, domain, creds, password, known=True)

    async def _password_of(self, device_id: str) -> tuple[bool, str | None]:
        """(exists, password) of a device the registry has not seen yet (added through the API).

        `Repository.get_device` leaves the password out on purpose; until the store offers a
        per-device secret lookup, existence comes from get_device and the password from one
        `runtime_devices()` read, refreshed at most every few seconds and cached for every device.
        """
        repo = self.svc.repo
        direct = getattr(repo, "device_password", None)
        if direct is not None:
            row = await repo.get_device(device_id)
            return (row is not None, (await direct(device_id)) if row is not None else None)
        row = await repo.get_device(device_id)
        if row is None:
            return False, None
        now = time.monotonic()
        if now - self._runtime_read_at > 5.0 or device_id not in self.passwords:
            self._runtime_read_at = now
            for r in await repo.runtime_devices():
                if r.get("device_id"):
                    self.passwords[r["device_id"]] = r.get("password") or None
        return True, self.passwords.get(device_id)

    # -- verdicts --------------------------------------------------------------------------------
    def _challenge(self, inc: Incoming, *, stale: bool) -> None:
        s = self.svc.settings
        value = challenge_header(s.realm, self.nonces.new(), s.digest_algorithm, stale=stale)
        inc.respond(401, "Unauthorized", headers=[("WWW-Authenticate", value)], to_tag=self.svc.tag)

    def _deny(self, inc: Incoming, device_id: str, reason: str, status: int = 403) -> None:
        svc = self.svc
        svc.stats["register_failures"] += 1
        host, port = inc.source
        log.warning("REGISTER from %s (%s:%s) refused: %s", device_id, host, port, reason)
        svc.writer.audit("sip", "register.denied", device_id,
                         {"reason": reason, "status": status, "port": port, "transport": inc.transport},
                         source=host)
        inc.respond(status, None, to_tag=svc.tag)

    def _finish(self, inc: Incoming, device_id: str, domain: str, creds: Any, password: str | None,
                *, known: bool) -> None:
        svc = self.svc
        s = svc.settings
        if not known and not s.auto_register:
            self._deny(inc, device_id, "unknown device and auto_register is off")
            return
        if not verify(creds, "REGISTER", password or s.sip_password):
            self._deny(inc, device_id, "wrong password")
            return
        req = inc.request
        expires = requested_expires(req, s.register_expires_default)
        if expires is None:
            self._deny(inc, device_id, "bad Expires", 400)
            return
        ver = req.headers.get("X-GB-Ver")
        headers: list[tuple[str, str]] = []
        contact = req.headers.get("Contact")
        if expires == 0:
            headers.append(("Expires", "0"))
            if ver:
                headers.append(("X-GB-Ver", ver.strip()))
            headers.append(("Date", gb_date()))
            inc.respond(200, "OK", headers=headers, to_tag=svc.tag)
            svc.stats["unregistrations"] += 1
            svc.on_unregistered(device_id)
            return
        if expires < s.register_expires_min:
            expires = s.register_expires_min
        if contact:
            headers.append(("Contact", contact))
        headers.append(("Expires", str(expires)))
        if ver:
            headers.append(("X-GB-Ver", ver.strip()))
        headers.append(("Date", gb_date()))
        inc.respond(200, "OK", headers=headers, to_tag=svc.tag)
        svc.stats["registrations"] += 1
        self.passwords.setdefault(device_id, password)
        self._negative.pop(device_id, None)
        svc.on_registered(device_id, inc, domain=domain, expires=expires, ver=ver, contact=contact or "",
                          password=password)

