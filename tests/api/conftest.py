"""Fixtures for the HTTP API tests; see support.py for the test platform they build."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn

from xueliang.api.app import create_app

from .support import (
    ADMIN_PW,
    OPERATOR_PW,
    VIEWER_PW,
    ApiTestPlatform,
    close_platform,
    login,
    make_platform,
)


@pytest.fixture
async def platform(tmp_path: Any) -> AsyncIterator[ApiTestPlatform]:
    p = await make_platform(tmp_path)
    try:
        yield p
    finally:
        await close_platform(p)


@pytest.fixture
def app(platform: ApiTestPlatform) -> Any:
    return create_app(platform)


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as c:
        yield c


@pytest.fixture
async def admin(client: httpx.AsyncClient) -> dict[str, str]:
    return await login(client, "admin", ADMIN_PW)


@pytest.fixture
async def operator(client: httpx.AsyncClient) -> dict[str, str]:
    return await login(client, "oper", OPERATOR_PW)


@pytest.fixture
async def viewer(client: httpx.AsyncClient) -> dict[str, str]:
    return await login(client, "view", VIEWER_PW)


@pytest.fixture
async def server(app: Any) -> AsyncIterator[str]:
    """The app on a real 127.0.0.1 socket (uvicorn), for streaming responses and WebSockets."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off", ws="websockets-sansio")
    srv = uvicorn.Server(config)
    task = asyncio.create_task(srv.serve())
    for _ in range(200):
        if srv.started:
            break
        await asyncio.sleep(0.02)
    assert srv.started, "uvicorn did not start"
    port = srv.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(task, 5)
