"""Group commit into a SQLite file: many concurrent `write()` calls become one transaction, run in
one dedicated thread; each call returns once its row is committed (durable against kill -9; against
power loss too with `fsync`). The blob pack uses it; the file is opened on first use."""

from __future__ import annotations

import asyncio
import sqlite3
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any


class WriterError(Exception):
    """The rows could not be committed (file locked past the busy timeout, disk full, ...)."""


class SqliteWriter:
    def __init__(self, path: Path, schema: str, *, fsync: bool = False, busy_timeout: float = 5.0,
                 max_batch: int = 512):
        self.path = path
        self.schema = schema
        self.fsync = fsync
        self.busy_timeout = busy_timeout
        self.max_batch = max_batch
        self.commits = 0
        self._pending: deque[tuple[str, tuple[Any, ...], asyncio.Future[None]]] = deque()
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._closing = False

    async def write(self, sql: str, params: tuple[Any, ...]) -> None:
        """Run `sql` with `params` in the next group transaction; returns once it committed."""
        if self._closing:
            raise WriterError(f"{self.path}: closed")
        if self._task is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"sqlite-{self.path.name}")
            self._wake = asyncio.Event()
            self._task = asyncio.create_task(self._run(), name=f"group-commit-{self.path.name}")
        assert self._wake is not None
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((sql, params, fut))
        self._wake.set()
        await fut

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={'FULL' if self.fsync else 'NORMAL'}")
        conn.execute(self.schema)
        return conn

    def _commit(self, rows: list[tuple[str, tuple[Any, ...]]]) -> None:
        if self._conn is None:
            self._conn = self._open()
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            for sql, params in rows:
                conn.execute(sql, params)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    async def _run(self) -> None:
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        while True:
            if not self._pending:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = [self._pending.popleft() for _ in range(min(len(self._pending), self.max_batch))]
            try:
                await loop.run_in_executor(self._executor, self._commit, [(s, p) for s, p, _ in batch])
            except (sqlite3.Error, OSError) as e:
                for _, _, fut in batch:
                    if not fut.done():
                        fut.set_exception(WriterError(f"{self.path}: {e}"))
                continue
            self.commits += 1
            for _, _, fut in batch:
                if not fut.done():
                    fut.set_result(None)

    async def close(self) -> None:
        """Finish what is queued, then close the file."""
        if self._task is None or self._wake is None:
            return
        self._closing = True
        self._wake.set()
        await self._task
        self._task, self._closing = None, False
        if self._executor is not None:
            if self._conn is not None:
                await asyncio.get_running_loop().run_in_executor(self._executor, self._conn.close)
                self._conn = None
            self._executor.shutdown(wait=True)
            self._executor = None
