"""Password hashing with Argon2id.

Argon2 is deliberately slow (tens of milliseconds), so the API calls these through
`asyncio.to_thread` to keep the event loop free for signalling and media.
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher()

MIN_LENGTH = 8


def hash_password(password: str) -> str:
    """Return an encoded Argon2id hash (salt and parameters included)."""
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """True when `password` matches; False on mismatch or a malformed stored hash (never raises)."""
    if not password_hash:
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """True when the stored hash uses weaker parameters than today's default."""
    try:
        return _hasher.check_needs_rehash(password_hash)
    except (InvalidHashError, ValueError):
        return True


def password_problem(username: str, password: str) -> str | None:
    """Why a new password is not acceptable, or None when it is.

    Kept small on purpose: a minimum length and not the user name, the two rules that stop the
    passwords most often found on surveillance platforms in audits ("admin"/"admin", "12345678" aside).
    """
    if len(password) < MIN_LENGTH:
        return f"password must be at least {MIN_LENGTH} characters"
    if password.strip().lower() == username.strip().lower():
        return "password must not equal the user name"
    if len(password) > 256:
        return "password too long (max 256 characters)"
    return None
