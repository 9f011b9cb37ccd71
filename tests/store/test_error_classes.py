"""Which database failures are the message's fault (dead-letter it) and which are the database's
(retry later): checked on real errors from PostgreSQL and SQLite, not on constructed ones."""

from __future__ import annotations

from pathlib import Path

import pytest
from casegate.store.case_service import _refused
from casegate.store.database import Database
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError


async def _error(db: Database, sql: str) -> DBAPIError:
    try:
        async with db.session() as s, s.begin():
            for statement in sql.split(";"):
                await s.execute(text(statement))
    except DBAPIError as e:
        return e
    finally:
        await db.dispose()
    raise AssertionError(f"{sql} did not fail")


@pytest.mark.parametrize("sql", [
    "SELECT 'abc'::int",
    "SELECT 1/0",
    "CREATE TEMP TABLE t (x int PRIMARY KEY); INSERT INTO t VALUES (1); INSERT INTO t VALUES (1)",
    "CREATE TEMP TABLE t (x varchar(1)); INSERT INTO t VALUES ('toolong')",
])
async def test_postgres_data_and_constraint_errors_are_refusals(pg_db_url: str, sql: str) -> None:
    e = await _error(Database(pg_db_url), sql)
    assert _refused(e), repr(e.orig)


async def test_postgres_unavailable_or_unmigrated_is_not_a_refusal(pg_db_url: str) -> None:
    assert not _refused(await _error(Database(pg_db_url), "SELECT * FROM no_such_table"))
    unreachable = Database("postgresql+asyncpg://nobody@127.0.0.1:1/none")
    try:
        async with unreachable.session() as s:
            await s.execute(text("SELECT 1"))
    except (DBAPIError, OSError) as e:
        assert not (isinstance(e, DBAPIError) and _refused(e))
    finally:
        await unreachable.dispose()


async def test_sqlite_constraint_is_a_refusal_and_a_missing_table_is_not(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"
    e = await _error(Database(url), "CREATE TABLE t (x int PRIMARY KEY); INSERT INTO t VALUES (1); "
                                    "INSERT INTO t VALUES (1)")
    assert _refused(e)
    assert not _refused(await _error(Database(url), "SELECT * FROM no_such_table"))
