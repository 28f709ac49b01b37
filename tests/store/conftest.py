"""Store-room fixtures: an opened Database on the parametrized `db_url` (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from xueliang.store.db import Database


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    database = Database(db_url)
    await database.open()
    try:
        yield database
    finally:
        await database.close()

