"""User administration and the audit log (admin only)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request, status

from xueliang.api.deps import Admin, Page, audit, client_ip, get_platform
from xueliang.api.errors import ApiError
from xueliang.api.schemas import Page as PageOut
from xueliang.api.schemas import UserCreateIn, UserPatchIn
from xueliang.security.passwords import hash_password, password_problem

router = APIRouter(tags=["users"])

_HIDDEN = {"password_hash", "password"}


def public_user(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in _HIDDEN}


@router.get("/users", response_model=PageOut, summary="All users")
async def list_users(request: Request, _: Admin) -> dict[str, Any]:
    rows = await get_platform(request).db.repo.list_users()
    return {"items": [public_user(r) for r in rows], "total": len(rows)}


@router.post("/users", status_code=status.HTTP_201_CREATED, summary="Create a user")
async def create_user(body: UserCreateIn, request: Request, user: Admin) -> dict[str, Any]:
    platform = get_platform(request)
    problem = password_problem(body.username, body.password)
    if problem:
        raise ApiError(422, problem, "weak_password")
    if await platform.db.repo.get_user(body.username) is not None:
        raise ApiError(409, f"user {body.username} already exists", "conflict")
    pw_hash = await asyncio.to_thread(hash_password, body.password)
    row = await platform.db.repo.create_user(body.username, pw_hash, body.role)
    audit(platform, user.username, "user.create", body.username, {"role": body.role}, client_ip(request))
    return public_user(row)


@router.patch("/users/{username}", summary="Change a user's role, password, disabled flag or lockout")
async def patch_user(username: str, body: UserPatchIn, request: Request, user: Admin) -> dict[str, Any]:
    platform = get_platform(request)
    repo = platform.db.repo
    if await repo.get_user(username) is None:
        raise ApiError(404, f"user {username} not found", "not_found")
    fields: dict[str, Any] = {}
    if body.role is not None:
        if username == user.username and body.role != "admin":
            raise ApiError(409, "an admin cannot demote themself", "conflict")
        fields["role"] = body.role
    if body.disabled is not None:
        if username == user.username and body.disabled:
            raise ApiError(409, "an admin cannot disable themself", "conflict")
        fields["disabled"] = body.disabled
    if body.unlock:
        fields.update(failed_logins=0, locked_until=None)
    if body.password is not None:
        problem = password_problem(username, body.password)
        if problem:
            raise ApiError(422, problem, "weak_password")
        fields["password_hash"] = await asyncio.to_thread(hash_password, body.password)
    if fields:
        await repo.update_user(username, fields)
    audit(platform, user.username, "user.update", username,
          {k: v for k, v in fields.items() if k != "password_hash"} | ({"password": "reset"} if body.password else {}),
          client_ip(request))
    return public_user(await repo.get_user(username) or {"username": username})


@router.get("/audit", response_model=PageOut, summary="Audit log, newest first (hash-chained)")
async def list_audit(request: Request, _: Admin, pg: Page) -> dict[str, Any]:
    items, total = await get_platform(request).db.repo.list_audit(page=pg.page, size=pg.size)
    return {"items": items, "total": total}
