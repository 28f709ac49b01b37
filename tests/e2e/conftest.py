"""Whole-platform fixtures: a real Platform on free loopback ports, its HTTP server, the simulator."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from xueliang.config import Settings, load_settings
from xueliang.platform import Platform

ADMIN_PASSWORD = "e2e-admin-pass-1"


def free_port(kind: int = socket.SOCK_STREAM, both: bool = True) -> int:
    """A port free for TCP and UDP at once (SIP listens on both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if not both:
            return port
        other = socket.SOCK_DGRAM if kind == socket.SOCK_STREAM else socket.SOCK_STREAM
        try:
            with socket.socket(socket.AF_INET, other) as s2:
                s2.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port")


def free_port_range(n: int) -> str:
    """A block of n consecutive ports that looks free (bound-checked again by the port pool)."""
    base = 20000 + (free_port(both=False) % 20000)
    return f"{base}-{base + n - 1}"


def make_settings(tmp_path: Path, db_url: str | None = None, **over: Any) -> Settings:
    values: dict[str, Any] = {
        "http_host": "127.0.0.1", "http_port": free_port(), "sip_host": "127.0.0.1", "sip_port": free_port(),
        "media_ports": free_port_range(40), "data_dir": str(tmp_path / "var"),
        "database_url": db_url or f"sqlite:///{tmp_path / 'var' / 'xueliang.db'}",
        "keepalive_interval": 1.0, "keepalive_timeout_count": 3, "catalog_timeout": 5.0, "command_timeout": 5.0,
        "media_timeout": 8.0, "stream_idle_timeout": 3.0,
    }
    values.update(over)
    return load_settings(None, values, environ={})


@contextlib.asynccontextmanager
async def running_platform(settings: Settings, *, http: bool = False) -> AsyncIterator[Platform]:
    """Start a Platform (and optionally its HTTP server); stop everything on exit."""
    import os

    os.environ["XUELIANG_ADMIN_PASSWORD"] = ADMIN_PASSWORD
    platform = Platform(settings)
    await platform.start()
    server = task = None
    try:
        if http:
            from xueliang.api.app import create_app

            cfg = uvicorn.Config(create_app(platform), host=settings.http_host, port=settings.http_port,
                                 log_level="warning", lifespan="off", ws="websockets-sansio")
            server = uvicorn.Server(cfg)
            task = asyncio.create_task(server.serve())
            for _ in range(100):
                if server.started:
                    break
                await asyncio.sleep(0.05)
        yield platform
    finally:
        if server is not None and task is not None:
            server.should_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 5)
        await platform.stop()


async def wait_for(pred: Callable[[], Awaitable[bool]], timeout: float, what: str, step: float = 0.1) -> None:
    """Poll an async predicate until true; fail with `what` after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while loop.time() < end:
        if await pred():
            return
        await asyncio.sleep(step)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


async def wait_channels(platform: Platform, channel_ids: list[str], timeout: float = 20) -> None:
    """Wait until the platform's catalog sync has stored every one of these channels."""
    async def stored() -> bool:
        await platform.db.writer.flush()
        return all([await platform.db.repo.get_channel(c) for c in channel_ids])

    await wait_for(stored, timeout, f"catalog sync of {len(channel_ids)} channel(s)")


async def login(client: httpx.AsyncClient) -> dict[str, str]:
    r = await client.post("/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


@pytest.fixture
def settings_factory(tmp_path: Path) -> Callable[..., Settings]:
    def make(db_url: str | None = None, **over: Any) -> Settings:
        return make_settings(tmp_path, db_url, **over)

    return make
