"""Device-service fixtures: a real Database (SQLite in tmp_path), a real SipEndpoint on 127.0.0.1 and
a GbService, plus a tiny raw user agent for tests that must control every header of a request."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from xueliang.config import Settings
from xueliang.events import EventBus
from xueliang.gb28181.service import GbService
from xueliang.sip.auth import authorization_header
from xueliang.sip.endpoint import Incoming, SipEndpoint
from xueliang.sip.message import Request, Response, new_call_id, new_tag
from xueliang.store.db import Database

SERVER_ID = "34020000002000000001"


def make_settings(tmp_path: Path, **over: Any) -> Settings:
    s = Settings(sip_host="127.0.0.1", sip_port=0, database_url=f"sqlite:///{tmp_path / 'gb.db'}",
                 data_dir=str(tmp_path), secret_key="test-secret-key", command_timeout=2.0,
                 catalog_timeout=1.0)
    for k, v in over.items():
        setattr(s, k, v)
    return s


class Platform:
    """The pieces platform.py wires, started in the same order."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.port = 0
        self.db: Database | None = None
        self.gb: GbService | None = None
        self.endpoint: SipEndpoint | None = None
        self.events = EventBus()

    async def start(self) -> None:
        self.db = Database(self.settings.database_url)
        await self.db.open()
        self.endpoint = SipEndpoint(self._handle, user_agent="xueliang-test")
        self.gb = GbService(self.settings, self.endpoint, self.db.writer, self.events, self.db.repo)
        await self.endpoint.start("127.0.0.1", self.port)
        self.port = self.endpoint.local_address[1]
        await self.gb.start(await self.db.repo.runtime_devices())

    def _handle(self, inc: Incoming) -> None:
        assert self.gb is not None
        self.gb.handle(inc)

    async def stop(self) -> None:
        if self.gb is not None:
            await self.gb.stop()
        if self.endpoint is not None:
            await self.endpoint.close()
        if self.db is not None:
            await self.db.close()
        self.gb = self.endpoint = self.db = None

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    async def flush(self) -> None:
        assert self.db is not None
        await self.db.writer.flush()


@pytest.fixture
async def platform(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Platform]]]:
    """Factory: `p = await platform(keepalive_interval=0.2)`; everything is stopped at the end."""
    made: list[Platform] = []

    async def make(**over: Any) -> Platform:
        p = Platform(make_settings(tmp_path, **over))
        await p.start()
        made.append(p)
        return p

    yield make
    for p in made:
        await p.stop()


async def wait_until(cond: Callable[[], Any], timeout: float = 5.0, step: float = 0.02) -> None:
    """Poll `cond` (sync or async) until truthy; AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if asyncio.iscoroutine(got):
            got = await got
        if got:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(step)


@pytest.fixture
def fixtures_dir() -> Path:
    """../shared/fixtures next to the repository (skips with the reason when it is absent)."""
    root = Path(__file__).resolve().parents[2]
    for cand in (root.parent / "shared" / "fixtures", root / "shared" / "fixtures"):
        if (cand / "sip").is_dir():
            return cand
    pytest.skip("field fixtures not found at ../shared/fixtures relative to the repository")


@pytest.fixture
def wait() -> Callable[..., Awaitable[None]]:
    """`await wait(cond, timeout)`: the bounded polling helper as a fixture (no conftest imports)."""
    return wait_until


class RawUa:
    """A bare user agent (its own SipEndpoint) that builds each request header by header."""

    def __init__(self, device_id: str, server: tuple[str, int]) -> None:
        self.device_id = device_id
        self.server = server
        self.received: list[Incoming] = []
        self.answer: dict[str, int] = {}   # method -> status to answer with (default 200)
        self.endpoint = SipEndpoint(self._handle, user_agent="raw-ua")
        self.call_id = new_call_id("127.0.0.1")
        self.tag = new_tag()
        self.cseq = 0

    def _handle(self, inc: Incoming) -> None:
        self.received.append(inc)
        if inc.request.method != "ACK":
            inc.respond(self.answer.get(inc.request.method, 200))

    async def start(self) -> None:
        await self.endpoint.start("127.0.0.1", 0, tcp=False)

    async def close(self) -> None:
        await self.endpoint.close()

    def request(self, method: str, *, body: bytes = b"", headers: list[tuple[str, str]] | None = None,
                call_id: str | None = None) -> Request:
        self.cseq += 1
        port = self.endpoint.local_address[1]
        h = [("From", f"<sip:{self.device_id}@{self.device_id[:10]}>;tag={self.tag}"),
             ("To", f"<sip:{self.device_id if method == 'REGISTER' else SERVER_ID}@{self.device_id[:10]}>"),
             ("Call-ID", call_id or (self.call_id if method == "REGISTER" else new_call_id("127.0.0.1"))),
             ("CSeq", f"{self.cseq} {method}"),
             ("Contact", f"<sip:{self.device_id}@127.0.0.1:{port}>")]
        h.extend(headers or [])
        if body:
            h.append(("Content-Type", "Application/MANSCDP+xml"))
        return Request(method, f"sip:{SERVER_ID}@{SERVER_ID[:10]}", h, body)

    async def send(self, req: Request) -> Response:
        return await self.endpoint.request(req, self.server, timeout=3.0)

    async def register(self, password: str = "12345678", *, expires: int = 3600,
                       extra: list[tuple[str, str]] | None = None) -> tuple[Response, Response]:
        """(challenge, final) of one digest REGISTER exchange."""
        hdrs = [("Expires", str(expires)), *(extra or [])]
        first = await self.send(self.request("REGISTER", headers=hdrs))
        assert first.status == 401, first
        req = self.request("REGISTER", headers=hdrs)
        challenge = first.headers.get("WWW-Authenticate")
        assert challenge
        req.headers.add("Authorization", authorization_header(challenge, "REGISTER", req.uri, self.device_id,
                                                              password))
        return first, await self.send(req)


@pytest.fixture
async def raw_ua() -> AsyncIterator[Callable[..., Awaitable[RawUa]]]:
    made: list[RawUa] = []

    async def make(device_id: str, server: tuple[str, int]) -> RawUa:
        ua = RawUa(device_id, server)
        await ua.start()
        made.append(ua)
        return ua

    yield make
    for ua in made:
        await ua.close()
