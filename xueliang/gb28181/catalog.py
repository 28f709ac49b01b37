"""Catalog sync: collect a device's Response/Catalog pages, map items to channel rows, report progress.

Field behaviour this copes with: pages arrive as separate MESSAGE transactions (each with its own
Call-ID), SumNum may be 0, wrong, or repeated items may inflate it, and devices stop half way. A sync
ends "done" when the number of distinct channel IDs reaches SumNum, or "timeout" after
`catalog_timeout` seconds without a new page. Every page is upserted as it lands, so a partial
sync still stores what came, and nothing is ever deleted here: a missing page must never wipe
channels an operator has been using.

`CatalogSync` is sans-I/O (state + clock passed in); `CatalogManager` wires it to the writer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .service import GbService

__all__ = ["CatalogManager", "CatalogSync", "map_item", "status_of"]

log = logging.getLogger("xueliang.gb28181.catalog")

# MANSCDP field -> channels column (value converter applied separately)
_COLUMNS = {
    "DeviceID": "channel_id", "Name": "name", "Manufacturer": "manufacturer", "Model": "model",
    "Owner": "owner", "CivilCode": "civil_code", "Block": "block", "Address": "address",
    "Parental": "parental", "ParentID": "parent_id", "BusinessGroupID": "business_group_id",
    "SafetyWay": "safety_way", "RegisterWay": "register_way", "Secrecy": "secrecy",
    "IPAddress": "ip_address", "Port": "port", "Status": "status", "Longitude": "longitude",
    "Latitude": "latitude", "PTZType": "ptz_type",
}
_INT_COLUMNS = frozenset({"parental", "safety_way", "register_way", "secrecy", "port", "ptz_type"})
_ONLINE = frozenset({"ON", "OK", "ONLINE"})
# Catalog-notify events (carried in the item's <Event>)
EVENTS = frozenset({"ADD", "DEL", "UPDATE", "ON", "OFF", "VLOST", "DEFECT"})


def status_of(value: str | None) -> str:
    return "online" if value and value.strip().upper() in _ONLINE else "offline"


def _coord(value: str) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    if f != f or f == 0.0 or abs(f) > 180.0:
        return None
    return f


def map_item(item: Mapping[str, str]) -> dict[str, Any] | None:
    """One flattened MANSCDP catalog item -> a channels row; None without a DeviceID.

    Unknown fields (2022's GrassrootsCode, PointType, MAC, ...) are kept under their own names;
    the writer merges keys that are not columns into `extra`.
    """
    cid = (item.get("DeviceID") or "").strip()
    if not cid:
        return None
    row: dict[str, Any] = {}
    for key, raw in item.items():
        if key == "Event":
            continue
        col = _COLUMNS.get(key)
        value = raw.strip() if isinstance(raw, str) else raw
        if col is None:
            if key.startswith("Info."):
                key = key[5:]
                col = _COLUMNS.get(key)
            if col is None:
                if value != "":
                    row[key] = value
                continue
        if col == "status":
            row[col] = status_of(value)
        elif col in ("longitude", "latitude"):
            row[col] = _coord(value)
        elif col in _INT_COLUMNS:
            row[col] = int(value) if isinstance(value, str) and value.isdigit() else None
        elif col == "channel_id":
            row[col] = value
        else:
            row[col] = value if value != "" else None
    if "longitude" in row and "latitude" in row and (row["longitude"] is None or row["latitude"] is None):
        row["longitude"] = row["latitude"] = None
    return row


class CatalogSync:
    """State of one running sync (sans-I/O)."""

    __slots__ = ("device_id", "last_page", "received", "seen", "sn", "started", "state", "total")

    def __init__(self, device_id: str, sn: int, now: float) -> None:
        self.device_id = device_id
        self.sn = sn
        self.started = now
        self.last_page = now
        self.total: int | None = None
        self.seen: set[str] = set()
        self.received = 0
        self.state = "running"

    def page(self, sum_num: int | None, channel_ids: list[str], now: float) -> list[str]:
        """Account for one page; returns the IDs new to this sync."""
        self.last_page = now
        if sum_num is not None:
            self.total = sum_num if self.total is None else max(self.total, sum_num)
        fresh = [c for c in channel_ids if c not in self.seen]
        self.seen.update(fresh)
        self.received = len(self.seen)
        if self.state == "running" and self.total is not None and self.received >= self.total:
            self.state = "done"
        return fresh

    def expired(self, now: float, timeout: float) -> bool:
        return self.state == "running" and now - self.last_page >= timeout

    def progress(self) -> dict[str, Any]:
        return {"device_id": self.device_id, "received": self.received,
                "total": self.total if self.total is not None else 0, "state": self.state,
                "started_at": self.started}


class CatalogManager:
    """Runs syncs, applies pages and catalog notifications to the store through the writer."""

    def __init__(self, service: GbService) -> None:
        self.svc = service
        self.syncs: dict[str, CatalogSync] = {}

    def progress(self, device_id: str) -> dict[str, Any] | None:
        sync = self.syncs.get(device_id)
        return sync.progress() if sync else None

    def running(self, device_id: str) -> bool:
        sync = self.syncs.get(device_id)
        return sync is not None and sync.state == "running"

    def begin(self, device_id: str, sn: int) -> CatalogSync:
        sync = CatalogSync(device_id, sn, time.monotonic())
        self.syncs[device_id] = sync
        self._publish(sync)
        return sync

    def fail(self, device_id: str, reason: str) -> None:
        sync = self.syncs.get(device_id)
        if sync and sync.state == "running":
            sync.state = "failed"
            log.warning("catalog sync of %s failed: %s", device_id, reason)
            self._publish(sync)

    def on_response(self, device_id: str, sum_num: int | None, items: list[dict[str, str]]) -> None:
        """A Response/Catalog page (any Call-ID, any SN: some devices reuse or reset it)."""
        rows = self._rows(items)
        sync = self.syncs.get(device_id)
        if sync is None or sync.state != "running":
            # late page of a finished sync, or an unsolicited catalog: still store it
            if rows:
                self._store(device_id, rows)
            if sync is not None and rows:
                sync.page(sum_num, [r["channel_id"] for r in rows], time.monotonic())
            return
        self.svc.stats["catalog_pages"] += 1
        sync.page(sum_num, [r["channel_id"] for r in rows], time.monotonic())
        if rows:
            self._store(device_id, rows)
        self._publish(sync)
        if sync.state == "done":
            self._finished(sync)

    def on_notify(self, device_id: str, items: list[dict[str, str]]) -> None:
        """Catalog change notification (SUBSCRIBE/NOTIFY or MESSAGE Notify) with per-item Event.

        DEL keeps the row (alarms, positions, recordings and grants refer to it) and marks it offline
        with `deleted: true` in extra; a later ADD clears the flag. Dropping the row would lose that
        history and make a transient vendor glitch destructive.
        """
        now = datetime.now(UTC)
        upserts: list[dict[str, Any]] = []
        for item in items:
            row = map_item(item)
            if row is None:
                continue
            event = (item.get("Event") or "UPDATE").strip().upper()
            cid = row["channel_id"]
            if event in ("ADD", "UPDATE"):
                row["deleted"] = False
                upserts.append(row)
            elif event == "DEL":
                upserts.append({"channel_id": cid, "status": "offline", "deleted": True,
                                "deleted_at": now.isoformat()})
                self._status(device_id, cid, "offline", now, "deleted")
                self.svc.forget_channel(device_id, cid)
            elif event in ("ON", "OFF", "VLOST", "DEFECT"):
                status = "online" if event == "ON" else "offline"
                self._status(device_id, cid, status, now, event.lower())
        if upserts:
            self._store(device_id, upserts)

    def check_timeouts(self, now: float) -> None:
        timeout = self.svc.settings.catalog_timeout
        for sync in list(self.syncs.values()):
            if sync.expired(now, timeout):
                sync.state = "timeout"
                log.info("catalog sync of %s timed out at %d/%s", sync.device_id, sync.received, sync.total)
                self.svc.stats["catalog_timeouts"] += 1
                self._publish(sync)
                self._finished(sync)

    # -- helpers -----------------------------------------------------------------------------------
    def _rows(self, items: list[dict[str, str]]) -> list[dict[str, Any]]:
        rows = []
        for item in items:
            row = map_item(item)
            if row is not None:
                rows.append(row)
        return rows

    def _store(self, device_id: str, rows: list[dict[str, Any]]) -> None:
        remember = self.svc.remember_channel
        for r in rows:
            if not r.get("deleted"):
                remember(device_id, r["channel_id"])
        self.svc.writer.upsert_channels(device_id, rows)
        self.svc.stats["catalog_items"] += len(rows)

    def _status(self, device_id: str, channel_id: str, status: str, at: datetime, reason: str) -> None:
        self.svc.writer.status_change("channel", channel_id, status, at, reason, device_id=device_id)
        self.svc.events.publish("channel.status", device_id=device_id, channel_id=channel_id, status=status)

    def _finished(self, sync: CatalogSync) -> None:
        row: dict[str, Any] = {"device_id": sync.device_id, "catalog_synced_at": datetime.now(UTC)}
        if sync.received:
            row["channel_count"] = sync.received
        self.svc.writer.upsert_device(row)
        dev = self.svc.table.get(sync.device_id)
        if dev is not None:
            dev.channel_count = sync.received

    def _publish(self, sync: CatalogSync) -> None:
        self.svc.events.publish("catalog.progress", device_id=sync.device_id, received=sync.received,
                                total=sync.total if sync.total is not None else 0, state=sync.state)
