"""Shared fixtures: PostgreSQL only (each room keeps its other fixtures in its own conftest).

* `pg_url` (session): URL of a database in a throwaway cluster started for this test session; skips with a
  clear reason when the PostgreSQL binaries are not installed.
* `db_url` (per test, parametrized "sqlite" / "pg"): a fresh, empty database URL as a user writes it; the
  "pg" case carries the `pg` marker and gets its own database so tests never see each other's rows.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pgserver import PgServer, find_bindir


@pytest.fixture(scope="session")
def pg_server_instance() -> Iterator[PgServer]:
    bindir = find_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL binaries not found (install the Debian 'postgresql' package); pg tests skipped")
    server = PgServer(bindir)
    try:
        server.start()
    except Exception as exc:
        server.stop()
        pytest.skip(f"could not start a throwaway PostgreSQL cluster: {exc}")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def pg_url(pg_server_instance: PgServer) -> str:
    """postgresql://postgres@127.0.0.1:PORT/xueliang_test"""
    return pg_server_instance.url(pg_server_instance.dbname)


@pytest.fixture(params=["sqlite", pytest.param("pg", marks=pytest.mark.pg)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/db/xueliang.db"
        return
    server: PgServer = request.getfixturevalue("pg_server_instance")
    name = "t_" + uuid.uuid4().hex[:12]
    tool = [str(server.bindir / "createdb"), "-h", "127.0.0.1", "-p", str(server.port), "-U", "postgres"]
    subprocess.run([*tool, name], check=True, capture_output=True, timeout=30)
    yield server.url(name)
    subprocess.run([str(server.bindir / "dropdb"), "-h", "127.0.0.1", "-p", str(server.port), "-U", "postgres",
                    "--force", name], capture_output=True, timeout=30)
