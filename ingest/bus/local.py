"""The embedded bus driver: a durable append-only log in one SQLite file.

This module owns the `local` driver's file format (tables `records` and `group_offsets`), its reading
thread, and the consumers that read the log for a group; publishes go through a `SqliteWriter`, which
turns many concurrent `publish()` calls into one transaction. A committed SQLite transaction (WAL
mode) survives kill -9; with `fsync = true` (the default: `synchronous=FULL`, one fsync per group
commit) it also survives power loss, so a publish returns only once its record is on disk. Other
processes may publish into or consume from the same file (the supervisor's ingest processes and its
worker do: SQLite's file locks serialise their transactions, each process group-commits its own);
consumers in this process are woken at once by a local commit and otherwise look again every
`poll_interval`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from casegate.config.settings import LocalBusSettings
from casegate.ingest.bus.base import BusError, BusUnavailable, Record
from casegate.ingest.bus.sqlite_writer import SqliteWriter, WriterError, open_sqlite, write_transaction

__all__ = ["LocalBus", "LocalConsumer"]

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    "offset" INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    key BLOB NOT NULL,
    value BLOB NOT NULL,
    headers TEXT NOT NULL DEFAULT '[]',
    timestamp_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS records_topic_offset ON records (topic, "offset");
CREATE TABLE IF NOT EXISTS group_offsets (
    "group" TEXT NOT NULL,
    topic TEXT NOT NULL,
    next_offset INTEGER NOT NULL,
    PRIMARY KEY ("group", topic)
);
"""
_INSERT = 'INSERT INTO records (topic, key, value, headers, timestamp_ms) VALUES (?, ?, ?, ?, ?)'
_SELECT = ('SELECT "offset", topic, key, value, headers, timestamp_ms FROM records '
           'WHERE topic = ? AND "offset" >= ? ORDER BY "offset" LIMIT ?')
_COMMIT_OFFSET = (
    'INSERT INTO group_offsets ("group", topic, next_offset) VALUES (?, ?, ?) '
    'ON CONFLICT ("group", topic) DO UPDATE SET next_offset = max(next_offset, excluded.next_offset)'
)

_PRUNE = (
    'DELETE FROM records WHERE topic = ? AND timestamp_ms < ? AND "offset" < '
    '(SELECT min(next_offset) FROM group_offsets WHERE topic = ?)'
)

_Row = tuple[str, bytes, bytes, str, int]
"""A record to insert: topic, key, value, encoded headers, timestamp."""


def _encode_headers(headers: Sequence[tuple[str, bytes]]) -> str:
    """`json.dumps` of [[name, base64 of the value], …]; written directly when every name is printable
    ASCII without a quote or backslash (json would write it as it is): a third of the time."""
    if all(k.isascii() and k.isprintable() and '"' not in k and "\\" not in k for k, _ in headers):
        return "[" + ", ".join(f'["{k}", "{base64.b64encode(v).decode("ascii")}"]' for k, v in headers) + "]"
    return json.dumps([[k, base64.b64encode(v).decode("ascii")] for k, v in headers])


def _to_record(row: tuple[int, str, bytes, bytes, str, int]) -> Record:
    offset, topic, key, value, headers, ts = row
    decoded = tuple((str(k), base64.b64decode(v)) for k, v in json.loads(headers))
    return Record(topic=topic, partition=0, offset=offset, key=bytes(key), value=bytes(value),
                  headers=decoded, timestamp_ms=ts)


class LocalBus:
    """The `local` bus: publishes are group-committed into `path`; see the module docstring."""

    def __init__(self, path: Path, settings: LocalBusSettings) -> None:
        self.path = Path(path)
        self.settings = settings
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        """The reading connection (consumers, offsets, pruning), in its own thread."""
        self._log = SqliteWriter(self.path, _SCHEMA, fsync=settings.fsync, busy_timeout=settings.busy_timeout,
                                 max_batch=settings.max_batch, on_commit=self._signal_new_data)
        self._new_data = asyncio.Event()
        self._running = False
        self._pruner: asyncio.Task[None] | None = None

    @property
    def writer(self) -> SqliteWriter:
        """The log's group-commit writer (its `commits`, `query`: for inspection)."""
        return self._log

    @property
    def commits(self) -> int:
        """Write transactions committed so far (one per group of publishes)."""
        return self._log.commits

    # -- the database thread -------------------------------------------------------------------
    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(connection)` in the bus's database thread; SQLite errors become BusUnavailable."""
        if self._executor is None or self._conn is None:
            raise BusUnavailable("local bus is not running")
        conn = self._conn
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, conn)
        except sqlite3.Error as e:
            raise BusUnavailable(f"local bus {self.path}: {e}") from e

    def _open(self) -> sqlite3.Connection:
        return open_sqlite(self.path, _SCHEMA, fsync=self.settings.fsync, busy_timeout=self.settings.busy_timeout)

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        if self._running:
            return
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="casegate-localbus")
        try:
            conn = await asyncio.get_running_loop().run_in_executor(executor, self._open)
        except sqlite3.Error as e:
            executor.shutdown(wait=False)
            raise BusUnavailable(f"local bus {self.path}: {e}") from e
        except BaseException:
            executor.shutdown(wait=False)
            raise
        self._executor, self._conn, self._running = executor, conn, True
        self._new_data = asyncio.Event()  # bound to this loop
        if self.settings.retention_hours > 0:
            self._pruner = asyncio.create_task(self._prune_loop(), name="casegate-localbus-pruner")

    async def stop(self) -> None:
        """Write every publish already queued, then close the file."""
        if not self._running:
            return
        self._running = False
        if self._pruner is not None:
            self._pruner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pruner
            self._pruner = None
        try:
            await self._log.close()
        finally:
            executor, conn = self._executor, self._conn
            self._executor = self._conn = None
            if executor is not None and conn is not None:
                await asyncio.get_running_loop().run_in_executor(executor, conn.close)
                executor.shutdown(wait=True)
            self._signal_new_data()  # waiting consumers look again and find the bus closed

    # -- publishing ----------------------------------------------------------------------------
    async def publish(self, topic: str, key: bytes, value: bytes,
                      headers: Sequence[tuple[str, bytes]] = ()) -> None:
        if not self._running:
            raise BusUnavailable("local bus is not running")
        row: _Row = (topic, bytes(key), bytes(value), _encode_headers(headers), int(time.time() * 1000))
        try:
            await self._log.write(_INSERT, row)
        except WriterError as e:
            raise BusUnavailable(f"local bus {e}") from e

    def _signal_new_data(self) -> None:
        self._new_data.set()
        self._new_data = asyncio.Event()

    # -- reading -------------------------------------------------------------------------------
    def consumer(self, group: str, topic: str) -> LocalConsumer:
        return LocalConsumer(self, group, topic)

    async def ping(self) -> None:
        await self._run(lambda c: c.execute("SELECT 1").fetchone())

    async def read(self, topic: str, from_offset: int = 0, limit: int = 1000) -> list[Record]:
        """Up to `limit` records of `topic` with offset >= `from_offset`, in order (for inspection)."""
        rows = await self._run(lambda c: c.execute(_SELECT, (topic, from_offset, limit)).fetchall())
        return [_to_record(r) for r in rows]

    async def prune(self, older_than_ms: int) -> int:
        """Delete records older than `older_than_ms` (epoch ms) that every group reading their topic
        has committed past; a topic no group reads (an unreplayed dead letter) keeps everything.
        Returns how many records went."""

        def delete(conn: sqlite3.Connection) -> int:
            gone = 0
            with write_transaction(conn) as c:
                for (topic,) in c.execute("SELECT DISTINCT topic FROM group_offsets").fetchall():
                    gone += c.execute(_PRUNE, (topic, older_than_ms, topic)).rowcount
            return gone

        return await self._run(delete)

    async def _prune_loop(self) -> None:
        keep_ms = int(self.settings.retention_hours * 3600 * 1000)
        while True:
            with contextlib.suppress(BusUnavailable):  # busy now: the next round will do it
                await self.prune(int(time.time() * 1000) - keep_ms)
            await asyncio.sleep(self.settings.prune_interval)

    async def _committed(self, group: str, topic: str) -> int:
        row = await self._run(lambda c: c.execute(
            'SELECT next_offset FROM group_offsets WHERE "group" = ? AND topic = ?', (group, topic)
        ).fetchone())
        return int(row[0]) if row else 0

    async def _commit_offset(self, group: str, topic: str, next_offset: int) -> None:
        def commit(conn: sqlite3.Connection) -> None:
            with write_transaction(conn) as c:
                c.execute(_COMMIT_OFFSET, (group, topic, next_offset))

        await self._run(commit)


class LocalConsumer:
    """A consumer of one topic for one group on a `LocalBus` (its position lives in the same file)."""

    def __init__(self, bus: LocalBus, group: str, topic: str) -> None:
        self.bus = bus
        self.group = group
        self.topic = topic
        self._position: int | None = None

    async def start(self) -> None:
        self._position = await self.bus._committed(self.group, self.topic)

    async def stop(self) -> None:
        self._position = None

    async def poll(self, max_records: int, timeout: float) -> list[Record]:
        if self._position is None:
            raise BusError("consumer is not started")
        deadline = time.monotonic() + timeout
        while True:
            woken = self.bus._new_data  # taken before reading, so a commit in between is not missed
            records = await self.bus.read(self.topic, self._position, max(1, max_records))
            if records:
                self._position = records[-1].offset + 1
                return records
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(woken.wait(), min(remaining, self.bus.settings.poll_interval))

    async def commit(self, records: Sequence[Record]) -> None:
        offsets = [r.offset for r in records if r.topic == self.topic]
        if offsets:
            await self.bus._commit_offset(self.group, self.topic, max(offsets) + 1)
