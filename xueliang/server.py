"""`xueliang serve`: the platform and the HTTP server on one event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

import uvicorn

from .config import Settings
from .platform import Platform

log = logging.getLogger("xueliang.server")


async def serve_forever(settings: Settings) -> None:
    """Start everything, print where to go, run until SIGINT/SIGTERM, then stop in order."""
    from .api.app import create_app

    platform = Platform(settings)
    await platform.start()
    app = create_app(platform)
    config = uvicorn.Config(app, host=settings.http_host, port=settings.http_port, log_level="warning",
                            lifespan="off", ws="websockets-sansio", proxy_headers=True)
    server = uvicorn.Server(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    task = asyncio.create_task(server.serve())
    url = f"http://{settings.http_host}:{settings.http_port}/"
    banner = [f"xueliang is up: console {url}  API {url}api/v1/docs"]
    if platform.admin_password:
        banner.append(f"first start: user 'admin', password '{platform.admin_password}' (shown once; change it)")
    for line in banner:
        print(line, flush=True)
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    server.should_exit = True
    with contextlib.suppress(TimeoutError, asyncio.CancelledError):
        await asyncio.wait_for(task, 10)
    stopper.cancel()
    await platform.stop()
    log.info("stopped")
