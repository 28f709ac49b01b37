"""SIPp drives the platform's device service: fixtures to start a GbService and run sipp against it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from xueliang.config import Settings
from xueliang.events import EventBus
from xueliang.gb28181.service import GbService
from xueliang.sip.endpoint import SipEndpoint
from xueliang.store.db import Database

from .sipp_driver import SIPP


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
