"""The HTTP application: `create_app(platform)`.

The app only *uses* the platform (settings, store, event bus, signalling and media services);
starting and stopping it is the caller's job (the CLI's server loop), so tests can build an app
around any platform-shaped object.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI

from xueliang import __version__
from xueliang.api.errors import install_error_handlers
from xueliang.api.routers import auth, channels, devices, events, media, overview, streams, system, users, web

API_PREFIX = "/api/v1"

TAGS = [
    {"name": "auth", "description": "Log in; tokens are `Authorization: Bearer <token>`."},
    {"name": "devices", "description": "GB/T 28181 devices and device-level commands."},
    {"name": "channels", "description": "Channels (cameras), their position and camera controls."},
    {"name": "streams", "description": "Live play sessions and snapshots."},
    {"name": "media", "description": "HTTP-FLV, WebSocket-FLV and fMP4 outputs (play token in `?token=`)."},
    {"name": "overview", "description": "Alarms, positions, summary, map clusters, trees."},
    {"name": "events", "description": "Live events (SSE and WebSocket)."},
    {"name": "users", "description": "Users and the audit log (admin)."},
    {"name": "system", "description": "Version, health, metrics."},
]


def create_app(platform: Any) -> FastAPI:
    """Build the FastAPI app around a started (or starting) Platform."""
    app = FastAPI(
        title="xueliang",
        version=getattr(platform, "version", __version__),
        description="GB/T 28181 video networking platform: HTTP API.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
        openapi_tags=TAGS,
    )
    app.state.platform = platform
    install_error_handlers(app)

    api = APIRouter(prefix=API_PREFIX)
    for r in (auth, devices, channels, streams, media, overview, events, users, system):
        api.include_router(r.router)
    app.include_router(api)
    app.include_router(system.root_router)
    # Catch-all for the console: must stay last.
    app.include_router(web.build_router(platform))
    # No GZip middleware on purpose: it would burn CPU re-compressing live video and can delay
    # event streams; a reverse proxy can compress the console's static files.
    return app
