"""The built console (Vue, Vite) served at `/`, with single-page-app fallback to index.html.

Unknown paths under /api/ stay JSON 404s: only console routes fall back to the page.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response

from xueliang.api.errors import error_body

NOTICE = """<!doctype html><html><head><meta charset="utf-8"><title>xueliang</title></head>
<body style="font-family:sans-serif;max-width:40em;margin:4em auto">
<h1>xueliang</h1><p>The web console has not been built. Run <code>make web</code>
(or <code>bash scripts/build-web.sh</code>) and reload.</p>
<p>The HTTP API is available: <a href="/api/v1/docs">/api/v1/docs</a>.</p></body></html>"""


def web_dist(platform: Any) -> Path:
    configured = getattr(platform.settings, "web_dist", None)
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[2] / "web_dist"


def build_router(platform: Any) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    root = web_dist(platform).resolve()

    def _file(rel: str) -> Path | None:
        if not rel:
            return None
        candidate = (root / rel).resolve()
        # Stay inside the dist folder (no ../ escapes, no symlinks out of it).
        if candidate.is_file() and candidate.is_relative_to(root):
            return candidate
        return None

    @router.get("/{path:path}")
    async def console(path: str, request: Request) -> Response:
        if path == "api" or path.startswith("api/"):
            return JSONResponse(error_body(404, f"no such API endpoint: /{path}"), 404)
        index = root / "index.html"
        if not index.is_file():
            return HTMLResponse(NOTICE, 200 if path == "" else 404)
        found = _file(path)
        if found is not None:
            cache = "public, max-age=31536000, immutable" if path.startswith("assets/") else "no-cache"
            return FileResponse(found, headers={"Cache-Control": cache})
        if "." in path.rsplit("/", 1)[-1]:
            # A missing asset (e.g. stale hashed JS) is a real 404, not the page.
            return JSONResponse(error_body(404, f"not found: /{path}"), 404)
        return FileResponse(index, headers={"Cache-Control": "no-cache"})

    return router
