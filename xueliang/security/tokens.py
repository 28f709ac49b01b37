"""Signed access tokens (JWT, HS256).

The token carries the user name, role and a short fingerprint of the password hash (`pv`): when a
user changes the password, the fingerprint changes and every token issued before stops working,
without a server-side token list.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any

import jwt

ALGORITHM = "HS256"
DEFAULT_TTL = 12 * 3600


class TokenError(Exception):
    """The token is missing, malformed, expired or not signed by us."""


def _key(secret: str | bytes) -> bytes:
    return secret.encode() if isinstance(secret, str) else bytes(secret)


def password_fingerprint(password_hash: str) -> str:
    """A short, non-reversible tag of the stored hash, embedded in tokens (see module doc)."""
    return hashlib.sha256(password_hash.encode()).hexdigest()[:12]


def issue_token(secret: str | bytes, username: str, role: str, *, ttl: int = DEFAULT_TTL,
                password_hash: str = "", now: float | None = None) -> str:
    """Sign an access token valid for `ttl` seconds."""
    iat = int(now if now is not None else time.time())
    claims: dict[str, Any] = {
        "sub": username,
        "role": role,
        "iat": iat,
        "exp": iat + int(ttl),
        "jti": secrets.token_hex(8),
        "typ": "access",
    }
    if password_hash:
        claims["pv"] = password_fingerprint(password_hash)
    return jwt.encode(claims, _key(secret), algorithm=ALGORITHM)


def decode_token(secret: str | bytes, token: str) -> dict[str, Any]:
    """Verify signature and expiry; return the claims or raise TokenError."""
    if not token or len(token) > 4096:
        raise TokenError("missing or oversized token")
    try:
        claims = jwt.decode(token, _key(secret), algorithms=[ALGORITHM],
                            options={"require": ["sub", "exp", "iat"]})
    except jwt.ExpiredSignatureError as exc:
        raise TokenError("token expired") from exc
    except jwt.PyJWTError as exc:
        raise TokenError("invalid token") from exc
    if claims.get("typ", "access") != "access" or not isinstance(claims.get("sub"), str):
        raise TokenError("invalid token")
    return claims
