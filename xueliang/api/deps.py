"""FastAPI dependencies: the platform, the current user, role checks, paging and ID validation."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection

from xueliang.api.errors import ApiError
from xueliang.security import rights
from xueliang.security.tokens import DEFAULT_TTL, TokenError, decode_token, password_fingerprint

_GB_ID = re.compile(r"[0-9]{18,20}")
_STREAM_ID = re.compile(r"[A-Za-z0-9_.:-]{1,80}")

bearer = HTTPBearer(auto_error=False, description="Access token from POST /api/v1/auth/login")


@dataclass(frozen=True, slots=True)
class User:
    username: str
    role: str


def get_platform(conn: HTTPConnection) -> Any:
    """The Platform object handed to create_app (typed Any: the API only uses its documented attributes)."""
    return conn.app.state.platform


def setting(platform: Any, name: str, default: Any = None) -> Any:
    """A settings field with a default, so the API runs on partial settings objects (tests, tools)."""
    return getattr(platform.settings, name, default)


def secret_key(platform: Any) -> str | bytes:
    key = setting(platform, "secret_key")
    if not key:
        raise ApiError(503, "server has no secret key configured", "unavailable")
    return key  # type: ignore[no-any-return]


def token_ttl(platform: Any) -> int:
    return int(setting(platform, "token_ttl", DEFAULT_TTL) or DEFAULT_TTL)


def client_ip(conn: HTTPConnection) -> str:
    return conn.client.host if conn.client else ""


async def user_from_token(platform: Any, token: str | None) -> User:
    """Validate a bearer token against the key and the user row (exists, not disabled, same password)."""
    if not token:
        raise ApiError(401, "not authenticated", "unauthorized", {"WWW-Authenticate": "Bearer"})
    try:
        claims = decode_token(secret_key(platform), token)
    except TokenError as exc:
        raise ApiError(401, str(exc), "unauthorized", {"WWW-Authenticate": "Bearer"}) from exc
    row = await platform.db.repo.get_user(claims["sub"])
    if row is None or row.get("disabled"):
        raise ApiError(401, "user no longer valid", "unauthorized", {"WWW-Authenticate": "Bearer"})
    pv = claims.get("pv")
    if pv is not None and pv != password_fingerprint(str(row.get("password_hash") or "")):
        raise ApiError(401, "password changed, log in again", "unauthorized", {"WWW-Authenticate": "Bearer"})
    role = str(row.get("role") or claims.get("role") or "")
    return User(str(row.get("username") or claims["sub"]), role)


async def current_user(
    request: Request,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> User:
    """The caller, from `Authorization: Bearer <token>` only."""
    return await user_from_token(get_platform(request), creds.credentials if creds else None)


async def current_user_or_query(
    request: Request,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    token: Annotated[str | None, Query(description="access token, for EventSource clients")] = None,
) -> User:
    """Like current_user but also accepts `?token=`; used only by streaming endpoints, because
    browsers cannot set headers on EventSource/WebSocket."""
    return await user_from_token(get_platform(request), creds.credentials if creds else token)


def require(*roles: str) -> Any:
    """Dependency factory: the caller must hold one of `roles` (or a higher one)."""

    async def _check(user: Annotated[User, Depends(current_user)]) -> User:
        if not rights.allows(user.role, *roles):
            raise ApiError(403, f"role '{user.role}' may not do this (needs {' or '.join(roles)})", "forbidden")
        return user

    return Depends(_check)


CurrentUser = Annotated[User, Depends(current_user)]
Viewer = Annotated[User, require(rights.VIEWER)]
Operator = Annotated[User, require(rights.OPERATOR)]
Admin = Annotated[User, require(rights.ADMIN)]


def check_gb_id(value: str, what: str = "id") -> str:
    """GB/T 28181 IDs are 20 digits; 18 are accepted leniently. Anything else is a 400."""
    if not _GB_ID.fullmatch(value):
        raise ApiError(400, f"invalid {what} '{value[:40]}': expected an 18-20 digit GB/T 28181 id", "bad_id")
    return value


def _device_id(device_id: str) -> str:
    return check_gb_id(device_id, "device_id")


def _channel_id(channel_id: str) -> str:
    return check_gb_id(channel_id, "channel_id")


def _stream_id(stream_id: str) -> str:
    if not _STREAM_ID.fullmatch(stream_id):
        raise ApiError(400, "invalid stream_id", "bad_id")
    return stream_id


DeviceId = Annotated[str, Depends(_device_id)]
ChannelId = Annotated[str, Depends(_channel_id)]
StreamId = Annotated[str, Depends(_stream_id)]


@dataclass(frozen=True, slots=True)
class Paging:
    page: int
    size: int


def paging(
    page: Annotated[int, Query(ge=1, le=10_000_000, description="1-based page number")] = 1,
    size: Annotated[int, Query(ge=1, le=1000, description="items per page")] = 20,
) -> Paging:
    return Paging(page, size)


Page = Annotated[Paging, Depends(paging)]


def audit(platform: Any, user: str, action: str, target: str, detail: dict[str, Any] | None = None,
          source: str = "") -> None:
    """Queue an audit row; never fails the request (the writer is sync and non-blocking)."""
    writer = getattr(platform.db, "writer", None)
    if writer is not None:
        writer.audit(user, action, target, detail or {}, source)
