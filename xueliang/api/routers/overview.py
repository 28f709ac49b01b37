"""Read-mostly views for the console: alarms, positions, summary, map clusters and trees."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request

from xueliang.api.deps import Operator, Page, Viewer, audit, client_ip, get_platform
from xueliang.api.errors import ApiError, platform_errors
from xueliang.api.schemas import Page as PageOut

router = APIRouter(tags=["overview"])

GbQuery = Query(pattern=r"^[0-9]{18,20}$")


@router.get("/alarms", response_model=PageOut, summary="Alarms, newest first")
async def list_alarms(
    request: Request, _: Viewer, pg: Page,
    device_id: Annotated[str | None, GbQuery] = None,
    acknowledged: bool | None = None,
    since: Annotated[datetime | None, Query(description="ISO 8601 time")] = None,
) -> dict[str, Any]:
    repo = get_platform(request).db.repo
    with platform_errors():
        items, total = await repo.list_alarms(page=pg.page, size=pg.size, device_id=device_id,
                                              acknowledged=acknowledged, since=since)
    return {"items": items, "total": total}


@router.post("/alarms/{alarm_id}/ack", summary="Acknowledge an alarm")
async def ack_alarm(
    alarm_id: Annotated[int, Path(ge=1, le=2**62)], request: Request, user: Operator,
) -> dict[str, Any]:
    platform = get_platform(request)
    if not await platform.db.repo.ack_alarm(alarm_id, user.username):
        raise ApiError(404, f"alarm {alarm_id} not found", "not_found")
    audit(platform, user.username, "alarm.ack", str(alarm_id), {}, client_ip(request))
    platform.events.publish("alarm.ack", id=alarm_id, user=user.username)
    return {"id": alarm_id, "acknowledged": True, "acknowledged_by": user.username}


@router.get("/positions", response_model=PageOut, summary="Mobile positions, newest first")
async def list_positions(
    request: Request, _: Viewer, pg: Page,
    device_id: Annotated[str | None, GbQuery] = None,
    channel_id: Annotated[str | None, GbQuery] = None,
    since: Annotated[datetime | None, Query(description="ISO 8601 time")] = None,
) -> dict[str, Any]:
    repo = get_platform(request).db.repo
    with platform_errors():
        items, total = await repo.list_positions(page=pg.page, size=pg.size, device_id=device_id,
                                                 channel_id=channel_id, since=since)
    return {"items": items, "total": total}


def live_counts(platform: Any) -> dict[str, Any]:
    """Counters held in memory by the services (cheap, no database)."""
    out: dict[str, Any] = {}
    gb = getattr(platform, "gb", None)
    if gb is not None:
        out["devices_online_live"] = gb.online_devices()
    media = getattr(platform, "media", None)
    if media is not None:
        sessions = list(media.sessions())
        out["streams_active"] = len(sessions)
        out["viewers"] = sum(int(s.get("viewers") or 0) for s in sessions)
    return out


@router.get("/summary", summary="Totals for the dashboard")
async def summary(request: Request, _: Viewer) -> dict[str, Any]:
    platform = get_platform(request)
    data = dict(await platform.db.repo.summary())
    data.update(live_counts(platform))
    return data


@router.get("/map/clusters", summary="Clustered channel markers inside a bounding box")
async def map_clusters(
    request: Request, _: Viewer,
    west: Annotated[float, Query(ge=-180, le=180)],
    south: Annotated[float, Query(ge=-90, le=90)],
    east: Annotated[float, Query(ge=-180, le=180)],
    north: Annotated[float, Query(ge=-90, le=90)],
    zoom: Annotated[int, Query(ge=0, le=22)],
    limit: Annotated[int, Query(ge=1, le=10000)] = 2000,
) -> dict[str, Any]:
    if south > north:
        raise ApiError(422, "south must not be greater than north", "validation_error")
    if west > east:
        raise ApiError(422, "west must not be greater than east (split boxes crossing 180°)", "validation_error")
    repo = get_platform(request).db.repo
    items = await repo.map_clusters(west, south, east, north, zoom, limit=limit)
    return {"items": items, "total": len(items)}


@router.get("/tree/civil", summary="One level of the civil-code (administrative region) tree")
async def civil_tree(
    request: Request, _: Viewer,
    parent: Annotated[str | None, Query(pattern=r"^[0-9]{1,20}$")] = None,
) -> dict[str, Any]:
    items = await get_platform(request).db.repo.group_tree("civil_code", parent or None)
    return {"items": items, "total": len(items)}


@router.get("/tree/groups", summary="One level of the business-group / virtual-organisation tree")
async def group_tree(
    request: Request, _: Viewer,
    parent: Annotated[str | None, Query(pattern=r"^[0-9]{1,20}$")] = None,
) -> dict[str, Any]:
    items = await get_platform(request).db.repo.group_tree("business_group", parent or None)
    return {"items": items, "total": len(items)}
