"""The Platform: one object that owns every long-lived part and starts/stops them in order.

Order matters: the store first (the device service restores its registry from it), then the SIP
endpoint and device service (devices may already be knocking), then the media service. Stop goes
the other way so that BYEs still reach devices and the writer flushes last.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from . import __version__
from .config import Settings
from .events import EventBus

log = logging.getLogger("xueliang.platform")


class Platform:
    """Everything the API and the CLI need, in one place."""

    def __init__(self, settings: Settings) -> None:
        from .store.db import Database

        self.settings = settings
        self.version = __version__
        self.events = EventBus()
        # The dashboard summary is a whole-table aggregate: serve it at most 2 s stale (refreshed behind).
        self.db = Database(settings.database_url, summary_ttl=2.0)
        self.started_at = time.time()
        self.endpoint: Any = None
        self.gb: Any = None
        self.media: Any = None
        self.demo: Any = None
        self.admin_password: str | None = None

    async def start(self) -> None:
        from .gb28181.service import GbService
        from .media.service import MediaService
        from .security.users import ensure_admin
        from .sip.endpoint import SipEndpoint

        s = self.settings
        await self.db.open()
        self.admin_password = await ensure_admin(self.db.repo, _env_admin_password())
        self.endpoint = SipEndpoint(self._on_sip, user_agent=f"xueliang/{__version__}")
        self.gb = GbService(s, self.endpoint, self.db.writer, self.events, self.db.repo)
        self.media = MediaService(s, self.gb, self.db, self.events)
        await self.endpoint.start(s.sip_host, s.sip_port)
        await self.gb.start(await self.db.repo.runtime_devices())
        await self.media.start()
        self._warm = asyncio.create_task(self._warm_caches(), name="warm-caches")
        self.started_at = time.time()
        log.info("SIP %s@%s listening on %s:%s (udp+tcp)", s.sip_id, s.sip_domain, *self.endpoint.local_address)
        if s.demo:
            await self._start_demo()

    async def _warm_caches(self) -> None:
        """Fill the low-zoom map and dashboard caches behind start-up (whole-table scans at 500k)."""
        try:
            await self.db.repo.summary()
            await self.db.repo.group_tree("civil_code")
            await self.db.repo.warm_map()
        except Exception as exc:  # a cold cache only costs the first user some time
            log.warning("cache warm-up failed: %s", exc)

    def _on_sip(self, incoming: Any) -> None:
        self.gb.handle(incoming)

    async def _start_demo(self) -> None:
        """Start simulated devices with media in this process, so a newcomer sees video at once."""
        from .sim.runner import SimNetwork

        host, port = self.endpoint.local_address
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        self.demo = SimNetwork(
            f"{host}:{port}", devices=self.settings.demo_devices, channels=self.settings.demo_channels,
            media=True, password=self.settings.sip_password, keepalive=20.0,
            server_id=self.settings.sip_id,
        )
        await self.demo.start()
        log.info("demo: %d simulated devices x %d channels with live media",
                 self.settings.demo_devices, self.settings.demo_channels)

    async def stop(self) -> None:
        warm = getattr(self, "_warm", None)
        if warm is not None:
            warm.cancel()
        if self.demo is not None:
            await self.demo.stop()
        if self.media is not None:
            await self.media.shutdown()
        if self.gb is not None:
            await self.gb.stop()
        if self.endpoint is not None:
            await self.endpoint.close()
        await self.db.close()

    def stats(self) -> dict[str, Any]:
        """Counters for /metrics and /healthz."""
        out: dict[str, Any] = {"uptime": time.time() - self.started_at, "events_published": self.events.published}
        if self.endpoint is not None:
            out["sip"] = dict(self.endpoint.stats)
        if self.gb is not None:
            out["gb"] = dict(getattr(self.gb, "stats", {}))
            out["devices_online"] = self.gb.online_devices()
        if self.media is not None:
            out["media"] = self.media.stats()
        return out


def _env_admin_password() -> str | None:
    import os

    return os.environ.get("XUELIANG_ADMIN_PASSWORD") or None
