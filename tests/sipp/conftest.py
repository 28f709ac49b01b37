"""SIPp drives the platform's device service: fixtures to start a GbService and run sipp against it."""

from __future__ import annotations

import asyncio
import shutil
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from xueliang.config import Settings
from xueliang.events import EventBus
from xueliang.gb28181.service import GbService
from xueliang.sip.endpoint import SipEndpoint
from xueliang.store.db import Database

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
SERVER_ID = "34020000002000000001"
DOMAIN = "3402000000"
SIPP = shutil.which("sipp")


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class SippResult:
    rc: int
    stdout: str
    stderr: str
    errors: str


async def run_sipp(scenario: str, port: int, workdir: Path, *, calls: int = 1, timeout: float = 10.0,
                   keys: dict[str, str] | None = None, extra: list[str] | None = None) -> SippResult:
    """Run sipp as a UAC against 127.0.0.1:port with call limit and global timeout; never hangs."""
    assert SIPP is not None
    err_file = workdir / f"{Path(scenario).stem}_errors.log"
    args = [SIPP, f"127.0.0.1:{port}", "-sf", str(SCENARIOS / scenario), "-m", str(calls),
            "-timeout", f"{timeout:g}s", "-timeout_error", "-nostdin", "-i", "127.0.0.1",
            "-p", str(free_udp_port()), "-trace_err", "-error_file", str(err_file),
            "-key", "server", SERVER_ID, "-key", "domain", DOMAIN]
    for k, v in (keys or {}).items():
        args += ["-key", k, v]
    args += extra or []
    proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE, cwd=workdir)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout + 10)
    except TimeoutError:
        proc.kill()
        out, err = await proc.communicate()
    errors = err_file.read_text(errors="replace") if err_file.exists() else ""
    return SippResult(proc.returncode if proc.returncode is not None else -1,
                      out.decode(errors="replace"), err.decode(errors="replace"), errors)


class GbUnderTest:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.events = EventBus()

    async def start(self) -> None:
        self.db = Database(self.settings.database_url)
        await self.db.open()
        self.endpoint = SipEndpoint(lambda inc: self.gb.handle(inc), user_agent="xueliang-sipp-test")
        self.gb = GbService(self.settings, self.endpoint, self.db.writer, self.events, self.db.repo)
        await self.endpoint.start("127.0.0.1", 0)
        self.port = self.endpoint.local_address[1]
        await self.gb.start(await self.db.repo.runtime_devices())

    async def stop(self) -> None:
        await self.gb.stop()
        await self.endpoint.close()
        await self.db.close()


@pytest.fixture
async def gb_server(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[GbUnderTest]]]:
    if SIPP is None:
        pytest.skip("sipp is not installed (Debian package sip-tester)")
    made: list[GbUnderTest] = []

    async def make(**over: Any) -> GbUnderTest:
        s = Settings(sip_host="127.0.0.1", sip_port=0, database_url=f"sqlite:///{tmp_path / 'sipp.db'}",
                     data_dir=str(tmp_path), secret_key="sipp-test-secret", command_timeout=2.0,
                     catalog_timeout=3.0)
        for k, v in over.items():
            setattr(s, k, v)
        g = GbUnderTest(s)
        await g.start()
        made.append(g)
        return g

    yield make
    for g in made:
        await g.stop()
