"""A minimal test registrar (platform side) for the simulator tests, on a real SipEndpoint.

It challenges and accepts REGISTER (digest), answers MESSAGE/NOTIFY with 200 and collects the
decoded MANSCDP bodies, and sends queries, controls, SUBSCRIBE and INVITE to devices.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from xueliang.gb28181 import manscdp as mc
from xueliang.gb28181.manscdp import Manscdp
from xueliang.sip.auth import NonceManager, challenge_header, parse_authorization, verify
from xueliang.sip.endpoint import Incoming, SipEndpoint
from xueliang.sip.message import Request, Response, new_call_id, new_tag

PLATFORM_ID = "34020000002000000001"
PASSWORD = "12345678"


@dataclass
class Registration:
    device_id: str
    source: tuple[str, int]
    transport: str
    expires: int
    call_id: str
    gb_ver: str | None


@dataclass
class Registrar:
    """A minimal platform: digest REGISTER, MESSAGE/NOTIFY sink, request sender."""

    algorithm: str = "MD5"
    password: str = PASSWORD
    endpoint: SipEndpoint = field(init=False)
    nonces: NonceManager = field(default_factory=lambda: NonceManager("test-secret"))
    registrations: dict[str, Registration] = field(default_factory=dict)
    register_log: list[tuple[str, int, int]] = field(default_factory=list)  # (device, status, expires)
    messages: list[tuple[str, Manscdp]] = field(default_factory=list)  # (method, body)
    _cond: asyncio.Condition = field(default_factory=asyncio.Condition)
    _sn: int = 100
    drop_messages: bool = False  # simulate a platform that stopped answering MESSAGE

    def __post_init__(self) -> None:
        self.endpoint = SipEndpoint(self.handle, user_agent="test-registrar")

    async def start(self) -> tuple[str, int]:
        await self.endpoint.start("127.0.0.1", 0)
        return self.endpoint.local_address

    def _kick(self) -> None:
        async def notify() -> None:
            async with self._cond:
                self._cond.notify_all()

        asyncio.get_running_loop().create_task(notify())

    def handle(self, inc: Incoming) -> None:
        req = inc.request
        if req.method == "REGISTER":
            self._register(inc)
        elif req.method == "MESSAGE" and self.drop_messages:
            return
        elif req.method in ("MESSAGE", "NOTIFY"):
            inc.respond(200)
            with contextlib.suppress(mc.ManscdpError):
                self.messages.append((req.method, mc.decode(req.body)))
        else:
            inc.respond(200)
        self._kick()

    def _register(self, inc: Incoming) -> None:
        req = inc.request
        user = (req.headers.get("From") or "").split("sip:")[1].split("@")[0]
        expires = int(req.headers.get("Expires") or "3600")
        auth = req.headers.get("Authorization")
        if not auth:
            nonce = self.nonces.new()
            inc.respond(
                401, headers=[("WWW-Authenticate", challenge_header("3402000000", nonce, self.algorithm))]
            )
            self.register_log.append((user, 401, expires))
            return
        creds = parse_authorization(auth)
        if self.nonces.check(creds.nonce) != "ok" or not verify(creds, "REGISTER", self.password):
            inc.respond(403)
            self.register_log.append((user, 403, expires))
            return
        inc.respond(200, headers=[("Expires", str(expires)), ("X-GB-Ver", "3.0")])
        self.register_log.append((user, 200, expires))
        if expires == 0:
            self.registrations.pop(user, None)
        else:
            self.registrations[user] = Registration(
                user, inc.source, inc.transport, expires, req.call_id, req.headers.get("X-GB-Ver")
            )

    async def wait_for(self, pred: Callable[[], Any], timeout: float = 5.0) -> Any:
        deadline = time.monotonic() + timeout
        async with self._cond:
            while True:
                v = pred()
                if v:
                    return v
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("condition not met in time")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._cond.wait(), left)

    def bodies(self, cmd: str, device_id: str | None = None, root: str | None = None) -> list[Manscdp]:
        return [
            m
            for _, m in self.messages
            if m.cmd_type == cmd
            and (device_id is None or m.device_id == device_id)
            and (root is None or m.root == root)
        ]

    def _request(
        self, method: str, target: str, body: bytes = b"", content_type: str | None = None
    ) -> Request:
        req = Request(method, f"sip:{target}@3402000000")
        h = req.headers
        h.add("From", f"<sip:{PLATFORM_ID}@3402000000>;tag={new_tag()}")
        h.add("To", f"<sip:{target}@3402000000>")
        h.add("Call-ID", new_call_id("127.0.0.1"))
        h.add("CSeq", f"{self._sn} {method}")
        host, port = self.endpoint.local_address
        h.add("Contact", f"<sip:{PLATFORM_ID}@{host}:{port}>")
        if content_type:
            h.add("Content-Type", content_type)
        req.body = body
        return req

    def next_sn(self) -> int:
        self._sn += 1
        return self._sn

    async def send(
        self,
        device_id: str,
        target: str,
        method: str,
        body: bytes = b"",
        *,
        content_type: str | None = "Application/MANSCDP+xml",
        headers: list[tuple[str, str]] = (),
        timeout: float = 5.0,
    ) -> tuple[Request, Response]:
        reg = self.registrations[device_id]
        req = self._request(method, target, body, content_type)
        for n, v in headers:
            req.headers.add(n, v)
        resp = await self.endpoint.request(req, reg.source, transport=reg.transport, timeout=timeout)
        return req, resp
