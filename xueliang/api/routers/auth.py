"""Login, the current user and changing one's own password.

Lockout: 5 failed logins in a row lock the account for 5 minutes (stored on the user row, so it
survives restarts and holds across workers). Every attempt is audited, never with the password.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request

from xueliang.api.deps import CurrentUser, audit, client_ip, get_platform, secret_key, token_ttl
from xueliang.api.errors import ApiError
from xueliang.api.schemas import LoginIn, LoginOut, PasswordChangeIn, UserOut
from xueliang.security.passwords import hash_password, needs_rehash, password_problem, verify_password
from xueliang.security.tokens import issue_token

router = APIRouter(prefix="/auth", tags=["auth"])

MAX_FAILURES = 5
LOCK_SECONDS = 300

# Verified against when the user does not exist, so unknown and known names take the same time.
_DUMMY_HASH = hash_password("not-a-real-password-xueliang")


def parse_time(value: Any) -> datetime | None:
    """Datetimes come back from the repository as ISO strings (or datetimes); naive means UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        dt = value
    else:
        try:
            dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


@router.post("/login", response_model=LoginOut, summary="Log in and get a bearer token")
async def login(body: LoginIn, request: Request) -> LoginOut:
    platform = get_platform(request)
    repo = platform.db.repo
    ip = client_ip(request)
    now = datetime.now(UTC)
    row = await repo.get_user(body.username)

    if row is not None:
        locked_until = parse_time(row.get("locked_until"))
        if locked_until is not None and locked_until > now:
            audit(platform, body.username, "login.failed", body.username, {"reason": "locked"}, ip)
            retry = max(1, int((locked_until - now).total_seconds()))
            raise ApiError(429, f"account locked, retry in {retry} s", "locked", {"Retry-After": str(retry)})

    stored = str(row.get("password_hash") or "") if row is not None else _DUMMY_HASH
    ok = await asyncio.to_thread(verify_password, stored, body.password)
    if row is None or not ok or row.get("disabled"):
        reason = "disabled" if (row is not None and ok) else "bad credentials"
        if row is not None and not ok:
            failures = int(row.get("failed_logins") or 0) + 1
            fields: dict[str, Any] = {"failed_logins": failures}
            if failures >= MAX_FAILURES:
                fields = {"failed_logins": 0, "locked_until": now + timedelta(seconds=LOCK_SECONDS)}
                reason = "bad credentials, account locked"
            await repo.update_user(body.username, fields)
        audit(platform, body.username, "login.failed", body.username, {"reason": reason}, ip)
        raise ApiError(401, "invalid user name or password", "unauthorized")

    fields = {"failed_logins": 0, "locked_until": None, "last_login_at": now}
    if needs_rehash(stored):
        stored = await asyncio.to_thread(hash_password, body.password)
        fields["password_hash"] = stored
    await repo.update_user(row["username"], fields)
    audit(platform, row["username"], "login", row["username"], {}, ip)
    ttl = token_ttl(platform)
    token = issue_token(secret_key(platform), row["username"], row["role"], ttl=ttl, password_hash=stored)
    return LoginOut(access_token=token, expires_in=ttl, user=UserOut(username=row["username"], role=row["role"]))


@router.get("/me", response_model=UserOut, summary="The logged-in user")
async def me(user: CurrentUser) -> UserOut:
    return UserOut(username=user.username, role=user.role)


@router.post("/password", summary="Change one's own password (old tokens stop working)")
async def change_password(body: PasswordChangeIn, request: Request, user: CurrentUser) -> dict[str, Any]:
    platform = get_platform(request)
    row = await platform.db.repo.get_user(user.username)
    if row is None:
        raise ApiError(401, "user no longer valid", "unauthorized")
    if not await asyncio.to_thread(verify_password, str(row.get("password_hash") or ""), body.old_password):
        audit(platform, user.username, "password.change_failed", user.username, {"reason": "old password"},
              client_ip(request))
        raise ApiError(403, "old password is wrong", "forbidden")
    problem = password_problem(user.username, body.new_password)
    if problem:
        raise ApiError(422, problem, "weak_password")
    if body.new_password == body.old_password:
        raise ApiError(422, "new password equals the old one", "weak_password")
    new_hash = await asyncio.to_thread(hash_password, body.new_password)
    await platform.db.repo.update_user(user.username, {"password_hash": new_hash, "failed_logins": 0})
    audit(platform, user.username, "password.change", user.username, {}, client_ip(request))
    ttl = token_ttl(platform)
    token = issue_token(secret_key(platform), user.username, user.role, ttl=ttl, password_hash=new_hash)
    return {"status": "ok", "access_token": token, "token_type": "bearer", "expires_in": ttl}
