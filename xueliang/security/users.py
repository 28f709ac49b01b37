"""Bootstrap of the first administrator.

A fresh installation must never ship a default password: the first admin gets the password from
XUELIANG_ADMIN_PASSWORD, or a random one that the caller prints once.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any, Protocol

from xueliang.security.passwords import hash_password, password_problem
from xueliang.security.rights import ADMIN

ADMIN_USER = "admin"


class UserRepo(Protocol):
    async def get_user(self, username: str) -> dict[str, Any] | None: ...
    async def create_user(self, username: str, password_hash: str, role: str) -> dict[str, Any]: ...


def random_password() -> str:
    """18 URL-safe characters (~108 bits), easy to copy from a terminal."""
    return secrets.token_urlsafe(14)[:18]


async def ensure_admin(repo: UserRepo, password: str | None) -> str | None:
    """Create user `admin` (role admin) when absent.

    Returns the generated password when one was made up (the caller prints it once), else None —
    also None when the admin already exists, whose password is never touched here.
    Raises ValueError when an explicit password is too weak.
    """
    if await repo.get_user(ADMIN_USER) is not None:
        return None
    generated = None
    if not password:
        password = generated = random_password()
    problem = password_problem(ADMIN_USER, password)
    if problem:
        raise ValueError(f"XUELIANG_ADMIN_PASSWORD: {problem}")
    password_hash = await asyncio.to_thread(hash_password, password)
    await repo.create_user(ADMIN_USER, password_hash, ADMIN)
    return generated
