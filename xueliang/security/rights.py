"""Roles and what they may do.

Three roles, ordered: `viewer` (look), `operator` (look, control cameras, edit devices), `admin`
(everything, including users and the audit log). A check names the lowest role allowed; higher
roles pass as well, so adding a role means adding one rank here.
"""

from __future__ import annotations

ADMIN = "admin"
OPERATOR = "operator"
VIEWER = "viewer"

ROLES: tuple[str, ...] = (VIEWER, OPERATOR, ADMIN)
_RANK = {role: i for i, role in enumerate(ROLES)}


def is_role(role: str) -> bool:
    return role in _RANK


def allows(user_role: str, *allowed: str) -> bool:
    """True when `user_role` is one of `allowed` or ranks above the lowest of them.

    Admin always passes. Unknown roles never pass, so a tampered or stale role string is harmless.
    """
    if user_role not in _RANK:
        return False
    if user_role == ADMIN or not allowed:
        return True
    ranks = [_RANK[r] for r in allowed if r in _RANK]
    return bool(ranks) and _RANK[user_role] >= min(ranks)
