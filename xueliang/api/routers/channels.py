"""Channels: list with filters, detail, edit (position, labels) and camera controls."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, status

from xueliang.api.deps import ChannelId, Operator, Page, Viewer, audit, client_ip, get_platform
from xueliang.api.errors import ApiError, platform_errors
from xueliang.api.schemas import (
    ChannelPatchIn,
    HomePositionIn,
    PresetIn,
    PtzIn,
    PullChannelIn,
    RecordIn,
    fields_set,
)
from xueliang.api.schemas import Page as PageOut
from xueliang.store.repo import CHANNEL_SORTS

router = APIRouter(prefix="/channels", tags=["channels"])

CHANNEL_SORT = rf"^-?({'|'.join(sorted(CHANNEL_SORTS))})$"
_URL_CREDENTIALS = re.compile(r"(://)[^/@\s]*@")


def public_channel(row: dict[str, Any]) -> dict[str, Any]:
    """Hide credentials embedded in a pull source URL (rtsp://user:pass@host/...)."""
    url = row.get("pull_url")
    if isinstance(url, str) and "@" in url:
        row = {**row, "pull_url": _URL_CREDENTIALS.sub(r"\1***@", url)}
    return row
STATUS = r"^(online|offline)$"
CODE = r"^[0-9A-Za-z_-]{1,32}$"


@router.get("", response_model=PageOut, summary="Paged channel list with filters")
async def list_channels(
    request: Request, _: Viewer, pg: Page,
    status_: Annotated[str | None, Query(alias="status", pattern=STATUS)] = None,
    device_id: Annotated[str | None, Query(pattern=r"^[0-9]{18,20}$")] = None,
    parent_id: Annotated[str | None, Query(max_length=64)] = None,
    civil_code: Annotated[str | None, Query(pattern=CODE)] = None,
    business_group_id: Annotated[str | None, Query(pattern=CODE)] = None,
    class_level: Annotated[int | None, Query(ge=0, le=9)] = None,
    district: Annotated[str | None, Query(max_length=64)] = None,
    q: Annotated[str | None, Query(max_length=100, description="matches id, name, address")] = None,
    has_position: Annotated[bool | None, Query(description="only channels with (or without) coordinates")] = None,
    sort: Annotated[str, Query(pattern=CHANNEL_SORT, description="column, '-' prefix for descending")] = "channel_id",
) -> dict[str, Any]:
    repo = get_platform(request).db.repo
    with platform_errors():
        items, total = await repo.list_channels(
            page=pg.page, size=pg.size, status=status_, device_id=device_id, parent_id=parent_id or None,
            civil_code=civil_code, business_group_id=business_group_id, class_level=class_level,
            district=district or None, q=q or None, has_position=has_position, sort=sort,
        )
    return {"items": [public_channel(r) for r in items], "total": total}


@router.post("/pull", status_code=status.HTTP_201_CREATED, summary="Add a non-GB source (RTSP/RTMP/HTTP-FLV)")
async def add_pull_channel(body: PullChannelIn, request: Request, user: Operator) -> dict[str, Any]:
    platform = get_platform(request)
    row = {k: v for k, v in body.model_dump().items() if v is not None}
    row["pull_url"] = row.pop("url")
    with platform_errors():
        created = await platform.db.repo.add_pull_channel(row)
    audit(platform, user.username, "channel.add_pull", str(created.get("channel_id", "")),
          {"name": body.name}, client_ip(request))
    return public_channel(created)


async def channel_or_404(platform: Any, channel_id: str) -> dict[str, Any]:
    row = await platform.db.repo.get_channel(channel_id)
    if row is None:
        raise ApiError(404, f"channel {channel_id} not found", "not_found")
    return row  # type: ignore[no-any-return]


@router.get("/{channel_id}", summary="Channel detail")
async def get_channel(channel_id: ChannelId, request: Request, _: Viewer) -> dict[str, Any]:
    return public_channel(await channel_or_404(get_platform(request), channel_id))


@router.patch("/{channel_id}", summary="Edit a channel (name, position, labels, transport)")
async def patch_channel(channel_id: ChannelId, body: ChannelPatchIn, request: Request, user: Operator) -> dict[str, Any]:
    platform = get_platform(request)
    fields = fields_set(body)
    if ("longitude" in fields) != ("latitude" in fields):
        raise ApiError(422, "longitude and latitude go together", "validation_error")
    with platform_errors(channel_id):
        row = await platform.db.repo.update_channel(channel_id, fields)
    if row is None:
        raise ApiError(404, f"channel {channel_id} not found", "not_found")
    audit(platform, user.username, "channel.update", channel_id, fields, client_ip(request))
    return public_channel(row)


def _gb(platform: Any) -> Any:
    gb = getattr(platform, "gb", None)
    if gb is None:
        raise ApiError(503, "signalling service not running", "unavailable")
    return gb


async def _control(request: Request, user: Any, channel_id: str, action: str, call: str,
                   *args: Any, detail: dict[str, Any] | None = None) -> dict[str, Any]:
    platform = get_platform(request)
    await channel_or_404(platform, channel_id)
    with platform_errors(channel_id):
        answer = await getattr(_gb(platform), call)(channel_id, *args)
    if action:
        audit(platform, user.username, action, channel_id, detail or {}, client_ip(request))
    if isinstance(answer, list):
        return {"items": answer, "total": len(answer)}
    return answer if isinstance(answer, dict) else {"result": answer}


@router.post("/{channel_id}/ptz", summary="Pan/tilt/zoom/focus/iris; returns the device's answer")
async def ptz(channel_id: ChannelId, body: PtzIn, request: Request, user: Operator) -> dict[str, Any]:
    return await _control(request, user, channel_id, "channel.ptz", "ptz", body.command, body.speed,
                          detail={"command": body.command, "speed": body.speed})


@router.post("/{channel_id}/preset", summary="Set, call or delete a preset")
async def preset(channel_id: ChannelId, body: PresetIn, request: Request, user: Operator) -> dict[str, Any]:
    return await _control(request, user, channel_id, "channel.preset", "preset", body.op, body.index,
                          detail={"op": body.op, "index": body.index})


@router.get("/{channel_id}/presets", summary="PresetQuery")
async def presets(channel_id: ChannelId, request: Request, user: Viewer) -> dict[str, Any]:
    return await _control(request, user, channel_id, "", "preset_query")


@router.post("/{channel_id}/record", summary="Start or stop recording on the device")
async def record(channel_id: ChannelId, body: RecordIn, request: Request, user: Operator) -> dict[str, Any]:
    return await _control(request, user, channel_id, "channel.record", "record", body.start,
                          detail={"start": body.start})


@router.post("/{channel_id}/iframe", summary="Ask for a key frame (IFameCmd)")
async def iframe(channel_id: ChannelId, request: Request, user: Operator) -> dict[str, Any]:
    return await _control(request, user, channel_id, "", "iframe")


@router.post("/{channel_id}/home_position", summary="Configure the home position (watch position)")
async def home_position(
    channel_id: ChannelId, request: Request, user: Operator,
    body: Annotated[HomePositionIn | None, Body()] = None,
) -> dict[str, Any]:
    b = body or HomePositionIn()
    return await _control(request, user, channel_id, "channel.home_position", "home_position",
                          b.enabled, b.preset, b.reset_time, detail=b.model_dump())
