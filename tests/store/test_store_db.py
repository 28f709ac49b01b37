"""Database lifecycle: URL mapping, migrations equal the models, SQLite settings, restart."""

from __future__ import annotations

from pathlib import Path

import pytest
from _store_data import NVR, cam
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from xueliang.store.db import Database, to_async_url
from xueliang.store.models import Base, include_name


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///var/x.db", "sqlite+aiosqlite:///var/x.db"),
        ("sqlite:////abs/x.db", "sqlite+aiosqlite:////abs/x.db"),
        ("postgresql://u:p@h/db", "postgresql+asyncpg://u:p@h/db"),
        ("postgres://u:p@h:5433/db", "postgresql+asyncpg://u:p@h:5433/db"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db"),
        ("postgresql+psycopg2://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
    ],
)
def test_to_async_url(url: str, expected: str) -> None:
    assert to_async_url(url) == expected


def test_to_async_url_rejects_garbage() -> None:
    with pytest.raises(ValueError):
        to_async_url("not a url")


async def test_migrated_schema_matches_models(db: Database) -> None:
    def diff(sync_conn: object) -> list[object]:
        opts = {"compare_type": True, "include_name": include_name}
        ctx = MigrationContext.configure(sync_conn, opts=opts)  # type: ignore[arg-type]
        return list(compare_metadata(ctx, Base.metadata))

    async with db.engine.connect() as conn:
        differences = await conn.run_sync(diff)
        version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()
    assert differences == []
    assert version == "0002"


async def test_sqlite_settings_and_parent_folder(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "x.db"
    db = Database(f"sqlite:///{path}")
    await db.open()
    try:
        async with db.engine.connect() as conn:
            assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
            assert (await conn.execute(text("PRAGMA synchronous"))).scalar() == 1  # NORMAL
            assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar() == 1
            assert (await conn.execute(text("PRAGMA busy_timeout"))).scalar() >= 5000
    finally:
        await db.close()
    assert path.exists()


async def test_restart_keeps_data_and_migrates_idempotently(db_url: str) -> None:
    db = Database(db_url)
    await db.open()
    db.writer.upsert_device({"device_id": NVR, "name": "NVR one", "status": "online"})
    db.writer.upsert_channels(NVR, [cam(i) for i in range(5)])
    db.writer.audit("admin", "login", "console")
    await db.close()  # close drains without an explicit flush

    db2 = Database(db_url)
    await db2.open()
    try:
        dev = await db2.repo.get_device(NVR)
        assert dev is not None and dev["name"] == "NVR one"
        items, total = await db2.repo.list_channels(device_id=NVR)
        assert total == 5 and len(items) == 5
        db2.writer.audit("admin", "logout", "console")
        await db2.writer.flush()
        assert await db2.repo.verify_audit_chain() == (True, None)  # the chain continued across the restart
        audit, n = await db2.repo.list_audit(page=1, size=10)
        assert n == 2 and audit[0]["prev_hash"] == audit[1]["hash"]
    finally:
        await db2.close()
