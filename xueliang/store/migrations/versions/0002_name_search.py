"""indexed substring search on channel (and, on PostgreSQL, device) names

SQLite: `channels_fts`, a contentless FTS5 table with the `trigram` tokenizer (SQLite >= 3.34) holding
`lower(name)` of every channel under the channel's `id` as rowid, kept in sync by triggers on channels.
Why contentless over lower(name), not an external-content table over name: the trigram tokenizer's own case
folding is Unicode-wide while SQLite's LIKE folds ASCII only; indexing the ASCII-lowered name
(SQLite's built-in lower()) with `case_sensitive 1` makes a MATCH of the ASCII-lowered query give exactly the
rows `name LIKE '%q%'` gives, so the repository can count and page from the index alone.
Skipped (the repository then keeps using LIKE) when this SQLite has no FTS5 or no trigram tokenizer.

PostgreSQL: `pg_trgm` (trusted since PG 13) and GIN trigram indexes on channels.name and devices.name, which
serve `name ILIKE '%q%'` for patterns of 3+ characters.  Skipped with a warning when the extension cannot
be installed; ILIKE still works, as a scan.

None of these objects is in the models: xueliang.store.models.SEARCH_OBJECTS lists them so schema
comparisons (autogenerate, tests) leave them out.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 09:00:00
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.engine import Connection

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("alembic.runtime.migration")

# Spelled out here (not imported) so this revision never changes when the application does.
SQLITE_UP = [
    "CREATE VIRTUAL TABLE channels_fts USING fts5(name, content='', tokenize='trigram case_sensitive 1')",
    # An upsert's DO UPDATE fires the UPDATE trigger; REPLACE would not fire DELETE triggers (never used).
    """CREATE TRIGGER channels_fts_ai AFTER INSERT ON channels WHEN new.name IS NOT NULL BEGIN
        INSERT INTO channels_fts(rowid, name) VALUES (new.id, lower(new.name));
    END""",
    """CREATE TRIGGER channels_fts_ad AFTER DELETE ON channels WHEN old.name IS NOT NULL BEGIN
        INSERT INTO channels_fts(channels_fts, rowid, name) VALUES ('delete', old.id, lower(old.name));
    END""",
    # Only when the name really changed: catalog re-syncs rewrite every row with the same name.
    """CREATE TRIGGER channels_fts_au AFTER UPDATE OF name, id ON channels
        WHEN old.name IS NOT new.name OR old.id != new.id BEGIN
        INSERT INTO channels_fts(channels_fts, rowid, name)
            SELECT 'delete', old.id, lower(old.name) WHERE old.name IS NOT NULL;
        INSERT INTO channels_fts(rowid, name) SELECT new.id, lower(new.name) WHERE new.name IS NOT NULL;
    END""",
    "INSERT INTO channels_fts(rowid, name) SELECT id, lower(name) FROM channels WHERE name IS NOT NULL",
]
SQLITE_DOWN = [
    "DROP TRIGGER IF EXISTS channels_fts_au",
    "DROP TRIGGER IF EXISTS channels_fts_ad",
    "DROP TRIGGER IF EXISTS channels_fts_ai",
    "DROP TABLE IF EXISTS channels_fts",
]
PG_INDEXES = {
    "ix_channels_name_trgm": "channels",
    "ix_devices_name_trgm": "devices",
}


def _sqlite_has_trigram(bind: Connection) -> bool:
    try:
        bind.exec_driver_sql("CREATE VIRTUAL TABLE temp.xl_probe_fts USING fts5(x, tokenize='trigram')")
    except sa.exc.OperationalError as exc:  # no fts5 module, or "no such tokenizer: trigram" (< 3.34)
        log.warning("SQLite %s has no FTS5 trigram tokenizer (%s): name search stays a LIKE scan",
                    bind.exec_driver_sql("SELECT sqlite_version()").scalar(), exc)
        return False
    bind.exec_driver_sql("DROP TABLE temp.xl_probe_fts")
    return True


def _pg_upgrade(bind: Connection) -> None:
    if bind.exec_driver_sql("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'").first() is None:
        log.warning("pg_trgm is not available on this server: name search stays an ILIKE scan")
        return
    try:
        with bind.begin_nested():  # a savepoint: a refused CREATE EXTENSION must not abort the migration
            bind.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except sa.exc.DBAPIError as exc:
        log.warning("cannot install pg_trgm (%s): name search stays an ILIKE scan", exc)
        return
    for name, table in PG_INDEXES.items():
        bind.exec_driver_sql(f"CREATE INDEX IF NOT EXISTS {name} ON {table} USING gin (name gin_trgm_ops)")


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        if _sqlite_has_trigram(bind):
            for sql in SQLITE_UP:
                bind.exec_driver_sql(sql)
    elif bind.dialect.name == "postgresql":
        _pg_upgrade(bind)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for sql in SQLITE_DOWN:
            bind.exec_driver_sql(sql)
    elif bind.dialect.name == "postgresql":
        for name in PG_INDEXES:
            bind.exec_driver_sql(f"DROP INDEX IF EXISTS {name}")
        # pg_trgm stays: other objects may use it, and an unused extension costs nothing.
