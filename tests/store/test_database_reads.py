"""The read path of Database: on SQLite a read does not wait for the write lock that a worker's batch
holds, and it cannot write; the write path still takes the lock."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from casegate.store.access import authenticate
from casegate.store.case_queries import count_cases
from casegate.store.database import Database
from casegate.store.message_trace import find
from casegate.store.migrate import upgrade
from sqlalchemy import Connection, text
from sqlalchemy.exc import OperationalError


@pytest.fixture
async def sqlite_db(tmp_path: Path) -> AsyncIterator[tuple[Database, Path]]:
    """A migrated SQLite store whose connections give up on a lock after 0.1 s."""
    path = tmp_path / "cases.db"
    url = f"sqlite+aiosqlite:///{path}"
    await asyncio.to_thread(upgrade, url)
    database = Database(url, busy_timeout=0.1)
    await database.ping()  # its first connection turns WAL on, as a daemon's does before any batch
    try:
        yield database, path
    finally:
        await database.dispose()


@pytest.fixture
def write_lock(sqlite_db: tuple[Database, Path]) -> Iterator[None]:
    """Another connection holds the write lock (as a worker's batch does) for the test's length."""
    holder = sqlite3.connect(sqlite_db[1], isolation_level=None)
    assert holder.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("UPDATE alembic_version SET version_num = version_num")
    try:
        yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()


@pytest.mark.usefixtures("write_lock")
async def test_reads_proceed_while_a_writer_holds_the_lock(sqlite_db: tuple[Database, Path]) -> None:
    db, _ = sqlite_db
    async with db.reading() as s:
        assert (await s.execute(text("SELECT count(*) FROM \"case\""))).scalar_one() == 0
    assert await db.read(lambda conn: conn.execute(text("SELECT 1")).scalar_one()) == 1
    assert await count_cases(db) == 0
    assert await find(db, "<nobody@example.com>") == []
    assert await authenticate(db, "cg_" + "x" * 43) is None


@pytest.mark.usefixtures("write_lock")
async def test_the_write_path_still_waits_for_the_lock(sqlite_db: tuple[Database, Path]) -> None:
    db, _ = sqlite_db
    with pytest.raises(OperationalError, match="locked"):
        async with db.session() as s:
            await s.execute(text("SELECT 1"))

    def select_one(conn: Connection) -> object:
        return conn.execute(text("SELECT 1")).scalar_one()

    with pytest.raises(OperationalError, match="locked"):
        await db.transaction(select_one)


async def test_the_read_path_refuses_writes(sqlite_db: tuple[Database, Path]) -> None:
    db, _ = sqlite_db
    with pytest.raises(OperationalError, match="readonly"):
        async with db.reading() as s:
            await s.execute(text("UPDATE alembic_version SET version_num = version_num"))


async def test_reads_see_committed_writes(db: Database) -> None:
    """On both databases: what the write path committed, the read path sees."""
    await db.transaction(lambda conn: conn.execute(text("CREATE TABLE probe (n INTEGER)")))
    await db.transaction(lambda conn: conn.execute(text("INSERT INTO probe VALUES (7)")))
    async with db.reading() as s:
        assert (await s.execute(text("SELECT n FROM probe"))).scalar_one() == 7
