"""Repository: the reads behind the console and API, and the few writes that need an answer.

Everything returns plain JSON-ready dicts (datetimes as ISO strings).  Written for 500,000 channels:

* paged lists count with the same WHERE as the page query (no count over a subquery of the ORDER BY'd page),
  sort only on whitelisted, indexed columns with `id` as a tie-breaker so pages are stable;
* prefixes (`q` on IDs, civil-code trees) are ranges (`>= p AND < p'`), which both SQLite and PostgreSQL
  answer from an index, unlike `LIKE 'p%'` on SQLite;
* the map is clustered by a GROUP BY over a grid in SQL, served from a covering index.
"""

from __future__ import annotations

import asyncio
import string
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    String,
    Table,
    and_,
    bindparam,
    case,
    cast,
    delete,
    exists,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    text,
    update,
)
from sqlalchemy import table as sql_table
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from xueliang.store.models import Alarm, AuditLog, Channel, Device, Position, Snapshot, User, utcnow
from xueliang.store.normalize import GENESIS_HASH, audit_hash, channel_row, device_row

DEVICES: Table = Device.__table__  # type: ignore[assignment]
CHANNELS: Table = Channel.__table__  # type: ignore[assignment]
ALARMS: Table = Alarm.__table__  # type: ignore[assignment]
POSITIONS: Table = Position.__table__  # type: ignore[assignment]
USERS: Table = User.__table__  # type: ignore[assignment]
AUDIT: Table = AuditLog.__table__  # type: ignore[assignment]
SNAPSHOTS: Table = Snapshot.__table__  # type: ignore[assignment]

PULL_DEVICE_ID = "pull"
MAX_PAGE_SIZE = 1000
FTS_DENSE_HITS = 2000  # above this many name hits a page is found by walking the ORDER BY index (see _channel_search)
ORG_TYPES = (200, 215, 216)  # SIP server, business group, virtual organisation: tree nodes, not video

DEVICE_SORTS = frozenset({"device_id", "name", "status", "updated_at", "created_at", "registered_at",
                          "keepalive_at", "manufacturer", "host"})
CHANNEL_SORTS = frozenset({"channel_id", "name", "status", "updated_at", "created_at", "device_id",
                           "civil_code", "class_level"})
DEVICE_LIST_COLUMNS = [c for c in DEVICES.columns if c.name != "password"]
RUNTIME_COLUMNS = ("device_id", "status", "host", "port", "transport", "expires", "registered_at",
                   "keepalive_at", "heartbeat_interval", "heartbeat_count", "gb_version", "password",
                   "charset", "stream_transport", "name")
USER_PUBLIC = [c for c in USERS.columns if c.name != "password_hash"]


def _jsonable(mapping: Mapping[Any, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in mapping.items():
        out[k] = v.isoformat() if isinstance(v, datetime) else v
    return out


def _next_prefix(prefix: str) -> str:
    """The smallest string greater than every string starting with `prefix`."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def _prefix(col: Any, prefix: str) -> ColumnElement[bool]:
    return and_(col >= prefix, col < _next_prefix(prefix))


def _paging(page: int, size: int) -> tuple[int, int]:
    page = max(1, int(page))
    size = max(1, min(MAX_PAGE_SIZE, int(size)))
    return size, (page - 1) * size


def _order(table: Table, sort: str, allowed: frozenset[str], tiebreak: str) -> list[Any]:
    desc = sort.startswith("-")
    name = sort[1:] if desc else sort
    if name not in allowed:
        raise ValueError(f"cannot sort by {sort!r}; allowed: {', '.join(sorted(allowed))}")
    col = table.c[name]
    tie = table.c[tiebreak]
    return [col.desc(), tie.desc()] if desc else [col.asc(), tie.asc()]


def _online(table: Table) -> Any:
    return func.sum(case((table.c.status == "online", 1), else_=0))


def _geo(table: Table = CHANNELS) -> ColumnElement[bool]:
    return and_(table.c.latitude.is_not(None), table.c.longitude.is_not(None),
                table.c.latitude != 0, table.c.longitude != 0)


def _is_video() -> ColumnElement[bool]:
    """Channels that are video sources, not tree nodes: a 20-digit ID (type_code set by the writer) whose
    type is not SIP server / business group / virtual organisation; civil-region nodes (2-8 digits) have none.
    Reads only ix_channels_type_code, so the summary is an index-only scan."""
    c = CHANNELS.c
    return and_(c.type_code.is_not(None), c.type_code.not_in(ORG_TYPES))


class Repository:
    """Reads and small writes; see the module docstring."""

    def __init__(self, engine: AsyncEngine, *, summary_ttl: float = 0.0, map_cache_ttl: float = 0.0,
                 map_cache_max_zoom: int = 7) -> None:
        """`summary_ttl` / `map_cache_ttl` > 0 serve summary() and low-zoom map clusters from a cache that old
        (seconds): both are whole-table aggregates, a few hundred ms at 500,000 channels."""
        self.engine = engine
        self.dialect = engine.dialect.name
        self.summary_ttl = summary_ttl
        self.map_cache_ttl = map_cache_ttl
        self.map_cache_max_zoom = map_cache_max_zoom
        self._cache: dict[Any, tuple[float, Any]] = {}
        self._refreshing: dict[Any, asyncio.Task[None]] = {}
        self._generation = 0
        self._channels_fts: bool | None = None

    # ------------------------------------------------------------------ cache of whole-table aggregates
    async def _cached(self, key: Any, ttl: float, compute: Callable[[], Awaitable[Any]],
                      max_stale: float | None = None) -> Any:
        """Stale-while-revalidate: an answer up to 10 ttl old is served at once and, once older than ttl,
        recomputed by one background task. Aggregates over 500,000 channels cost a few hundred ms and
        every open console asks again after each status event; none of them needs to be exact to the ms.
        """
        if ttl <= 0:
            return await compute()
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and now - hit[0] < (10 * ttl if max_stale is None else max_stale):
            if now - hit[0] >= ttl and key not in self._refreshing:
                self._refreshing[key] = asyncio.get_running_loop().create_task(self._refresh(key, compute))
            return hit[1]
        gen = self._generation
        value = await compute()
        if gen == self._generation:
            self._cache[key] = (time.monotonic(), value)
        return value

    def invalidate_aggregates(self) -> None:
        """Devices or channels were added or changed (catalog sync): forget cached aggregates, so
        nobody is served totals from before the change (status-only changes keep the cache)."""
        self._generation += 1
        self._cache.clear()

    async def _refresh(self, key: Any, compute: Callable[[], Awaitable[Any]]) -> None:
        gen = self._generation
        try:
            value = await compute()
            if gen == self._generation:  # an invalidation during the computation makes it stale
                self._cache[key] = (time.monotonic(), value)
        except Exception:  # keep serving the last good answer; the next call tries again
            pass
        finally:
            self._refreshing.pop(key, None)

    # ------------------------------------------------------------------ helpers
    async def _page(self, table: Table, columns: Sequence[Any], conds: list[Any], order: list[Any],
                    page: int, size: int, key: str | None = None,
                    count_q: Any = None) -> tuple[list[dict[str, Any]], int]:
        """One page and the total, counted with the same WHERE (or by `count_q`, an equivalent cheaper count).

        With `key` (the primary key), the page is found first as keys only — an ORDER BY/OFFSET that an index
        can serve without reading rows (or sorting whole rows) — and only that page's rows are then read.
        """
        limit, offset = _paging(page, size)
        cq = count_q if count_q is not None else select(func.count()).select_from(table).where(*conds)
        async with self.engine.connect() as conn:
            if key is None:
                q = select(*columns).where(*conds).order_by(*order).limit(limit).offset(offset)
                rows = list((await conn.execute(q)).mappings().all())
            else:
                kcol = table.c[key]
                kq = select(kcol).where(*conds).order_by(*order).limit(limit).offset(offset)
                keys = [r[0] for r in await conn.execute(kq)]
                rows = []
                if keys:
                    got = {r[key]: r for r in (await conn.execute(select(*columns).where(kcol.in_(keys))))
                           .mappings().all()}
                    rows = [got[k] for k in keys if k in got]
            if offset == 0 and len(rows) < limit:
                total = len(rows)  # the page holds everything: no count query needed
            else:
                total = int((await conn.execute(cq)).scalar_one())
        return [_jsonable(r) for r in rows], total

    async def _one(self, q: Any) -> dict[str, Any] | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(q)).mappings().first()
        return _jsonable(row) if row is not None else None

    async def _all(self, q: Any) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(q)).mappings().all()
        return [_jsonable(r) for r in rows]

    def _text_match(self, col: Any, q: str) -> ColumnElement[bool]:
        """Case-insensitive (ASCII) substring match; on PostgreSQL a pg_trgm GIN index serves 3+ chars."""
        if self.dialect == "postgresql":
            if len(q) < 3:
                # No trigram to look up: keep the planner off the GIN index (a generic plan of a prepared
                # statement would read all of it), `name || ''` is the same value.
                col = col.concat(literal_column("''"))
            return col.ilike(f"%{_escape_like(q)}%", escape="\\")
        return col.contains(q, autoescape=True)  # SQLite LIKE is case-insensitive for ASCII already

    async def _has_channels_fts(self) -> bool:
        """Whether migration 0002 could create channels_fts (FTS5 with trigram); asked once per Repository
        (lazily: the Repository exists before Database.open() migrates)."""
        if self._channels_fts is None:
            async with self.engine.connect() as conn:
                row = (await conn.execute(text("SELECT 1 FROM sqlite_master WHERE name = 'channels_fts'"))).first()
            self._channels_fts = row is not None
        return self._channels_fts

    async def _channel_search(self, q: str, only_filter: bool) -> tuple[ColumnElement[bool], Any]:
        """The `q` condition of list_channels (channel ID prefix or name substring) and, when it alone is the
        WHERE (`only_filter`) and can be counted cheaper than by reading rows, that count query (else None).

        Name matches are exactly those of `_text_match` (LIKE / ILIKE).  On SQLite with channels_fts and 3+
        characters (the trigram minimum) they come from the FTS index: it holds lower(name) with a
        case-sensitive trigram tokenizer, so a phrase MATCH of the ASCII-lowered query is the same substring
        test as LIKE (ASCII case-insensitive) and needs no recheck.  Then:
        * the total is the FTS hit count (rowids are channel ids, one each) plus the ID-prefix rows that are
          not hits, no channel row read;
        * with many hits (a common word) the `id IN hits` test is hidden from the planner (`id + 0`), so it
          walks the ORDER BY index and stops after one page instead of reading and sorting every hit.
        """
        c = CHANNELS.c
        prefix = _prefix(c.channel_id, q)
        if not (self.dialect == "sqlite" and len(q) >= 3 and await self._has_channels_fts()):
            return or_(prefix, self._text_match(c.name, q)), None
        phrase = '"' + q.translate(_ASCII_LOWER).replace('"', '""') + '"'
        match = literal_column("channels_fts").op("MATCH")(bindparam("fts_q", phrase, type_=String))
        hits: Any = select(literal_column("rowid")).select_from(_CHANNELS_FTS).where(match)
        async with self.engine.connect() as conn:
            n_hits = int((await conn.execute(select(func.count()).select_from(_CHANNELS_FTS).where(match)))
                         .scalar_one())
        in_hits = (c.id + 0).in_(hits) if n_hits > FTS_DENSE_HITS else c.id.in_(hits)
        count_q = None
        if only_filter:
            extra = select(func.count()).select_from(CHANNELS).where(prefix, c.id.not_in(hits)).scalar_subquery()
            count_q = select(literal(n_hits) + extra)
        return or_(prefix, in_hits), count_q

    # ------------------------------------------------------------------ devices
    async def list_devices(self, *, page: int = 1, size: int = 20, status: str | None = None,
                           q: str | None = None, sort: str = "device_id") -> tuple[list[dict[str, Any]], int]:
        c = DEVICES.c
        conds: list[Any] = []
        if status:
            conds.append(c.status == status)
        if q:
            conds.append(or_(_prefix(c.device_id, q), self._text_match(c.name, q)))
        order = _order(DEVICES, sort, DEVICE_SORTS, "device_id")
        return await self._page(DEVICES, DEVICE_LIST_COLUMNS, conds, order, page, size, key="device_id")

    async def get_device(self, device_id: str) -> dict[str, Any] | None:
        """A device without its password (use runtime_devices for that)."""
        return await self._one(select(*DEVICE_LIST_COLUMNS).where(DEVICES.c.device_id == device_id))

    async def runtime_devices(self) -> list[dict[str, Any]]:
        """Everything the signalling core needs to recover its registry after a restart."""
        return await self._all(select(*(DEVICES.c[n] for n in RUNTIME_COLUMNS)))

    async def add_device(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """Insert a device; ValueError if it exists or has no device_id."""
        now = utcnow()
        drow = device_row(row, now)
        if drow is None:
            raise ValueError("device_id is required")
        drow.setdefault("status", "offline")
        try:
            async with self.engine.begin() as conn:
                await conn.execute(insert(DEVICES).values(**drow))
        except IntegrityError as exc:
            raise ValueError(f"device {drow['device_id']} exists") from exc
        got = await self.get_device(drow["device_id"])
        assert got is not None
        return got

    async def update_device(self, device_id: str, fields: Mapping[str, Any]) -> dict[str, Any] | None:
        now = utcnow()
        drow = device_row({**fields, "device_id": device_id}, now) or {}
        drow.pop("device_id", None)
        drow.pop("created_at", None)
        if "extra" in drow:
            old = await self._one(select(DEVICES.c.extra).where(DEVICES.c.device_id == device_id))
            drow["extra"] = {**((old or {}).get("extra") or {}), **drow["extra"]}
        async with self.engine.begin() as conn:
            res = await conn.execute(update(DEVICES).where(DEVICES.c.device_id == device_id).values(**drow))
        if res.rowcount == 0:
            return None
        return await self.get_device(device_id)

    async def delete_device(self, device_id: str) -> bool:
        """Delete a device and its channels."""
        async with self.engine.begin() as conn:
            await conn.execute(delete(CHANNELS).where(CHANNELS.c.device_id == device_id))
            res = await conn.execute(delete(DEVICES).where(DEVICES.c.device_id == device_id))
        return bool(res.rowcount)

    # ------------------------------------------------------------------ channels
    async def list_channels(self, *, page: int = 1, size: int = 20, status: str | None = None,
                            device_id: str | None = None, parent_id: str | None = None,
                            civil_code: str | None = None, business_group_id: str | None = None,
                            class_level: int | None = None, district: str | None = None,
                            q: str | None = None, has_position: bool | None = None,
                            sort: str = "channel_id") -> tuple[list[dict[str, Any]], int]:
        """Paged channels; `civil_code` matches as a prefix (a province code lists all its channels)."""
        c = CHANNELS.c
        conds: list[Any] = []
        if status:
            conds.append(c.status == status)
        if device_id:
            conds.append(c.device_id == device_id)
        if parent_id is not None:
            conds.append(c.parent_id == parent_id)
        if civil_code:
            conds.append(_prefix(c.civil_code, civil_code))
        if business_group_id:
            conds.append(c.business_group_id == business_group_id)
        if class_level is not None:
            conds.append(c.class_level == int(class_level))
        if district:
            conds.append(c.district == district)
        if has_position is not None:
            conds.append(_geo() if has_position else ~_geo())
        count_q = None
        if q:
            # Four or more digits are an ID prefix (an index range); anything else also matches names.
            if q.isdigit() and len(q) >= 4:
                conds.append(_prefix(c.channel_id, q))
            else:
                cond, count_q = await self._channel_search(q, only_filter=not conds)
                conds.append(cond)
        order = _order(CHANNELS, sort, CHANNEL_SORTS, "id")
        return await self._page(CHANNELS, list(CHANNELS.columns), conds, order, page, size, key="id",
                                count_q=count_q)

    async def get_channel(self, channel_id: str, device_id: str | None = None) -> dict[str, Any] | None:
        """The channel with this ID (first match across devices unless device_id narrows it)."""
        conds = [CHANNELS.c.channel_id == channel_id]
        if device_id:
            conds.append(CHANNELS.c.device_id == device_id)
        return await self._one(select(CHANNELS).where(*conds).order_by(CHANNELS.c.id).limit(1))

    async def channel_children(self, device_id: str, parent_id: str | None = None,
                               limit: int = 5000) -> list[dict[str, Any]]:
        """One level of a device's tree, each node with `has_children` (for lazy loading)."""
        c = CHANNELS.c
        if parent_id is None:
            cond = or_(c.parent_id.is_(None), c.parent_id == "", c.parent_id == device_id)
        else:
            cond = c.parent_id == parent_id
        child = CHANNELS.alias("child")
        has_children = exists().where(child.c.device_id == c.device_id, child.c.parent_id == c.channel_id)
        q = (select(CHANNELS, has_children.label("has_children"))
             .where(c.device_id == device_id, cond).order_by(c.channel_id).limit(limit))
        rows = await self._all(q)
        for r in rows:
            r["has_children"] = bool(r["has_children"])
        return rows

    async def update_channel(self, channel_id: str, fields: Mapping[str, Any],
                             device_id: str | None = None) -> dict[str, Any] | None:
        """Update the first channel with this ID (or the one of `device_id`); unknown keys go to extra."""
        cur = await self.get_channel(channel_id, device_id)
        if cur is None:
            return None
        row = channel_row(cur["device_id"], {**fields, "channel_id": channel_id}, utcnow()) or {}
        for k in ("channel_id", "device_id", "created_at", "type_code"):
            row.pop(k, None)
        if "extra" in row:
            row["extra"] = {**(cur.get("extra") or {}), **row["extra"]}
        async with self.engine.begin() as conn:
            await conn.execute(update(CHANNELS).where(CHANNELS.c.id == cur["id"]).values(**row))
        return await self._one(select(CHANNELS).where(CHANNELS.c.id == cur["id"]))

    async def add_pull_channel(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """A non-GB source (RTSP/RTMP/HTTP-FLV) as a channel of the pseudo device `pull` (or row's device)."""
        if not row.get("pull_url"):
            raise ValueError("pull_url is required")
        device_id = str(row.get("device_id") or PULL_DEVICE_ID)
        now = utcnow()
        async with self.engine.begin() as conn:
            exists_q = select(DEVICES.c.device_id).where(DEVICES.c.device_id == device_id)
            if (await conn.execute(exists_q)).first() is None:
                await conn.execute(insert(DEVICES).values(device_id=device_id, name="Pull streams",
                                                          device_type="pull", status="online",
                                                          created_at=now, updated_at=now))
            channel_id = row.get("channel_id")
            if not channel_id:
                n = (await conn.execute(select(func.count()).select_from(CHANNELS)
                                        .where(CHANNELS.c.source == "pull"))).scalar_one()
                serial = int(n) + 1
                while True:
                    channel_id = f"9900000000131{serial:07d}"
                    taken = await conn.execute(select(CHANNELS.c.id).where(CHANNELS.c.channel_id == channel_id))
                    if taken.first() is None:
                        break
                    serial += 1
            crow = channel_row(device_id, {**row, "channel_id": channel_id}, now) or {}
            crow.update(source="pull", pull_url=str(row["pull_url"]), device_id=device_id)
            crow.setdefault("status", "online")
            crow.setdefault("name", str(channel_id))
            try:
                await conn.execute(insert(CHANNELS).values(**crow))
            except IntegrityError as exc:
                raise ValueError(f"channel {channel_id} exists") from exc
        got = await self.get_channel(str(channel_id), device_id)
        assert got is not None
        return got

    # ------------------------------------------------------------------ trees
    async def group_tree(self, by: str, parent: str | None = None) -> list[dict[str, Any]]:
        """Tree nodes with channel counts: by civil code prefix (2/4/6/8 digits) or business group/virtual org."""
        if by == "civil_code":
            if parent is None or len(parent) <= 4:  # the top levels aggregate (nearly) every channel
                return await self._cached(("civil", parent), self.summary_ttl,  # type: ignore[no-any-return]
                                          lambda: self._civil_tree(parent))
            return await self._civil_tree(parent)
        if by == "business_group":
            return await self._business_tree(parent)
        raise ValueError("by must be 'civil_code' or 'business_group'")

    async def _civil_tree(self, parent: str | None) -> list[dict[str, Any]]:
        """GROUP BY the full civil code (index-only scan), then fold into prefixes here: distinct codes are
        few (thousands) while channels are many, and substr() per row would defeat the index."""
        c = CHANNELS.c
        n = 2 if not parent else len(parent) + 2
        if n > 8:
            return []
        conds: list[Any] = [c.civil_code.is_not(None), c.type_code.is_not(None), c.type_code.not_in(ORG_TYPES)]
        if parent:
            conds.append(_prefix(c.civil_code, parent))
        q = (select(c.civil_code, c.status, func.count().label("count"))
             .where(*conds).group_by(c.civil_code, c.status))
        buckets: dict[str, list[int]] = {}
        async with self.engine.connect() as conn:
            for code, status, count in await conn.execute(q):
                if len(code) < n:
                    continue
                b = buckets.setdefault(code[:n], [0, 0])
                b[0] += count
                if status == "online":
                    b[1] += count
            names: dict[str, str] = {}
            if buckets:
                nq = select(c.channel_id, c.name).where(c.channel_id.in_(list(buckets)))
                names = {cid: name for cid, name in await conn.execute(nq)}
        level = {2: "province", 4: "city", 6: "district", 8: "grassroots"}[n]
        return [{"code": code, "name": names.get(code) or code, "level": level, "count": b[0], "online": b[1],
                 "has_children": n < 8} for code, b in sorted(buckets.items())]

    async def _business_tree(self, parent: str | None) -> list[dict[str, Any]]:
        c = CHANNELS.c
        if parent is None:
            groups = await self._all(select(c.channel_id, c.name, c.device_id).where(c.type_code == 215)
                                     .order_by(c.channel_id))
            counts_q = (select(c.business_group_id.label("id"), func.count().label("count"),
                               _online(CHANNELS).label("online"))
                        .where(c.business_group_id.in_([g["channel_id"] for g in groups]), _is_video())
                        .group_by(c.business_group_id))
            kind = "business_group"
        else:
            ptype = int(parent[10:13]) if len(parent) == 20 and parent.isdigit() else None
            cond = c.parent_id == parent
            if ptype == 215:
                cond = or_(cond, and_(c.business_group_id == parent,
                                      or_(c.parent_id.is_(None), c.parent_id == "")))
            groups = await self._all(select(c.channel_id, c.name, c.device_id)
                                     .where(c.type_code == 216, cond).order_by(c.channel_id))
            counts_q = (select(c.parent_id.label("id"), func.count().label("count"),
                               _online(CHANNELS).label("online"))
                        .where(c.parent_id.in_([g["channel_id"] for g in groups]), _is_video())
                        .group_by(c.parent_id))
            kind = "virtual_org"
        counts = {r["id"]: r for r in await self._all(counts_q)} if groups else {}
        seen: set[str] = set()
        out = []
        for g in groups:
            if g["channel_id"] in seen:
                continue  # the same group announced by two devices
            seen.add(g["channel_id"])
            cnt = counts.get(g["channel_id"], {})
            out.append({"id": g["channel_id"], "name": g["name"] or g["channel_id"], "kind": kind,
                        "device_id": g["device_id"], "count": int(cnt.get("count") or 0),
                        "online": int(cnt.get("online") or 0)})
        return out

    # ------------------------------------------------------------------ dashboard
    async def summary(self) -> dict[str, Any]:
        """Totals for the dashboard: one aggregate pass over channels, one over devices (cached, see _cached)."""
        return await self._cached("summary", self.summary_ttl, self._compute_summary)  # type: ignore[no-any-return]

    async def _compute_summary(self) -> dict[str, Any]:
        c = CHANNELS.c
        on = c.status == "online"
        cols: list[Any] = [func.count().label("total"), func.sum(case((on, 1), else_=0)).label("online"),
                           func.sum(case((_geo(), 1), else_=0)).label("geo"),
                           func.sum(case((c.resolution_width >= 1280, 1), else_=0)).label("hd")]
        for lv in (1, 2, 3):
            cols.append(func.sum(case((c.class_level == lv, 1), else_=0)).label(f"l{lv}"))
            cols.append(func.sum(case((and_(c.class_level == lv, on), 1), else_=0)).label(f"l{lv}on"))
        midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        async with self.engine.connect() as conn:
            ch = (await conn.execute(select(*cols).where(_is_video()))).mappings().one()
            dev = (await conn.execute(select(func.count().label("total"), _online(DEVICES).label("online"))
                                      .select_from(DEVICES))).mappings().one()
            alarms = (await conn.execute(select(func.count()).select_from(ALARMS)
                                         .where(ALARMS.c.time >= midnight))).scalar_one()
        out = {
            "devices": {"total": int(dev["total"]), "online": int(dev["online"] or 0)},
            "channels": {"total": int(ch["total"]), "online": int(ch["online"] or 0)},
            "class_levels": {str(lv): {"total": int(ch[f"l{lv}"] or 0), "online": int(ch[f"l{lv}on"] or 0)}
                             for lv in (1, 2, 3)},
            "geo_labelled": int(ch["geo"] or 0),
            "hd": int(ch["hd"] or 0),
            "alarms_today": int(alarms),
        }
        return out

    async def map_clusters(self, west: float, south: float, east: float, north: float, zoom: int,
                           limit: int = 2000) -> list[dict[str, Any]]:
        """Grid clusters of geo-labelled channels in a bounding box.

        The cell is 1/8 of a 256-px web-map tile at `zoom` (about 32 px), so clusters look the same at every
        zoom.  A cell with one channel carries its channel_id, name and status.  At low zoom (<=
        `map_cache_max_zoom`) the whole map is one aggregate over every geo-labelled channel; it is computed
        for the whole world once per `map_cache_ttl` seconds and cut to the box here, so a country-wide view
        costs one scan per TTL, not one per request.
        """
        zoom = max(0, min(22, int(zoom)))
        limit = max(1, int(limit))
        if self.map_cache_ttl > 0 and zoom <= self.map_cache_max_zoom:
            # Positions and status colours move slowly: a low-zoom view is never computed while a
            # user waits once it has been warmed (see warm_map), only refreshed behind.
            world = await self._cached(("map", zoom), self.map_cache_ttl,
                                       lambda: self._clusters(-180.0, -90.0, 180.0, 90.0, zoom, None),
                                       max_stale=float("inf"))
            inside = [cl for cl in world if south <= cl["lat"] <= north
                      and ((west <= cl["lng"] <= east) if west <= east else (cl["lng"] >= west or cl["lng"] <= east))]
            return inside[:limit]  # already ordered by count, descending
        return await self._clusters(west, south, east, north, zoom, limit)

    async def warm_map(self) -> None:
        """Compute the whole-world clusters of every cached zoom level once (at start-up, in the
        background), so the console's first map view does not pay a full-table scan per level."""
        if self.map_cache_ttl <= 0:
            return
        for zoom in range(self.map_cache_max_zoom + 1):
            await self.map_clusters(-180.0, -90.0, 180.0, 90.0, zoom)

    async def _clusters(self, west: float, south: float, east: float, north: float, zoom: int,
                        limit: int | None) -> list[dict[str, Any]]:
        cell = 360.0 / (2 ** zoom) / 8
        c = CHANNELS.c
        # shift to positive before flooring: SQLite's CAST truncates, PostgreSQL's rounds, so floor there
        gx_expr = (c.longitude + 180.0) / cell
        gy_expr = (c.latitude + 90.0) / cell
        if self.dialect == "postgresql":
            gx: Any = func.floor(gx_expr)
            gy: Any = func.floor(gy_expr)
        else:
            gx = cast(gx_expr, Integer)
            gy = cast(gy_expr, Integer)
        lng_cond = (and_(c.longitude >= west, c.longitude <= east) if west <= east
                    else or_(c.longitude >= west, c.longitude <= east))
        conds = [c.latitude >= south, c.latitude <= north, lng_cond, c.latitude != 0, c.longitude != 0]
        n = func.count().label("n")
        q = (select(gx.label("gx"), gy.label("gy"), n, _online(CHANNELS).label("online"),
                    func.avg(c.latitude).label("lat"), func.avg(c.longitude).label("lng"),
                    func.min(c.channel_id).label("channel_id"))
             .where(*conds).group_by(gx, gy).order_by(n.desc()))
        if limit is not None:
            q = q.limit(limit)
        async with self.engine.connect() as conn:
            cells = (await conn.execute(q)).mappings().all()
            singles = [r["channel_id"] for r in cells if r["n"] == 1]
            names: dict[str, tuple[str | None, str]] = {}
            for i in range(0, len(singles), 500):
                part = singles[i:i + 500]
                rows = await conn.execute(select(c.channel_id, c.name, c.status).where(c.channel_id.in_(part)))
                for cid, name, status in rows:
                    names.setdefault(cid, (name, status))
        out = []
        for r in cells:
            item: dict[str, Any] = {"lat": float(r["lat"]), "lng": float(r["lng"]), "count": int(r["n"]),
                                    "online": int(r["online"] or 0)}
            if r["n"] == 1:
                name, status = names.get(r["channel_id"], (None, "online" if r["online"] else "offline"))
                item.update(channel_id=r["channel_id"], name=name, status=status)
            out.append(item)
        return out

    # ------------------------------------------------------------------ alarms, positions
    async def list_alarms(self, *, page: int = 1, size: int = 20, device_id: str | None = None,
                          acknowledged: bool | None = None,
                          since: datetime | None = None) -> tuple[list[dict[str, Any]], int]:
        a = ALARMS.c
        conds: list[Any] = []
        if device_id:
            conds.append(a.device_id == device_id)
        if acknowledged is not None:
            conds.append(a.acknowledged == bool(acknowledged))
        if since is not None:
            conds.append(a.time >= since)
        return await self._page(ALARMS, list(ALARMS.columns), conds, [a.time.desc(), a.id.desc()], page, size)

    async def ack_alarm(self, alarm_id: int, user: str) -> bool:
        async with self.engine.begin() as conn:
            res = await conn.execute(update(ALARMS).where(ALARMS.c.id == int(alarm_id))
                                     .values(acknowledged=True, acknowledged_by=user, acknowledged_at=utcnow()))
        return bool(res.rowcount)

    async def list_positions(self, *, page: int = 1, size: int = 20, device_id: str | None = None,
                             channel_id: str | None = None,
                             since: datetime | None = None) -> tuple[list[dict[str, Any]], int]:
        p = POSITIONS.c
        conds: list[Any] = []
        if device_id:
            conds.append(p.device_id == device_id)
        if channel_id:
            conds.append(p.channel_id == channel_id)
        if since is not None:
            conds.append(p.time >= since)
        return await self._page(POSITIONS, list(POSITIONS.columns), conds, [p.time.desc(), p.id.desc()],
                                page, size)

    async def status_history(self, kind: str, object_id: str, *, since: datetime | None = None,
                             limit: int = 1000) -> list[dict[str, Any]]:
        """Status transitions of one device or channel, oldest first (online-rate reports)."""
        from xueliang.store.models import StatusEvent

        ev: Table = StatusEvent.__table__  # type: ignore[assignment]
        conds = [ev.c.kind == kind, ev.c.object_id == object_id]
        if since is not None:
            conds.append(ev.c.at >= since)
        return await self._all(select(ev).where(*conds).order_by(ev.c.at, ev.c.id).limit(limit))

    # ------------------------------------------------------------------ users
    async def get_user(self, username: str) -> dict[str, Any] | None:
        """A user including password_hash (for login)."""
        return await self._one(select(USERS).where(USERS.c.username == username))

    async def create_user(self, username: str, password_hash: str, role: str) -> dict[str, Any]:
        now = utcnow()
        try:
            async with self.engine.begin() as conn:
                await conn.execute(insert(USERS).values(username=username, password_hash=password_hash,
                                                        role=role, disabled=False, failed_logins=0,
                                                        password_changed_at=now, created_at=now,
                                                        updated_at=now))
        except IntegrityError as exc:
            raise ValueError(f"user {username} exists") from exc
        got = await self._one(select(*USER_PUBLIC).where(USERS.c.username == username))
        assert got is not None
        return got

    async def update_user(self, username: str, fields: Mapping[str, Any]) -> None:
        allowed = {c.name for c in USERS.columns} - {"id", "username", "created_at"}
        bad = set(fields) - allowed
        if bad:
            raise ValueError(f"unknown user fields: {sorted(bad)}")
        values = dict(fields)
        if "password_hash" in values and "password_changed_at" not in values:
            values["password_changed_at"] = utcnow()
        values["updated_at"] = utcnow()
        async with self.engine.begin() as conn:
            await conn.execute(update(USERS).where(USERS.c.username == username).values(**values))

    async def list_users(self) -> list[dict[str, Any]]:
        """Users without password hashes."""
        return await self._all(select(*USER_PUBLIC).order_by(USERS.c.username))

    async def delete_user(self, username: str) -> bool:
        async with self.engine.begin() as conn:
            res = await conn.execute(delete(USERS).where(USERS.c.username == username))
        return bool(res.rowcount)

    # ------------------------------------------------------------------ audit
    async def list_audit(self, *, page: int = 1, size: int = 20, user: str | None = None,
                         action: str | None = None) -> tuple[list[dict[str, Any]], int]:
        conds: list[Any] = []
        if user:
            conds.append(AUDIT.c.user == user)
        if action:
            conds.append(AUDIT.c.action == action)
        return await self._page(AUDIT, list(AUDIT.columns), conds, [AUDIT.c.id.desc()], page, size)

    # ------------------------------------------------------------------ snapshots (image store index)
    async def add_snapshot(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """Index a stored snapshot file (channel, time, path, size) for the image database."""
        values = {k: row[k] for k in ("device_id", "channel_id", "path", "content_type", "size", "width",
                                      "height", "taken_at") if k in row}
        values.setdefault("taken_at", utcnow())
        async with self.engine.begin() as conn:
            new_id = (await conn.execute(insert(SNAPSHOTS).values(**values).returning(SNAPSHOTS.c.id))).scalar_one()
        return await self._one(select(SNAPSHOTS).where(SNAPSHOTS.c.id == new_id)) or {}

    async def list_snapshots(self, *, page: int = 1, size: int = 20, channel_id: str | None = None,
                             since: datetime | None = None) -> tuple[list[dict[str, Any]], int]:
        conds: list[Any] = []
        if channel_id:
            conds.append(SNAPSHOTS.c.channel_id == channel_id)
        if since is not None:
            conds.append(SNAPSHOTS.c.taken_at >= since)
        return await self._page(SNAPSHOTS, list(SNAPSHOTS.columns), conds, [SNAPSHOTS.c.id.desc()], page, size)

    async def get_snapshot(self, snapshot_id: int) -> dict[str, Any] | None:
        return await self._one(select(SNAPSHOTS).where(SNAPSHOTS.c.id == snapshot_id))

    async def verify_audit_chain(self) -> tuple[bool, int | None]:
        """Recompute the hash chain: (True, None) when intact, else (False, id of the first broken row)."""
        prev = GENESIS_HASH
        last_id = 0
        async with self.engine.connect() as conn:
            while True:
                rows = (await conn.execute(select(AUDIT).where(AUDIT.c.id > last_id)
                                           .order_by(AUDIT.c.id).limit(5000))).mappings().all()
                if not rows:
                    return True, None
                for r in rows:
                    if r["prev_hash"] != prev or audit_hash(prev, r) != r["hash"]:
                        return False, int(r["id"])
                    prev = r["hash"]
                    last_id = r["id"]

    # ------------------------------------------------------------------ misc
    async def ping(self) -> None:
        """A `SELECT 1` round trip (health checks; the baseline of the API benchmark)."""
        async with self.engine.connect() as conn:
            await conn.execute(select(literal(1)))

    async def prune_status_events(self, older_than: timedelta) -> int:
        from xueliang.store.models import StatusEvent

        ev: Table = StatusEvent.__table__  # type: ignore[assignment]
        async with self.engine.begin() as conn:
            res = await conn.execute(delete(ev).where(ev.c.at < utcnow() - older_than))
        return int(res.rowcount or 0)


_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)  # SQLite's lower() and LIKE
_CHANNELS_FTS = sql_table("channels_fts")  # migration 0002 (SQLite only): trigram FTS5 over lower(channels.name)


def _escape_like(s: str) -> str:
    return s.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
