"""Indexed name search (migration 0002): same rows as a substring scan, on SQLite (FTS5 trigram) and PostgreSQL
(pg_trgm), kept right through the writer's upserts, renames and deletes."""

from __future__ import annotations

import random
import string
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import Connection

from xueliang.store import repo as repo_mod
from xueliang.store.db import Database, alembic_config
from xueliang.store.models import Base, include_name

DEV_A = "34020000001180000001"
DEV_B = "34020000001180000002"
WORDS = ["东门入口", "西门", "停车场", "南大街", "Camera", "Road", "GATE", "gate", "Gärten", "100%", "a_b",
         'say "hi"', "it's", "*star*", "back\\slash", "NEAR(x", "OR", "-", "x:y", "^1", "Lobby"]
QUERIES = ["东门", "东门入口", "门入", "停车场", "入口 1", "camera", "CAMERA", "Came", "mera 1", "road", "gate",
           "GaTe", "Gä", "ärt", "100%", "0%", "%", "_", "a_b", "a_", '"', 'say "', '"hi"', "'", "it's", "*",
           "*star", "\\", "back\\s", "NEAR(", "OR", "or ", "-", "x:y", "^1", "lob", "1 ", "zz", "z", "Camera 12",
           "西门 2", "门", "123"]
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def cid(i: int) -> str:
    return f"3402000000131{i:07d}"


def make_name(rng: random.Random, i: int) -> str | None:
    if i % 97 == 0:
        return None
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 3))) + f" {i % 50}"


def item(i: int, name: str | None, status: str = "ON") -> dict[str, object]:
    it: dict[str, object] = {"DeviceID": cid(i), "Status": status, "Manufacturer": "Acme", "CivilCode": "340200"}
    if name is not None:
        it["Name"] = name
    return it


def expected(rows: dict[str, dict[str, Any]], q: str, **filters: Any) -> set[str]:
    """Brute force: ID prefix or ASCII-case-insensitive name substring (names here have no non-ASCII case)."""
    ql = q.translate(_ASCII_LOWER)
    out = set()
    for channel_id, r in rows.items():
        if any(r[k] != v for k, v in filters.items()):
            continue
        name = r["name"]
        if channel_id.startswith(q) or (name is not None and ql in name.translate(_ASCII_LOWER)):
            out.add(channel_id)
    return out


async def search_all(db: Database, q: str, size: int = 1000, **kw: Any) -> tuple[list[str], int]:
    """Every page of list_channels(q=...); checks each page's total agrees and pages don't overlap."""
    ids: list[str] = []
    page, total = 1, None
    while True:
        items, t = await db.repo.list_channels(q=q, page=page, size=size, **kw)
        assert total is None or t == total
        total = t
        ids += [i["channel_id"] for i in items]
        if len(items) < size:
            break
        page += 1
    assert total is not None and len(ids) == len(set(ids))
    return ids, total


async def load(db: Database, n: int, seed: int = 5) -> dict[str, dict[str, Any]]:
    """n channels over two devices, statuses mixed; returns channel_id -> {name, status, device_id}."""
    rng = random.Random(seed)
    rows: dict[str, dict[str, Any]] = {}
    per_dev: dict[str, list[dict[str, object]]] = {DEV_A: [], DEV_B: []}
    for i in range(n):
        name = make_name(rng, i)
        dev = DEV_A if i % 3 else DEV_B
        status = "ON" if i % 4 else "OFF"
        per_dev[dev].append(item(i, name, status))
        rows[cid(i)] = {"name": name, "device_id": dev, "status": "online" if status == "ON" else "offline"}
    for dev, items in per_dev.items():
        db.writer.upsert_device({"device_id": dev, "name": f"NVR {dev}", "status": "online"})
        db.writer.upsert_channels(dev, items)
    await db.writer.flush()
    return rows


async def test_search_equals_brute_force(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = await load(db, 2500)
    for dense in (repo_mod.FTS_DENSE_HITS, 20):  # both page strategies of the FTS path
        monkeypatch.setattr(repo_mod, "FTS_DENSE_HITS", dense)
        for q in QUERIES:
            want = expected(rows, q)
            ids, total = await search_all(db, q)
            assert set(ids) == want, (q, dense)
            assert total == len(want), (q, dense)
    assert expected(rows, "东门") and expected(rows, "camera") and expected(rows, "%")  # the data is not empty


async def test_filters_paging_and_sort(db: Database) -> None:
    rows = await load(db, 1200, seed=11)
    for q in ("gate", "东门", "a_b", "Ro"):
        for filt in ({"status": "online"}, {"device_id": DEV_B}, {"status": "offline", "device_id": DEV_A}):
            want = expected(rows, q, **filt)
            ids, total = await search_all(db, q, size=7, **filt)
            assert set(ids) == want and total == len(want), (q, filt)
            assert ids == sorted(ids)  # default sort channel_id, stable across pages
        ids, total = await search_all(db, q, size=13, sort="-name")
        assert set(ids) == expected(rows, q) and total == len(ids)
    items, total = await db.repo.list_channels(q="gate", page=10_000, size=20)
    assert items == [] and total == len(expected(rows, "gate"))


async def test_writer_upserts_renames_and_deletes_keep_the_index(db: Database) -> None:
    rows = await load(db, 300, seed=3)
    # a re-sync with the same names (DO UPDATE fires the UPDATE trigger, names unchanged): nothing doubles
    db.writer.upsert_channels(DEV_A, [item(i, rows[cid(i)]["name"]) for i in range(300) if i % 3])
    await db.writer.flush()
    assert (await search_all(db, "gate"))[1] == len(expected(rows, "gate"))

    # renames through the writer's upsert (ON CONFLICT DO UPDATE)
    renamed = {i: f"北门广场 Renamed {i}" for i in range(1, 300, 3)}
    db.writer.upsert_channels(DEV_A, [item(i, n) for i, n in renamed.items()])
    await db.writer.flush()
    for i, n in renamed.items():
        rows[cid(i)]["name"] = n
    assert set((await search_all(db, "北门广场"))[0]) == {cid(i) for i in renamed}
    assert set((await search_all(db, "renamed"))[0]) == {cid(i) for i in renamed}
    for q in ("gate", "东门", "camera"):
        assert set((await search_all(db, q))[0]) == expected(rows, q), q

    # a rename through the repository, then device and channel deletes
    got = await db.repo.update_channel(cid(1), {"name": "Quay Ω side"}, device_id=DEV_A)
    assert got is not None and got["name"] == "Quay Ω side"
    rows[cid(1)]["name"] = "Quay Ω side"
    assert (await search_all(db, "QUAY Ω"))[0] == [cid(1)]
    assert cid(1) not in (await search_all(db, "北门广场"))[0]
    assert await db.repo.delete_device(DEV_B)
    rows = {k: v for k, v in rows.items() if v["device_id"] != DEV_B}
    for q in ("gate", "东门", "renamed", "quay", "a_b"):
        assert set((await search_all(db, q))[0]) == expected(rows, q), q


async def test_same_rows_as_like_with_non_ascii_case(db: Database) -> None:
    """LIKE folds ASCII only on SQLite (the index must not fold É/é); PG ILIKE folds per the database's ctype.
    Either way the indexed search returns what the plain scan returns."""
    names = ["ÉCOLE Nord", "école sud", "Straße 1", "STRASSE 2", "ΩMEGA", "ωmega", "Kelvin \u212a gate", "k gate"]
    db.writer.upsert_device({"device_id": DEV_A, "name": "NVR", "status": "online"})
    db.writer.upsert_channels(DEV_A, [item(i, n) for i, n in enumerate(names)])
    await db.writer.flush()
    op = "ILIKE" if db.dialect == "postgresql" else "LIKE"
    for q in ("École", "éco", "ÉCO", "straße", "STRASSE", "ωme", "ΩME", "\u212a gate", "k gate", "K GATE"):
        async with db.engine.connect() as conn:
            pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            scan = {r[0] for r in await conn.execute(
                text(f"SELECT channel_id FROM channels WHERE name {op} :p ESCAPE '\\'"), {"p": pattern})}
        assert set((await search_all(db, q))[0]) == scan, q


async def test_index_is_used(db: Database) -> None:
    """The query plans really read the trigram index (not a scan with the right answer)."""
    await load(db, 200)
    async with db.engine.connect() as conn:
        if db.dialect == "sqlite":
            plan = [r[-1] for r in await conn.execute(text(
                "EXPLAIN QUERY PLAN SELECT rowid FROM channels_fts WHERE channels_fts MATCH '\"gate\"'"))]
            assert any("VIRTUAL TABLE" in p for p in plan), plan
        else:
            await conn.execute(text("SET enable_seqscan = off"))
            plan = [r[0] for r in await conn.execute(text(
                "EXPLAIN SELECT id FROM channels WHERE name ILIKE '%gate%'"))]
            assert any("ix_channels_name_trgm" in p for p in plan), plan


def _schema_diff(conn: Connection) -> list[Any]:
    ctx = MigrationContext.configure(conn, opts={"compare_type": True, "include_name": include_name})
    return list(compare_metadata(ctx, Base.metadata))


async def test_migration_matches_models_and_downgrades(db: Database) -> None:
    rows = await load(db, 150)
    async with db.engine.connect() as conn:
        assert await conn.run_sync(_schema_diff) == []
        assert (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar() == "0002"

    def migrate(conn: Connection, target: str, down: bool) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(cfg, target)

    async with db.engine.connect() as conn:
        await conn.run_sync(migrate, "0001", True)
        await conn.commit()
    async with db.engine.connect() as conn:
        assert await conn.run_sync(_schema_diff) == []
        if db.dialect == "sqlite":
            left = (await conn.execute(text(
                "SELECT count(*) FROM sqlite_master WHERE name LIKE 'channels_fts%'"))).scalar()
        else:
            left = (await conn.execute(text(
                "SELECT count(*) FROM pg_indexes WHERE indexname LIKE '%_name_trgm'"))).scalar()
        assert left == 0
    db.repo._channels_fts = None  # the repository learns the table is gone (as after a restart)
    assert set((await search_all(db, "gate"))[0]) == expected(rows, "gate")  # LIKE fallback

    db.writer.upsert_channels(DEV_A, [item(i, "Added Later Gate") for i in range(1000, 1010)])  # while 0001
    await db.writer.flush()
    for i in range(1000, 1010):
        rows[cid(i)] = {"name": "Added Later Gate", "device_id": DEV_A, "status": "online"}
    async with db.engine.connect() as conn:
        await conn.run_sync(migrate, "head", False)
        await conn.commit()
    db.repo._channels_fts = None
    for q in ("gate", "added later", "东门"):
        assert set((await search_all(db, q))[0]) == expected(rows, q), q  # existing rows indexed on upgrade
