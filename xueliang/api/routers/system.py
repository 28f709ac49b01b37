"""System information, health and Prometheus metrics.

`/healthz` and `/metrics` live outside `/api/v1` and need no token: monitoring systems scrape them
(bind the HTTP port to a management network, or put them behind the reverse proxy's allowlist).
"""

from __future__ import annotations

import dataclasses
import re
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from xueliang import __version__
from xueliang.api.deps import Viewer, get_platform


def _by_kind(name: str, doc: str, values: dict[str, Any], skip: tuple[str, ...] = ()) -> CounterMetricFamily:
    """One counter family labelled by kind from a stats dict (non-numeric and skipped keys left out)."""
    fam = CounterMetricFamily(name, doc, labels=["kind"])
    for key, value in sorted(values.items()):
        v = _num(value)
        if v is not None and key not in skip:
            fam.add_metric([str(key)], v)
    return fam


# Endpoint stats that are levels, not running totals.
SIP_GAUGES = ("transactions",)

router = APIRouter(tags=["system"])
root_router = APIRouter(tags=["system"])

_SECRET_NAME = re.compile(r"password|secret|key|token", re.I)
_URL_PASSWORD = re.compile(r"(://[^:/@]*:)[^@]*@")


def _platform_stats(platform: Any) -> dict[str, Any]:
    stats = getattr(platform, "stats", None)
    if callable(stats):
        return dict(stats())
    out: dict[str, Any] = {}
    gb = getattr(platform, "gb", None)
    if gb is not None:
        out["devices_online"] = gb.online_devices()
    media = getattr(platform, "media", None)
    if media is not None and callable(getattr(media, "stats", None)):
        out["media"] = media.stats()
    return out


def public_settings(settings: Any) -> dict[str, Any]:
    """Settings with secrets removed and passwords in URLs masked."""
    if dataclasses.is_dataclass(settings) and not isinstance(settings, type):
        raw = {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)}
    else:
        raw = dict(vars(settings))
    out: dict[str, Any] = {}
    for name, value in raw.items():
        if name.startswith("_") or _SECRET_NAME.search(name):
            continue
        if isinstance(value, str):
            value = _URL_PASSWORD.sub(r"\1***@", value)
        elif not isinstance(value, int | float | bool | list | dict | type(None)):
            value = str(value)
        out[name] = value
    return out


@router.get("/system", summary="Version, SIP identity, uptime and settings (secrets removed)")
async def system(request: Request, _: Viewer) -> dict[str, Any]:
    platform = get_platform(request)
    s = platform.settings
    started = float(getattr(platform, "started_at", 0) or 0)
    return {
        "version": getattr(platform, "version", __version__),
        "sip_id": getattr(s, "sip_id", None),
        "sip_domain": getattr(s, "sip_domain", None),
        "started_at": started or None,
        "uptime": round(time.time() - started, 1) if started else None,
        "settings": public_settings(s),
    }


async def _db_ok(platform: Any) -> tuple[bool, str]:
    try:
        from sqlalchemy import text

        async with platform.db.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return True, ""
    except Exception as exc:  # the health answer must report, not raise
        return False, f"{type(exc).__name__}: {exc}"[:200]


@root_router.get("/healthz", summary="Liveness and readiness")
async def healthz(request: Request) -> JSONResponse:
    platform = get_platform(request)
    ok, error = await _db_ok(platform)
    stats = _platform_stats(platform)
    body: dict[str, Any] = {
        "status": "ok" if ok else "degraded",
        "version": getattr(platform, "version", __version__),
        "db": {"ok": ok, **({"error": error} if error else {})},
        "sip": stats.get("sip", {}),
        "devices_online": stats.get("devices_online", 0),
        "uptime": round(float(stats.get("uptime", 0.0)), 1),
    }
    return JSONResponse(body, 200 if ok else 503)


class _Snapshot:
    """A one-shot collector: values are gathered (async) before the scrape and emitted here."""

    def __init__(self, families: list[Any]) -> None:
        self._families = families

    def collect(self) -> Any:
        return iter(self._families)


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


@root_router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    platform = get_platform(request)
    stats = _platform_stats(platform)
    fams: list[Any] = []
    seen: set[str] = set()

    def gauge(name: str, doc: str, value: Any) -> None:
        # First source wins: live service counters are added before the database's view of the same
        # thing, and a duplicate family would make Prometheus reject the whole scrape.
        v = _num(value)
        if v is not None and name not in seen:
            seen.add(name)
            fams.append(GaugeMetricFamily(f"xueliang_{name}", doc, value=v))

    gauge("devices_online", "Devices currently registered and alive", stats.get("devices_online", 0))
    gauge("uptime_seconds", "Seconds since the platform started", stats.get("uptime"))
    gauge("event_subscribers", "Open event-stream subscriptions", getattr(platform.events, "subscribers", 0))
    try:
        summary = await platform.db.repo.summary()
    except Exception:
        summary = {}
    for key in ("devices_total", "channels_total", "channels_online", "alarms_today"):
        if key in summary:
            gauge(key, f"{key.replace('_', ' ')} (from the database)", summary.get(key))
    for key, sub in (("devices", "devices"), ("channels", "channels")):
        node = summary.get(key)
        if isinstance(node, dict):
            for field in ("total", "online"):
                gauge(f"{sub}_{field}", f"{sub} {field} (from the database)", node.get(field))
    media = stats.get("media") or {}
    gauge("streams_active", "Live streams being ingested", media.get("streams"))
    gauge("viewers", "Connected viewers over all streams", media.get("viewers"))
    for key in ("plays", "play_failures", "media_timeouts", "idle_teardowns"):
        v = _num(media.get(key))
        if v is not None:
            fams.append(CounterMetricFamily(f"xueliang_media_{key}", f"media {key.replace('_', ' ')}", value=v))
    sip = stats.get("sip") or {}
    if sip:
        fams.append(_by_kind("xueliang_sip_messages", "SIP endpoint counters", sip, skip=SIP_GAUGES))
        for key in SIP_GAUGES:
            v = _num(sip.get(key))
            if v is not None:
                fams.append(GaugeMetricFamily(f"xueliang_sip_{key}", f"SIP {key} in progress now", value=v))
    gb = stats.get("gb") or {}
    if gb:
        fams.append(_by_kind("xueliang_gb", "GB/T 28181 service counters", gb))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(fams))  # type: ignore[arg-type]
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
