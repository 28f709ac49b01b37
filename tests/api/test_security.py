"""Unit tests of the security helpers (no HTTP)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from xueliang.security import rights
from xueliang.security.passwords import hash_password, needs_rehash, password_problem, verify_password
from xueliang.security.tokens import TokenError, decode_token, issue_token, password_fingerprint
from xueliang.security.users import ensure_admin


def test_argon2_roundtrip() -> None:
    h = hash_password("correct horse")
    assert h.startswith("$argon2id$")
    assert verify_password(h, "correct horse")
    assert not verify_password(h, "correct horsE")
    assert not verify_password("not-a-hash", "x")
    assert not verify_password("", "x")
    assert not needs_rehash(h)


def test_password_rules() -> None:
    assert password_problem("alice", "short") is not None
    assert password_problem("alice12345", "Alice12345") is not None
    assert password_problem("alice", "a-long-enough-one") is None


def test_tokens() -> None:
    t = issue_token("k" * 32, "alice", "viewer", ttl=60, password_hash="h1")
    claims = decode_token("k" * 32, t)
    assert claims["sub"] == "alice" and claims["role"] == "viewer"
    assert claims["exp"] - claims["iat"] == 60
    assert claims["pv"] == password_fingerprint("h1") != password_fingerprint("h2")
    with pytest.raises(TokenError):
        decode_token("other-key-000000000000000000000000", t)
    with pytest.raises(TokenError, match="expired"):
        decode_token(b"k" * 32, issue_token(b"k" * 32, "a", "viewer", ttl=10, now=time.time() - 100))
    with pytest.raises(TokenError):
        decode_token("k" * 32, t[:-3] + "abc")
    with pytest.raises(TokenError):
        decode_token("k" * 32, "")


def test_roles() -> None:
    assert rights.allows("admin", "operator")
    assert rights.allows("operator", "viewer")
    assert rights.allows("operator", "operator")
    assert not rights.allows("viewer", "operator")
    assert not rights.allows("operator", "admin")
    assert not rights.allows("root", "viewer")
    assert not rights.allows("viewer", "nonsense")


class _Repo:
    def __init__(self) -> None:
        self.users: dict[str, dict[str, Any]] = {}

    async def get_user(self, username: str) -> dict[str, Any] | None:
        return self.users.get(username)

    async def create_user(self, username: str, password_hash: str, role: str) -> dict[str, Any]:
        self.users[username] = {"username": username, "password_hash": password_hash, "role": role}
        return self.users[username]


async def test_ensure_admin_random_then_idempotent() -> None:
    repo = _Repo()
    pw = await ensure_admin(repo, None)
    assert pw and len(pw) >= 12
    assert repo.users["admin"]["role"] == "admin"
    assert verify_password(repo.users["admin"]["password_hash"], pw)
    assert await ensure_admin(repo, "another-password") is None  # existing admin untouched
    assert verify_password(repo.users["admin"]["password_hash"], pw)


async def test_ensure_admin_from_env_value_and_weak_refused() -> None:
    repo = _Repo()
    assert await ensure_admin(repo, "given-Password-1") is None
    assert verify_password(repo.users["admin"]["password_hash"], "given-Password-1")
    with pytest.raises(ValueError):
        await ensure_admin(_Repo(), "admin")
