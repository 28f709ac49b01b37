"""Alembic environment for xueliang.

Runs in two ways:

* programmatically from `Database.open()`: the caller passes an open synchronous connection (obtained with
  `AsyncConnection.run_sync`) in `config.attributes["connection"]`, so migrations share the app's engine;
* from the `alembic` command line (`alembic -c xueliang/store/migrations/alembic.ini upgrade head`, with
  `XUELIANG_DATABASE_URL` or `sqlalchemy.url` set): an async engine is built here and the same
  `do_migrations` runs inside `connection.run_sync`.
"""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from xueliang.store.db import to_async_url
from xueliang.store.models import Base, include_name

config = context.config
target_metadata = Base.metadata


def do_migrations(connection: Connection) -> None:
    """Configure the context on a live connection and run the pending migrations."""
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite ALTER TABLE needs batch mode
        compare_type=True,
        include_name=include_name,  # type: ignore[arg-type]  # the name-search shadow objects (FTS5 / trigram) are not in the models
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async(url: str) -> None:
    engine = create_async_engine(to_async_url(url))
    try:
        async with engine.connect() as conn:
            await conn.run_sync(do_migrations)
            await conn.commit()
    finally:
        await engine.dispose()


def run_offline() -> None:
    url = os.environ.get("XUELIANG_DATABASE_URL") or config.get_main_option("sqlalchemy.url") or ""
    context.configure(url=url, target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        do_migrations(connection)
        return
    url = os.environ.get("XUELIANG_DATABASE_URL") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("set XUELIANG_DATABASE_URL or sqlalchemy.url to run migrations")
    asyncio.run(_run_async(url))


if context.is_offline_mode():
    run_offline()
else:
    run_online()
