"""Row normalisation shared by the writer and the repository.

Catalog items arrive with GB/T 28181 XML names (`DeviceID`, `CivilCode`, `ParentID`, `IPAddress`,
`PTZType` ...) or with our column names; values are strings from XML.  This maps both onto columns, coerces
types (a bad number becomes NULL instead of failing the whole batch), keeps every unknown field in `extra`
(the 2022 edition adds fields we must not drop), and derives `type_code` / `resolution_width`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from xueliang.store.models import CHANNEL_COLUMNS, DEVICE_COLUMNS

GENESIS_HASH = "0" * 64

_ONLINE = frozenset({"ON", "ONLINE", "OK", "1", "TRUE", "YES"})

CHANNEL_INT = frozenset({"parental", "safety_way", "register_way", "secrecy", "port", "ptz_type", "class_level"})
CHANNEL_FLOAT = frozenset({"longitude", "latitude"})
DEVICE_INT = frozenset({"port", "expires", "heartbeat_interval", "heartbeat_count", "channel_count", "class_level"})
DEVICE_TIME = frozenset({"registered_at", "keepalive_at", "last_online_at", "catalog_synced_at"})
#: columns a caller may not set on a channel directly (keys, derived values, bookkeeping)
CHANNEL_PROTECTED = frozenset({"id", "device_id", "created_at", "updated_at", "type_code", "resolution_width"})

# GB 2016 resolution codes (Info/Resolution): 5 = 720P, 6 = 1080P/I
_RES_CODES = {"1": (176, 144), "2": (352, 288), "3": (704, 576), "4": (720, 576), "5": (1280, 720),
              "6": (1920, 1080)}
_RES_RE = re.compile(r"(\d{3,5})\s*[xX*×]\s*(\d{3,5})")


def _aliases(columns: Iterable[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for c in columns:
        out[c] = c
        out[c.replace("_", "").lower()] = c
    return out


_CHANNEL_ALIASES = _aliases(CHANNEL_COLUMNS)
_CHANNEL_ALIASES["deviceid"] = "channel_id"  # in a catalog item, DeviceID is the channel's own ID
_CHANNEL_ALIASES["channelid"] = "channel_id"
_CHANNEL_ALIASES["ip"] = "ip_address"
_DEVICE_ALIASES = _aliases(DEVICE_COLUMNS)


def norm_status(value: Any) -> str:
    """GB devices say ON, OK, ONLINE; everything else is offline."""
    if value is None:
        return "offline"
    return "online" if str(value).strip().upper() in _ONLINE else "offline"


def to_int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None if value is None else int(value)
    if isinstance(value, int):
        return value
    if type(value) is str and value.isdigit():
        return int(value)
    try:
        return int(float(str(value).strip()))
    except ValueError:
        return None


def to_float(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, float):
        return value
    try:
        return float(str(value).strip())
    except ValueError:
        return None


def to_time(value: Any) -> datetime | None:
    """datetime, epoch seconds or ISO text (a bare time is taken as UTC) -> aware UTC datetime."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    try:
        t = datetime.fromisoformat(str(value).strip().replace(" ", "T"))
    except ValueError:
        return None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def resolution(value: Any) -> tuple[str | None, int | None]:
    """Normalise a resolution to text "WxH" (widest of a list) and its width; GB 2016 codes understood."""
    if value is None:
        return None, None
    text = str(value).strip()
    if not text:
        return None, None
    best: tuple[int, int] | None = None
    for w, h in _RES_RE.findall(text):
        cand = (int(w), int(h))
        if best is None or cand[0] > best[0]:
            best = cand
    if best is None:
        for part in re.split(r"[/,;\s]+", text):
            code = _RES_CODES.get(part)
            if code and (best is None or code[0] > best[0]):
                best = code
    if best is None:
        return text[:64], None
    return f"{best[0]}x{best[1]}", best[0]


def type_code(channel_id: str) -> int | None:
    """Digits 11..13 of a 20-digit GB ID (131 camera, 215 business group, 216 virtual organisation ...)."""
    if len(channel_id) == 20 and channel_id.isdigit():
        return int(channel_id[10:13])
    return None


# what to do with a catalog key: resolved once per distinct key string, then a dict hit per field
_K_STR, _K_INT, _K_FLOAT, _K_STATUS, _K_RES, _K_EXTRA, _K_SKIP, _K_INFO, _K_EXTRA_DICT = range(9)
_PLANS: dict[str, tuple[int, str]] = {}


def _plan(key: str) -> tuple[int, str]:
    plan = _PLANS.get(key)
    if plan is not None:
        return plan
    col = _CHANNEL_ALIASES.get(key) or _CHANNEL_ALIASES.get(key.lower())
    if col is None:
        plan = (_K_INFO, key) if key.lower() == "info" else (_K_EXTRA, key)
    elif col == "extra":
        plan = (_K_EXTRA_DICT, col)
    elif col in CHANNEL_PROTECTED:
        plan = (_K_SKIP, col)
    elif col in CHANNEL_INT:
        plan = (_K_INT, col)
    elif col in CHANNEL_FLOAT:
        plan = (_K_FLOAT, col)
    elif col == "status":
        plan = (_K_STATUS, col)
    elif col == "resolution":
        plan = (_K_RES, col)
    else:
        plan = (_K_STR, col)
    if len(_PLANS) < 4096:  # bounded: keys come from devices
        _PLANS[key] = plan
    return plan


def channel_row(device_id: str, item: Mapping[str, Any], now: datetime) -> dict[str, Any] | None:
    """One catalog item -> a channel row with only the columns it carries (partial upsert); None if no ID."""
    row: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    stack: list[Mapping[str, Any]] = [item]
    while stack:
        src = stack.pop()
        for key, value in src.items():
            kind, col = _PLANS.get(key) or _plan(key)
            if kind == _K_STR:
                row[col] = value if value is None or type(value) is str else str(value)
            elif kind == _K_INT:
                row[col] = to_int(value)
            elif kind == _K_FLOAT:
                row[col] = to_float(value)
            elif kind == _K_STATUS:
                row[col] = norm_status(value)
            elif kind == _K_RES:
                row["resolution"], row["resolution_width"] = resolution(value)
            elif kind == _K_EXTRA:
                extra[key] = value
            elif kind == _K_INFO:
                if isinstance(value, Mapping):
                    stack.append(value)  # GB <Info> block: PTZType, Resolution ... live inside
                else:
                    extra[key] = value
            elif kind == _K_EXTRA_DICT and isinstance(value, Mapping):
                extra.update(value)
    cid = row.get("channel_id")
    if not cid:
        return None
    row["device_id"] = device_id
    row["type_code"] = type_code(cid)
    if extra:
        row["extra"] = extra
    row["created_at"] = now
    row["updated_at"] = now
    return row


def device_row(item: Mapping[str, Any], now: datetime) -> dict[str, Any] | None:
    """A partial device row: only the given columns; unknown keys go to `extra`."""
    row: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in item.items():
        col = _DEVICE_ALIASES.get(key) or _DEVICE_ALIASES.get(key.lower())
        if col is None:
            extra[key] = value
        elif col in ("created_at", "updated_at"):
            continue
        elif col in DEVICE_INT:
            row[col] = to_int(value)
        elif col in DEVICE_TIME:
            row[col] = to_time(value)
        elif col == "status":
            row[col] = norm_status(value) if value not in ("online", "offline") else value
        elif col == "extra":
            if isinstance(value, Mapping):
                extra.update(value)
        else:
            row[col] = None if value is None else str(value)
    if not row.get("device_id"):
        return None
    if extra:
        row["extra"] = extra
    row["created_at"] = now
    row["updated_at"] = now
    return row


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _stable(obj: Any) -> Any:
    """Integral floats as ints: PostgreSQL's JSONB gives 1e20 back as 100000000000000000000, and the hash
    must not depend on which database stored the row."""
    if isinstance(obj, float) and obj.is_integer():
        return int(obj)
    if isinstance(obj, dict):
        return {k: _stable(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_stable(v) for v in obj]
    return obj


def audit_hash(prev_hash: str, row: Mapping[Any, Any]) -> str:
    """sha256 over prev_hash + canonical JSON of the row's content (at, user, action, target, detail, source)."""
    at = row["at"]
    body = {
        "at": at.astimezone(UTC).isoformat() if isinstance(at, datetime) else str(at),
        "user": row["user"],
        "action": row["action"],
        "target": row["target"],
        "detail": _stable(row.get("detail")),
        "source": row["source"],
    }
    return hashlib.sha256((prev_hash + canonical_json(body)).encode()).hexdigest()
