"""The console's static files and SPA fallback."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import httpx

from xueliang.api.app import create_app


def _client(dist: Path) -> httpx.AsyncClient:
    app = create_app(SimpleNamespace(settings=SimpleNamespace(web_dist=dist)))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def test_spa_fallback(tmp_path: Path) -> None:
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text("<html>console</html>")
    (tmp_path / "assets" / "app.js").write_text("console.log(1)")
    (tmp_path.parent / "secret.txt").write_text("nope")
    async with _client(tmp_path) as c:
        r = await c.get("/")
        assert r.status_code == 200 and "console" in r.text
        r = await c.get("/devices/34020000001320000001")
        assert r.status_code == 200 and "console" in r.text
        r = await c.get("/assets/app.js")
        assert r.status_code == 200 and "immutable" in r.headers["cache-control"]
        assert (await c.get("/assets/missing.js")).status_code == 404
        assert (await c.get("/api/v1/nope")).status_code == 404
        assert (await c.get("/api/v1/nope")).json()["code"] == "not_found"
        r = await c.get("/..%2Fsecret.txt")
        assert "nope" not in r.text


async def test_notice_without_build(tmp_path: Path) -> None:
    async with _client(tmp_path / "absent") as c:
        r = await c.get("/")
        assert r.status_code == 200 and "make web" in r.text
