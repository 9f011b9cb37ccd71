"""Connections to the case store: the async engine for SQLite or PostgreSQL, set up so that
concurrent writers are correct (SQLite: WAL, `BEGIN IMMEDIATE`, a busy timeout; foreign keys on)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

T = TypeVar("T")


class Database:
    """The engines and session factory of one case store.

    `transaction(fn)` is the hot path: `fn` is plain synchronous SQLAlchemy code given a Connection,
    run as ONE unit — on SQLite in a thread with the stdlib driver (one thread hop for the whole
    batch, where aiosqlite would hop once per statement, ~0.3 ms each), on PostgreSQL in asyncpg's
    greenlet bridge. The same code serves both.
    """

    def __init__(self, url: str, *, pool_size: int = 5, busy_timeout: float = 30.0, echo: bool = False):
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {"echo": echo}
        if self.is_sqlite:
            db = make_url(url).database
            if db and db != ":memory:":
                Path(db).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": busy_timeout}
        else:
            kwargs.update(pool_size=pool_size, pool_pre_ping=True)
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        self.sync_engine: Engine | None = None
        if self.is_sqlite:
            _make_sqlite_correct(self.engine.sync_engine)
            self.sync_engine = create_engine(url.replace("+aiosqlite", "+pysqlite", 1), **kwargs)
            _make_sqlite_correct(self.sync_engine)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    async def transaction(self, fn: Callable[[Connection], T]) -> T:
        """Run `fn(connection)` in one transaction: committed if it returns, rolled back if it raises."""
        if self.sync_engine is not None:
            return await asyncio.to_thread(self._sync_transaction, fn)
        async with self.engine.begin() as conn:
            return await conn.run_sync(fn)

    def _sync_transaction(self, fn: Callable[[Connection], T]) -> T:
        assert self.sync_engine is not None
        with self.sync_engine.begin() as conn:
            return fn(conn)

    def session(self) -> AsyncSession:
        return self.sessions()

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self.sync_engine is not None:
            self.sync_engine.dispose()


def as_utc(at: datetime) -> datetime:
    """`at` with its time zone: SQLite hands datetimes back naive, and everything is stored in UTC."""
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def iso_utc(at: datetime | None) -> str | None:
    return as_utc(at).isoformat() if at is not None else None


def _make_sqlite_correct(engine: Engine) -> None:
    """pysqlite's own transaction handling gives lost updates on read-then-write; take the write lock
    at BEGIN instead, so concurrent writers wait (busy timeout) rather than race."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        # FULL: a batch's commit is on disk before the worker commits its bus offset, else a power loss
        # could keep the offset and lose the cases (one flush per batch of up to 500 records)
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA wal_autocheckpoint=8000")  # checkpoint (and fsync) every ~32 MB of WAL, not 4 MB
        cur.execute("PRAGMA cache_size=-65536")  # 64 MB of page cache: the hot index pages stay in memory
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
