"""Connections to the case store: the async engine for SQLite or PostgreSQL, set up so that
concurrent writers are correct (SQLite: WAL, `BEGIN IMMEDIATE`, a busy timeout; foreign keys on), and
a read path (`reading()`, `read(fn)`) whose transactions never take the write lock."""

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

    `reading()` and `read(fn)` are for work that only reads. On SQLite they run on a second engine whose
    transactions begin deferred (a WAL snapshot: they neither wait for the write lock nor hold it, so
    readers do not queue behind each other or behind a worker's batch) and whose connections refuse
    writes (`query_only`). On PostgreSQL, where reads take no write lock, they use the one engine.
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
            self.read_engine: AsyncEngine = create_async_engine(url, **kwargs)
            _make_sqlite_correct(self.read_engine.sync_engine, reads_only=True)
        else:
            self.read_engine = self.engine
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self.read_sessions = async_sessionmaker(self.read_engine, expire_on_commit=False)

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

    def reading(self) -> AsyncSession:
        """A session for reads only: on SQLite a deferred snapshot that never takes the write lock (a
        write through it fails: `query_only`)."""
        return self.read_sessions()

    async def read(self, fn: Callable[[Connection], T]) -> T:
        """Run `fn(connection)` in one read-only transaction (see `reading`), rolled back after."""
        async with self.read_engine.connect() as conn:
            return await conn.run_sync(fn)

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self.read_engine is not self.engine:
            await self.read_engine.dispose()
        if self.sync_engine is not None:
            self.sync_engine.dispose()


def as_utc(at: datetime) -> datetime:
    """`at` with its time zone: SQLite hands datetimes back naive, and everything is stored in UTC."""
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def iso_utc(at: datetime | None) -> str | None:
    return as_utc(at).isoformat() if at is not None else None


def _make_sqlite_correct(engine: Engine, *, reads_only: bool = False) -> None:
    """pysqlite's own transaction handling gives lost updates on read-then-write; take the write lock
    at BEGIN instead, so concurrent writers wait (busy timeout) rather than race. An engine for
    `reads_only` begins deferred (a snapshot, no lock) and refuses writes."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        # the mode is kept in the file; setting it waits for a writer's lock, so only when it is not WAL yet
        cur.execute("PRAGMA journal_mode")
        if cur.fetchone()[0].lower() != "wal":
            cur.execute("PRAGMA journal_mode=WAL")
        # FULL: a batch's commit is on disk before the worker commits its bus offset, else a power loss
        # could keep the offset and lose the cases (one flush per batch of up to 500 records)
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA wal_autocheckpoint=8000")  # checkpoint (and fsync) every ~32 MB of WAL, not 4 MB
        cur.execute("PRAGMA cache_size=-65536")  # 64 MB of page cache: the hot index pages stay in memory
        if reads_only:
            cur.execute("PRAGMA query_only=ON")
        cur.close()

    begin = "BEGIN" if reads_only else "BEGIN IMMEDIATE"

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql(begin)
