"""The IMAP channel's state file (`<data_dir>/imap-state.db`, SQLite): per mailbox the watermark —
UIDVALIDITY and the highest UID whose message the bus has — and the status the running daemon
reports (connected, last error, last success, counters), which `casegate mailboxes status` reads
from another process.

Kept apart from the case store on purpose: an ingest process need not have the case store. The
watermark is what makes fetching exactly-once-in-effect, never the \\Seen flag another client may set.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from casegate.ingest.bus.sqlite_writer import open_sqlite, write_transaction

STATE_FILE = "imap-state.db"

SCHEMA = """
CREATE TABLE IF NOT EXISTS mailbox (
    name TEXT PRIMARY KEY,
    source TEXT NOT NULL DEFAULT '',
    uidvalidity INTEGER,
    last_uid INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'starting',
    connected INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    last_error_at REAL,
    last_success_at REAL,
    fetched INTEGER NOT NULL DEFAULT 0,
    auth_failures INTEGER NOT NULL DEFAULT 0,
    reconnects INTEGER NOT NULL DEFAULT 0,
    pid INTEGER,
    updated_at REAL
);
"""


def state_path(data_path: Path) -> Path:
    return data_path / STATE_FILE


@dataclass(frozen=True)
class MailboxStatus:
    """What one mailbox's watcher last reported. `fetched`, `auth_failures` and `reconnects` count
    over the life of the state file; `state` is one of starting, connecting, idle, polling,
    fetching, retrying (bus failing), reconnecting, auth_failed, stopped."""

    name: str
    source: str = ""
    """user@host:port/folder: a different source for the same name starts the watermark afresh."""
    uidvalidity: int | None = None
    last_uid: int = 0
    state: str = "starting"
    connected: bool = False
    last_error: str | None = None
    last_error_at: float | None = None
    last_success_at: float | None = None
    """When a scan of the folder last completed with everything in it handed off."""
    fetched: int = 0
    auth_failures: int = 0
    reconnects: int = 0
    pid: int | None = None
    updated_at: float | None = None

    @property
    def healthy(self) -> bool:
        return self.connected and self.state in ("idle", "polling", "fetching")

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "healthy": self.healthy}


_COLUMNS = [f.name for f in fields(MailboxStatus)]


def _row_to_status(row: tuple[Any, ...]) -> MailboxStatus:
    values = dict(zip(_COLUMNS, row, strict=True))
    values["connected"] = bool(values["connected"])
    return MailboxStatus(**values)


def read_statuses(path: Path) -> list[MailboxStatus]:
    """Every mailbox in the state file (none if the file does not exist yet); for other processes."""
    if not path.exists():
        return []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        rows = conn.execute(f"SELECT {', '.join(_COLUMNS)} FROM mailbox ORDER BY name").fetchall()
    except sqlite3.OperationalError:  # created but the table not yet made
        return []
    finally:
        conn.close()
    return [_row_to_status(r) for r in rows]


class ImapState:
    """The state file as the daemon uses it: one connection in one thread, short transactions."""

    def __init__(self, path: Path, *, busy_timeout: float = 5.0) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="imap-state")
        self._conn: sqlite3.Connection | None = None

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = open_sqlite(self.path, SCHEMA, fsync=False, busy_timeout=self.busy_timeout)
        return self._conn

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def load(self, name: str) -> MailboxStatus | None:
        def select() -> MailboxStatus | None:
            row = self._db().execute(f"SELECT {', '.join(_COLUMNS)} FROM mailbox WHERE name = ?",
                                     (name,)).fetchone()
            return _row_to_status(row) if row else None

        result: MailboxStatus | None = await self._run(select)
        return result

    async def save(self, status: MailboxStatus) -> None:
        """Write the whole row (watermark and status) in one transaction."""
        row = replace(status, pid=os.getpid())
        values = tuple(int(v) if isinstance(v, bool) else v for v in asdict(row).values())

        def upsert() -> None:
            with write_transaction(self._db()) as conn:
                conn.execute(f"INSERT OR REPLACE INTO mailbox ({', '.join(_COLUMNS)}) "
                             f"VALUES ({', '.join('?' * len(_COLUMNS))})", values)

        await self._run(upsert)

    async def close(self) -> None:
        def close() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        await self._run(close)
        self._executor.shutdown(wait=True)


__all__ = ["STATE_FILE", "ImapState", "MailboxStatus", "read_statuses", "state_path"]
