"""Database lifecycle: URL mapping, engine setup, migrations at start, the batch writer and repository.

Users write URLs the way SQLAlchemy documents them for sync drivers (`sqlite:///var/x.db`,
`postgresql://u:p@h/db`, Heroku-style `postgres://`); the platform is async, so the driver is swapped
here (aiosqlite, asyncpg) and an explicit driver the user chose is kept.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from xueliang.store.repo import Repository
from xueliang.store.writer import BatchWriter

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def to_async_url(url: str) -> str:
    """Map a user's database URL to its async-driver form; explicit drivers are kept."""
    url = url.strip()
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"not a database URL: {url!r}")
    low = scheme.lower()
    if low in ("sqlite", "sqlite3", "sqlite+pysqlite"):
        return f"sqlite+aiosqlite://{rest}"
    if low in ("postgresql", "postgres", "pgsql", "postgresql+psycopg2", "postgresql+pg8000"):
        # no driver, or a sync-only one: the platform is async, take asyncpg
        return f"postgresql+asyncpg://{rest}"
    return url  # explicit async-capable drivers (aiosqlite, asyncpg, psycopg 3 ...) are kept


def alembic_config() -> Config:
    """An Alembic config built in code, so migrations work from an installed package (no ini lookup)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("path_separator", "os")
    return cfg


def _upgrade(connection: Connection) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "head")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    """WAL lets readers run while the writer commits; NORMAL sync is durable across app crashes."""
    cur = dbapi_conn.cursor()
    try:
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=10000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA cache_size=-8192")  # 8 MiB per connection: 64 MiB x 5 pooled connections cost ~300 B/channel of RSS at 200k channels for no measured ingest gain
        cur.execute("PRAGMA temp_store=MEMORY")
    finally:
        cur.close()


class Database:
    """Owns the engine, runs migrations to head at open(), and hands out the writer and repository."""

    def __init__(self, url: str, *, echo: bool = False, summary_ttl: float = 0.0,
                 map_cache_ttl: float = 5.0) -> None:
        """`map_cache_ttl`: low-zoom (<= 7) map clusters are whole-table aggregates; serve them from a cache
        at most this old (0 disables).  `summary_ttl` likewise for the dashboard summary (off by default)."""
        self.url = url
        self.async_url = to_async_url(url)
        parsed = make_url(self.async_url)
        self.dialect = parsed.get_backend_name()
        kwargs: dict[str, Any] = {"echo": echo}
        if self.dialect == "sqlite":
            db = parsed.database
            if db and db != ":memory:" and not db.startswith("file:"):
                Path(db).expanduser().parent.mkdir(parents=True, exist_ok=True)
        else:
            kwargs.update(pool_size=10, max_overflow=10, pool_pre_ping=True)
        self.engine: AsyncEngine = create_async_engine(self.async_url, **kwargs)
        if self.dialect == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.writer = BatchWriter(self.engine)
        self.repo = Repository(self.engine, summary_ttl=summary_ttl, map_cache_ttl=map_cache_ttl)
        self.writer.on_structure_change = self.repo.invalidate_aggregates
        self._opened = False

    async def open(self) -> None:
        """Migrate to head and start the writer (which reads the audit chain's last hash)."""
        async with self.engine.connect() as conn:
            await conn.run_sync(_upgrade)
            await conn.commit()
        await self.writer.start()
        self._opened = True
        log.info("database open: %s", make_url(self.async_url).render_as_string(hide_password=True))

    async def close(self) -> None:
        """Drain the writer, then release connections."""
        if self._opened:
            await self.writer.close()
            self._opened = False
        await self.engine.dispose()

    async def __aenter__(self) -> Database:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
