"""SQLAlchemy 2 models: the schema every other room reads and the migrations create.

Why these shapes:

* `channels` has a surrogate integer key and a UNIQUE(device_id, channel_id): the same channel ID can be
  announced by two devices (a camera and the NVR that records it, or a lower platform), and the catalog sync
  upserts on that pair.
* The indexes are the ones the console's queries need at 500,000 channels (status counts, a device's tree,
  civil-code / business-group trees, class level, district, name prefix, map clustering by lat/lng, status
  history per object).  Every index costs ingest time, so there are no speculative ones.
* `extra` is plain JSON (JSONB on PostgreSQL, so the writer can merge new unknown catalog fields into old ones).
* Timestamps are always UTC: `UTCDateTime` attaches UTC on the way out and converts on the way in, so SQLite
  (which stores naive text) and PostgreSQL (timestamptz) give the same aware datetimes back.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A DateTime that is always UTC-aware in Python, whatever the backend stores."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        if dialect.name == "sqlite":
            # SQLite keeps text; a fixed naive UTC form sorts and compares correctly.
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


#: JSON everywhere, JSONB on PostgreSQL (mergeable with ||, compact).
JSONType = JSON().with_variant(JSONB(), "postgresql")

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSONType}


class Device(Base):
    """A GB/T 28181 device or lower platform (one SIP registration)."""

    __tablename__ = "devices"

    device_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(255))
    manufacturer: Mapped[str | None] = mapped_column(String(255))
    model: Mapped[str | None] = mapped_column(String(255))
    firmware: Mapped[str | None] = mapped_column(String(255))
    device_type: Mapped[str | None] = mapped_column(String(32))
    transport: Mapped[str | None] = mapped_column(String(8))
    stream_transport: Mapped[str | None] = mapped_column(String(16))
    host: Mapped[str | None] = mapped_column(String(64))
    port: Mapped[int | None] = mapped_column(Integer)
    gb_version: Mapped[str | None] = mapped_column(String(16))
    charset: Mapped[str | None] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="offline", server_default="offline")
    password: Mapped[str | None] = mapped_column(String(255))
    expires: Mapped[int | None] = mapped_column(Integer)
    heartbeat_interval: Mapped[int | None] = mapped_column(Integer)
    heartbeat_count: Mapped[int | None] = mapped_column(Integer)
    registered_at: Mapped[datetime | None] = mapped_column()
    keepalive_at: Mapped[datetime | None] = mapped_column()
    last_online_at: Mapped[datetime | None] = mapped_column()
    channel_count: Mapped[int | None] = mapped_column(Integer)
    catalog_synced_at: Mapped[datetime | None] = mapped_column()
    class_level: Mapped[int | None] = mapped_column(Integer)
    district: Mapped[str | None] = mapped_column(String(64))
    owner_unit: Mapped[str | None] = mapped_column(String(255))
    extra: Mapped[dict[str, Any] | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_devices_status", "status"),)


class Channel(Base):
    """A channel (camera, alarm input, civil/business-group/virtual-org node) announced in a catalog."""

    __tablename__ = "channels"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("devices.device_id", ondelete="CASCADE"), nullable=False
    )
    channel_id: Mapped[str] = mapped_column(String(32), nullable=False)
    name: Mapped[str | None] = mapped_column(String(255))
    manufacturer: Mapped[str | None] = mapped_column(String(255))
    model: Mapped[str | None] = mapped_column(String(255))
    owner: Mapped[str | None] = mapped_column(String(255))
    civil_code: Mapped[str | None] = mapped_column(String(32))
    block: Mapped[str | None] = mapped_column(String(255))
    address: Mapped[str | None] = mapped_column(String(255))
    parental: Mapped[int | None] = mapped_column(Integer)
    parent_id: Mapped[str | None] = mapped_column(String(64))
    business_group_id: Mapped[str | None] = mapped_column(String(32))
    safety_way: Mapped[int | None] = mapped_column(Integer)
    register_way: Mapped[int | None] = mapped_column(Integer)
    secrecy: Mapped[int | None] = mapped_column(Integer)
    ip_address: Mapped[str | None] = mapped_column(String(64))
    port: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="offline", server_default="offline")
    longitude: Mapped[float | None] = mapped_column(Float)
    latitude: Mapped[float | None] = mapped_column(Float)
    ptz_type: Mapped[int | None] = mapped_column(Integer)
    class_level: Mapped[int | None] = mapped_column(Integer)
    district: Mapped[str | None] = mapped_column(String(64))
    owner_unit: Mapped[str | None] = mapped_column(String(255))
    resolution: Mapped[str | None] = mapped_column(String(64))
    #: derived by the writer from `resolution` (widest "WxH"), so "HD" counts stay an indexed-free SUM
    resolution_width: Mapped[int | None] = mapped_column(Integer)
    #: derived by the writer from channel_id digits 11..13 (131 camera, 215 business group, 216 virtual org ...)
    type_code: Mapped[int | None] = mapped_column(Integer)
    stream_transport: Mapped[str | None] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(8), default="gb", server_default="gb")
    pull_url: Mapped[str | None] = mapped_column(Text)
    extra: Mapped[dict[str, Any] | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        UniqueConstraint("device_id", "channel_id", name="uq_channels_device_channel"),
        Index("ix_channels_channel_id", "channel_id"),
        # status filter + default sort by channel_id from one index; counts per status are index-only
        Index("ix_channels_status", "status", "channel_id"),
        Index("ix_channels_device_parent", "device_id", "parent_id"),
        # civil-code prefix ranges; covering for the civil tree's GROUP BY civil_code, status and for the
        # keys-only page query (sorting small index entries, not whole rows)
        Index("ix_channels_civil_code", "civil_code", "status", "type_code", "channel_id"),
        Index("ix_channels_business_group_id", "business_group_id"),
        Index("ix_channels_parent_id", "parent_id"),
        Index("ix_channels_class_level", "class_level"),
        Index("ix_channels_district", "district"),
        Index("ix_channels_name", "name"),
        # type lookups (business groups, virtual orgs) and, covering, the dashboard summary's one-pass aggregate
        Index("ix_channels_type_code", "type_code", "status", "class_level", "resolution_width", "latitude",
              "longitude"),
        # covering index for map clustering: the grid aggregate never touches the table
        Index("ix_channels_geo", "latitude", "longitude", "status", "channel_id"),
    )


class StatusEvent(Base):
    """One online/offline transition of a device or channel (history for online-rate reports)."""

    __tablename__ = "status_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    object_id: Mapped[str] = mapped_column(String(32), nullable=False)
    device_id: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    reason: Mapped[str | None] = mapped_column(String(255))
    at: Mapped[datetime] = mapped_column(nullable=False)

    __table_args__ = (
        Index("ix_status_events_kind_object_at", "kind", "object_id", "at"),
        Index("ix_status_events_at", "at"),
    )


class Alarm(Base):
    """An alarm NOTIFY from a device."""

    __tablename__ = "alarms"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(String(32), nullable=False)
    channel_id: Mapped[str | None] = mapped_column(String(32))
    priority: Mapped[int | None] = mapped_column(Integer)
    method: Mapped[int | None] = mapped_column(Integer)
    type: Mapped[int | None] = mapped_column(Integer)
    description: Mapped[str | None] = mapped_column(Text)
    time: Mapped[datetime] = mapped_column(nullable=False)
    longitude: Mapped[float | None] = mapped_column(Float)
    latitude: Mapped[float | None] = mapped_column(Float)
    acknowledged: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    acknowledged_by: Mapped[str | None] = mapped_column(String(64))
    acknowledged_at: Mapped[datetime | None] = mapped_column()
    extra: Mapped[dict[str, Any] | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        Index("ix_alarms_time", "time"),
        Index("ix_alarms_device_time", "device_id", "time"),
        Index("ix_alarms_acknowledged", "acknowledged"),
    )


class Position(Base):
    """A mobile position report."""

    __tablename__ = "positions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(String(32), nullable=False)
    channel_id: Mapped[str | None] = mapped_column(String(32))
    time: Mapped[datetime] = mapped_column(nullable=False)
    longitude: Mapped[float | None] = mapped_column(Float)
    latitude: Mapped[float | None] = mapped_column(Float)
    speed: Mapped[float | None] = mapped_column(Float)
    direction: Mapped[float | None] = mapped_column(Float)
    altitude: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        Index("ix_positions_device_time", "device_id", "time"),
        Index("ix_positions_channel_time", "channel_id", "time"),
    )


class User(Base):
    """A console/API user; password hashes only (argon2, made by the security room)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    password_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    role: Mapped[str] = mapped_column(String(32), nullable=False, default="viewer")
    disabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    failed_logins: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    locked_until: Mapped[datetime | None] = mapped_column()
    last_login_at: Mapped[datetime | None] = mapped_column()
    password_changed_at: Mapped[datetime | None] = mapped_column()
    extra: Mapped[dict[str, Any] | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditLog(Base):
    """Audit trail; each row's `hash` = sha256(prev_hash + canonical JSON of the row), so edits are detectable."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(nullable=False)
    user: Mapped[str] = mapped_column(String(64), nullable=False)
    action: Mapped[str] = mapped_column(String(64), nullable=False)
    target: Mapped[str] = mapped_column(String(255), nullable=False, default="")
    detail: Mapped[dict[str, Any] | None] = mapped_column()
    source: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    prev_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    hash: Mapped[str] = mapped_column(String(64), nullable=False)

    __table_args__ = (
        Index("ix_audit_log_at", "at"),
        Index("ix_audit_log_user", "user"),
    )


class Snapshot(Base):
    """A stored snapshot image of a channel (the file lives on disk; this is the index)."""

    __tablename__ = "snapshots"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device_id: Mapped[str | None] = mapped_column(String(32))
    channel_id: Mapped[str] = mapped_column(String(32), nullable=False)
    path: Mapped[str] = mapped_column(Text, nullable=False)
    content_type: Mapped[str] = mapped_column(String(32), default="image/jpeg")
    size: Mapped[int | None] = mapped_column(Integer)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    taken_at: Mapped[datetime] = mapped_column(nullable=False)

    __table_args__ = (Index("ix_snapshots_channel_taken", "channel_id", "taken_at"),)


DEVICE_COLUMNS = frozenset(c.name for c in Device.__table__.columns)
CHANNEL_COLUMNS = frozenset(c.name for c in Channel.__table__.columns)

#: Name-search objects created by migration 0002 outside the models (they cannot be declared here: an FTS5
#: virtual table and its shadow tables exist on SQLite only, the pg_trgm GIN indexes on PostgreSQL only).
SEARCH_OBJECTS = frozenset({
    "channels_fts", "channels_fts_data", "channels_fts_idx", "channels_fts_content", "channels_fts_docsize",
    "channels_fts_config", "ix_channels_name_trgm", "ix_devices_name_trgm",
})


def include_name(name: str | None, type_: str, parent_names: dict[str, Any]) -> bool:
    """Alembic `include_name` hook for comparing a database with these models: leaves out SEARCH_OBJECTS.

    Pass it as `include_name=` to `context.configure` / `MigrationContext.configure(opts=...)`; without it
    autogenerate would propose dropping the search index."""
    return name not in SEARCH_OBJECTS
