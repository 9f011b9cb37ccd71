"""Group commit into a SQLite file: many concurrent `write()` calls become one transaction, run in
one dedicated thread; each call returns once its row is committed. The local bus and the blob pack use
it; the file is opened on first use.

Durability: the file is in WAL mode. With `fsync` (the default) it runs `synchronous=FULL`, so SQLite
fsyncs the WAL at every COMMIT before COMMIT returns: a write is confirmed only once it is on disk
(survives power loss and a kernel crash). That is one fsync per transaction, and a transaction carries
every write that queued while the previous one was being flushed, so one flush covers the whole group
and the flush rate, not the message rate, is what the disk sees. Without `fsync` (`synchronous=NORMAL`)
a commit survives kill -9 of the process but a power loss may take the last ones.

When a transaction fails, every write waiting at that moment fails with it: the cause (the file
locked by another process past the busy timeout, a full disk) applies to all of them, and failing
them at once beats making each batch wait out the timeout in turn."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def open_sqlite(path: Path, schema: str, *, fsync: bool, busy_timeout: float) -> sqlite3.Connection:
    """A connection in autocommit mode (we say BEGIN ourselves), WAL, `synchronous=FULL` with `fsync`
    (else NORMAL), the schema made if missing. Several processes opening a new file at once get some
    "locked" answers without SQLite's busy handler (the switch to WAL, WAL recovery): those are retried
    within `busy_timeout`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + busy_timeout
    pause = 0.005
    while True:
        conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={'FULL' if fsync else 'NORMAL'}")
            conn.executescript(schema)
            return conn
        except sqlite3.OperationalError as e:
            conn.close()
            if not _contended(e) or time.monotonic() + pause > deadline:
                raise
        except BaseException:
            conn.close()
            raise
        time.sleep(pause)
        pause = min(pause * 2, 0.2)


def _contended(e: sqlite3.OperationalError) -> bool:
    return "locked" in str(e) or "busy" in str(e)


@contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE (take the write lock now, waiting up to the busy timeout) ... COMMIT, or ROLLBACK."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


class WriterError(Exception):
    """The rows could not be committed (file locked past the busy timeout, disk full, ...)."""


class SqliteWriter:
    def __init__(self, path: Path, schema: str, *, fsync: bool = True, busy_timeout: float = 5.0,
                 max_batch: int = 512, on_commit: Callable[[], None] | None = None):
        self.path = path
        self.schema = schema
        self.fsync = fsync
        self.busy_timeout = busy_timeout
        self.max_batch = max_batch
        self.on_commit = on_commit
        self.commits = 0
        """Transactions committed so far (one per group of writes)."""
        self._pending: deque[tuple[str, tuple[Any, ...], asyncio.Future[None]]] = deque()
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._closing = False

    def _start(self) -> None:
        if self._task is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"sqlite-{self.path.name}")
            self._wake = asyncio.Event()
            self._task = asyncio.create_task(self._run(), name=f"group-commit-{self.path.name}")

    async def write(self, sql: str, params: tuple[Any, ...]) -> None:
        """Run `sql` with `params` in the next group transaction; returns once it committed."""
        if self._closing:
            raise WriterError(f"{self.path}: closed")
        self._start()
        assert self._wake is not None
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((sql, params, fut))
        self._wake.set()
        await fut

    async def query(self, sql: str) -> list[tuple[Any, ...]]:
        """Run a read (`PRAGMA synchronous`, a count) on the writer's own connection, in its thread,
        between two group commits: for inspection and tests."""
        if self._closing:
            raise WriterError(f"{self.path}: closed")
        self._start()

        def run() -> list[tuple[Any, ...]]:
            return list(self._open().execute(sql).fetchall())

        return await asyncio.get_running_loop().run_in_executor(self._executor, run)

    def _open(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = open_sqlite(self.path, self.schema, fsync=self.fsync, busy_timeout=self.busy_timeout)
            self._conn.execute("PRAGMA busy_timeout=0")  # _commit waits for the write lock itself
        return self._conn

    def _commit(self, rows: list[tuple[str, tuple[Any, ...]]]) -> None:
        """One transaction; while another connection (another process's writer) holds the write lock it
        is retried up to the busy timeout. The waiting is ours, not SQLite's busy handler's: that one
        sleeps 1, 2, 5, 10 ms … between tries, while a group commit holds the lock for about one fsync
        (~0.3 ms), so ingest processes sharing the file lost milliseconds per commit to it. Here the
        pauses start at 0.1 ms, stay under 1 ms for the first 50 ms and grow to 20 ms after that (a
        long holder: a pruning, another program). This also covers the contention SQLite answers at once
        (two processes opening a new file and switching it to WAL, WAL recovery)."""
        started = time.monotonic()
        deadline = started + self.busy_timeout
        pause = 0.0001
        while True:
            try:
                with write_transaction(self._open()) as conn:
                    for sql, params in rows:
                        conn.execute(sql, params)
                return
            except sqlite3.OperationalError as e:
                if not _contended(e) or time.monotonic() + pause > deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, 0.001 if time.monotonic() - started < 0.05 else 0.02)

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
                error = WriterError(f"{self.path}: {e}")
                for _, _, fut in [*batch, *self._pending]:
                    if not fut.done():
                        fut.set_exception(error)
                self._pending.clear()
                continue
            self.commits += 1
            for _, _, fut in batch:
                if not fut.done():
                    fut.set_result(None)
            if self.on_commit is not None:
                self.on_commit()

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
