"""Devices: list, pre-register, detail, edit, delete, and device-level commands.

Device rows never leave the API with their SIP password; clients only see `has_password`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, status

from xueliang.api.deps import (
    DeviceId,
    Operator,
    Page,
    Viewer,
    audit,
    check_gb_id,
    client_ip,
    get_platform,
)
from xueliang.api.errors import ApiError, platform_errors
from xueliang.api.schemas import DeviceConfigIn, DeviceCreateIn, DevicePatchIn, GuardIn, fields_set
from xueliang.api.schemas import Page as PageOut
from xueliang.store.repo import DEVICE_SORTS, DEVICES

router = APIRouter(prefix="/devices", tags=["devices"])

DEVICE_SORT = rf"^-?({'|'.join(sorted(DEVICE_SORTS))})$"
STATUS = r"^(online|offline)$"
_CONFIG_TYPE = re.compile(r"[A-Za-z]{1,40}")


def public_device(row: dict[str, Any], has_password: bool | None = None) -> dict[str, Any]:
    """Drop the SIP password, keep whether one is set."""
    out = {k: v for k, v in row.items() if k != "password"}
    if "password" in row:
        out["has_password"] = bool(row.get("password"))
    elif has_password is not None:
        out["has_password"] = has_password
    return out


async def _has_password(platform: Any, device_id: str) -> bool | None:
    """Whether a per-device SIP password is set (the repository's device rows omit the column)."""
    from sqlalchemy import select

    try:
        async with platform.db.engine.connect() as conn:
            value = (await conn.execute(select(DEVICES.c.password).where(DEVICES.c.device_id == device_id))).scalar()
    except Exception:
        return None
    return bool(value)


async def _device_or_404(platform: Any, device_id: str) -> dict[str, Any]:
    row = await platform.db.repo.get_device(device_id)
    if row is None:
        raise ApiError(404, f"device {device_id} not found", "not_found")
    return row  # type: ignore[no-any-return]


@router.get("", response_model=PageOut, summary="Paged device list")
async def list_devices(
    request: Request, _: Viewer, pg: Page,
    status_: Annotated[str | None, Query(alias="status", pattern=STATUS)] = None,
    q: Annotated[str | None, Query(max_length=100, description="matches id, name, host")] = None,
    sort: Annotated[str, Query(pattern=DEVICE_SORT, description="column, '-' prefix for descending")] = "device_id",
) -> dict[str, Any]:
    repo = get_platform(request).db.repo
    with platform_errors():
        items, total = await repo.list_devices(page=pg.page, size=pg.size, status=status_, q=q or None, sort=sort)
    return {"items": [public_device(r) for r in items], "total": total}


@router.post("", status_code=status.HTTP_201_CREATED, summary="Pre-register a device")
async def create_device(body: DeviceCreateIn, request: Request, user: Operator) -> dict[str, Any]:
    platform = get_platform(request)
    check_gb_id(body.device_id, "device_id")
    if await platform.db.repo.get_device(body.device_id) is not None:
        raise ApiError(409, f"device {body.device_id} already exists", "conflict")
    row = {k: v for k, v in body.model_dump().items() if v is not None}
    row.setdefault("status", "offline")
    with platform_errors(body.device_id):
        created = await platform.db.repo.add_device(row)
    _forget(platform, body.device_id)
    audit(platform, user.username, "device.create", body.device_id,
          {k: v for k, v in row.items() if k != "password"}, client_ip(request))
    return public_device(created or row, bool(body.password))


@router.get("/{device_id}", summary="Device detail with live information")
async def get_device(device_id: DeviceId, request: Request, _: Viewer) -> dict[str, Any]:
    platform = get_platform(request)
    out = public_device(await _device_or_404(platform, device_id), await _has_password(platform, device_id))
    gb = getattr(platform, "gb", None)
    if gb is not None:
        progress = gb.catalog_progress(device_id)
        if progress is not None:
            out["catalog_progress"] = progress
        live = getattr(gb, "device_state", None)
        if callable(live):
            info = live(device_id)
            if info:
                out["live"] = info
    return out


@router.patch("/{device_id}", summary="Edit a device")
async def patch_device(device_id: DeviceId, body: DevicePatchIn, request: Request, user: Operator) -> dict[str, Any]:
    platform = get_platform(request)
    fields = fields_set(body)
    with platform_errors(device_id):
        row = await platform.db.repo.update_device(device_id, fields)
    if row is None:
        raise ApiError(404, f"device {device_id} not found", "not_found")
    _forget(platform, device_id)
    audit(platform, user.username, "device.update", device_id,
          {k: (v if k != "password" else "***") for k, v in fields.items()}, client_ip(request))
    return public_device(row, await _has_password(platform, device_id))


@router.delete("/{device_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a device and its channels")
async def delete_device(device_id: DeviceId, request: Request, user: Operator) -> None:
    platform = get_platform(request)
    if not await platform.db.repo.delete_device(device_id):
        raise ApiError(404, f"device {device_id} not found", "not_found")
    _forget(platform, device_id, deleted=True)
    audit(platform, user.username, "device.delete", device_id, {}, client_ip(request))


@router.get("/{device_id}/channels", response_model=PageOut, summary="One level of the device's channel tree")
async def device_channels(
    device_id: DeviceId, request: Request, _: Viewer,
    parent_id: Annotated[str | None, Query(max_length=64, description="children of this node; root when absent")] = None,
) -> dict[str, Any]:
    platform = get_platform(request)
    await _device_or_404(platform, device_id)
    items = await platform.db.repo.channel_children(device_id, parent_id or None)
    return {"items": items, "total": len(items)}


def _forget(platform: Any, device_id: str, *, deleted: bool = False) -> None:
    """Tell the signalling core a device row changed, so the next REGISTER reads the store again."""
    forget = getattr(getattr(platform, "gb", None), "forget_device", None)
    if callable(forget):
        forget(device_id, deleted=deleted)


def _gb(platform: Any) -> Any:
    gb = getattr(platform, "gb", None)
    if gb is None:
        raise ApiError(503, "signalling service not running", "unavailable")
    return gb


@router.post("/{device_id}/catalog/refresh", status_code=status.HTTP_202_ACCEPTED, summary="Start a catalog sync")
async def refresh_catalog(device_id: DeviceId, request: Request, user: Operator) -> dict[str, Any]:
    platform = get_platform(request)
    await _device_or_404(platform, device_id)
    gb = _gb(platform)
    progress = gb.catalog_progress(device_id) or {}
    if progress.get("state") == "running":
        raise ApiError(409, f"a catalog sync of {device_id} is already running", "conflict")
    with platform_errors(device_id):
        await gb.refresh_catalog(device_id)
    audit(platform, user.username, "device.catalog_refresh", device_id, {}, client_ip(request))
    return {"status": "started"}


async def _command(request: Request, user: Any, device_id: str, action: str, call: str,
                   *args: Any, **kwargs: Any) -> dict[str, Any]:
    platform = get_platform(request)
    await _device_or_404(platform, device_id)
    with platform_errors(device_id):
        answer = await getattr(_gb(platform), call)(device_id, *args, **kwargs)
    if action:
        audit(platform, user.username, action, device_id, dict(kwargs) or ({"args": list(args)} if args else {}),
              client_ip(request))
    return answer if isinstance(answer, dict) else {"result": answer}


@router.post("/{device_id}/reboot", summary="TeleBoot the device")
async def reboot(device_id: DeviceId, request: Request, user: Operator) -> dict[str, Any]:
    return await _command(request, user, device_id, "device.reboot", "reboot")


@router.post("/{device_id}/guard", summary="Arm or disarm the device (GuardCmd)")
async def guard(device_id: DeviceId, body: GuardIn, request: Request, user: Operator) -> dict[str, Any]:
    return await _command(request, user, device_id, "device.guard", "guard", body.arm)


@router.get("/{device_id}/info", summary="DeviceInfo query")
async def device_info(device_id: DeviceId, request: Request, user: Viewer) -> dict[str, Any]:
    return await _command(request, user, device_id, "", "device_info")


@router.get("/{device_id}/status", summary="DeviceStatus query")
async def device_status(device_id: DeviceId, request: Request, user: Viewer) -> dict[str, Any]:
    return await _command(request, user, device_id, "", "device_status")


@router.post("/{device_id}/config", summary="DeviceConfig (basic parameters)")
async def device_config(device_id: DeviceId, body: DeviceConfigIn, request: Request, user: Operator) -> dict[str, Any]:
    fields = {k: v for k, v in fields_set(body).items() if v is not None}
    if not fields:
        raise ApiError(422, "nothing to configure", "validation_error")
    return await _command(request, user, device_id, "device.config", "device_config", **fields)


@router.get("/{device_id}/config/{config_type}", summary="ConfigDownload query")
async def config_download(device_id: DeviceId, config_type: str, request: Request, user: Viewer) -> dict[str, Any]:
    if not _CONFIG_TYPE.fullmatch(config_type):
        raise ApiError(400, "invalid config type (e.g. BasicParam, VideoParamOpt, SVACEncodeConfig)", "bad_request")
    return await _command(request, user, device_id, "", "config_download", config_type)
