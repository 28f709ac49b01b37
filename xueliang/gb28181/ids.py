"""GB/T 28181 identifiers: 20 digits = centre code (8) + industry (2) + type (3) + serial (7).

The type code decides how a catalog item is shown (device, camera, group, organisation), so the
platform reads it from every ID it sees. Field equipment sometimes sends 18-digit IDs (older
numbering); they are accepted leniently, with the type read from the same positions.
"""

from __future__ import annotations

_KINDS: dict[int, str] = {
    111: "dvr",
    112: "video_server",
    113: "encoder",
    114: "decoder",
    118: "nvr",
    131: "camera",
    132: "ipc",
    200: "platform",
    201: "platform",
    202: "media_server",
    215: "business_group",
    216: "virtual_org",
}
# Only these are named in the contract; the others above map to "other" there.
_CONTRACT_KINDS = {"dvr", "nvr", "camera", "ipc", "platform", "business_group", "virtual_org"}


def is_gb_id(s: str) -> bool:
    """True for 20 ASCII digits (18 accepted leniently, as seen on older equipment)."""
    return isinstance(s, str) and len(s) in (18, 20) and s.isascii() and s.isdigit()


def type_code(s: str) -> int | None:
    """The 3-digit type (positions 10..12, zero-based) or None when `s` is not a full ID."""
    if not is_gb_id(s):
        return None
    return int(s[10:13])


def kind(s: str) -> str:
    """A coarse kind for display and tree building.

    Short all-digit codes of 2, 4, 6 or 8 digits are administrative (civil) codes, the nodes of
    the administrative-division tree.
    """
    if isinstance(s, str) and s.isascii() and s.isdigit() and len(s) in (2, 4, 6, 8):
        return "civil"
    code = type_code(s)
    if code is None:
        return "other"
    k = _KINDS.get(code, "other")
    return k if k in _CONTRACT_KINDS else "other"


def make_id(prefix: str, type_code: int, serial: int) -> str:
    """Build a 20-digit ID from a 10-digit prefix (centre + industry), type and serial."""
    if len(prefix) != 10 or not prefix.isdigit():
        raise ValueError(f"ID prefix must be 10 digits, got {prefix!r}")
    if not 0 <= type_code <= 999 or not 0 <= serial <= 9_999_999:
        raise ValueError("type code must be 0..999 and serial 0..9999999")
    return f"{prefix}{type_code:03d}{serial:07d}"


def domain_of(s: str) -> str:
    """The 10-digit domain (centre + industry) of an ID, used as SIP realm/domain."""
    return s[:10]
