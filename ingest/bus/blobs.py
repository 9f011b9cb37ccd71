"""The content-addressed blob store (claim check): raw originals and attachments are written here,
named by their sha256, before anything is published, so bus records stay small and the original is
always kept.

Small blobs (up to `pack_max_size`, i.e. nearly every mail) go into one SQLite "pack" in the blob
directory, many puts per transaction (group commit): creating one file per message costs a file
system journal round, about 0.6 ms each on ext4 here — more than all the rest of a hand-off — and
leaves millions of tiny files. Larger blobs are files `<root>/<sha[:2]>/<sha>`, written to a
temporary name and renamed, so a crash never leaves a partial blob under its final name.

With `fsync` (the default) a put returns only once the blob is on disk: the pack commits with
`synchronous=FULL` (one fsync per group commit, see ingest/bus/sqlite_writer.py); a file is fsynced before
its rename and its directory after it (the rename is what makes it findable, and a directory entry is
durable only once the directory is flushed), as is the blob root when a fan-out folder is made.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sqlite3
import tempfile
from pathlib import Path

from casegate.ingest.bus.sqlite_writer import SqliteWriter, WriterError

PACK_SCHEMA = "CREATE TABLE IF NOT EXISTS blobs (sha256 TEXT PRIMARY KEY, data BLOB NOT NULL) WITHOUT ROWID"
_INSERT = "INSERT OR IGNORE INTO blobs (sha256, data) VALUES (?, ?)"


class BlobStoreError(Exception):
    """The blob store could not take or give content now (disk full, locked, missing)."""


class BlobStore:
    def __init__(self, root: Path, *, fsync: bool = True, pack_max_size: int = 256 * 1024,
                 busy_timeout: float = 5.0):
        self.root = root
        self.fsync = fsync
        self.pack_max_size = pack_max_size
        self._pack = SqliteWriter(root / "pack.db", PACK_SCHEMA, fsync=fsync, busy_timeout=busy_timeout)
        self._reader: sqlite3.Connection | None = None
        self._made: set[Path] = set()
        """Fan-out folders known to exist: one mkdir per folder, not one per blob."""

    @property
    def pack(self) -> SqliteWriter:
        """The pack's group-commit writer (its `commits`, `query`: for inspection)."""
        return self._pack

    def path_of(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    async def put(self, data: bytes) -> str:
        """Store `data`; returns its sha256 once it is durable. Storing the same content twice is a no-op."""
        sha = hashlib.sha256(data).hexdigest()
        try:
            if len(data) <= self.pack_max_size:
                await self._pack.write(_INSERT, (sha, data))
            else:
                await asyncio.to_thread(self._write_file, sha, data)
        except WriterError as e:
            raise BlobStoreError(f"cannot write blob {sha[:12]}: {e}") from e
        return sha

    def _write_file(self, sha: str, data: bytes) -> None:
        target = self.path_of(sha)
        try:
            if target.exists():
                if self.fsync:  # an earlier put may have crashed between its rename and its flush
                    _fsync_path(target)
                    _fsync_path(target.parent)
                return
            if target.parent not in self._made:
                self._make_dir(target.parent)
                self._made.add(target.parent)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    if self.fsync:
                        f.flush()
                        os.fsync(f.fileno())
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            if self.fsync:
                _fsync_path(target.parent)
        except OSError as e:
            self._made.discard(target.parent)  # it may have been removed under us
            raise BlobStoreError(f"cannot write blob {sha[:12]}: {e.strerror or e}") from e

    def _make_dir(self, path: Path) -> None:
        """`path` and any missing parents; with fsync, each new entry flushed in its parent directory."""
        if path.is_dir():
            return
        if path.parent != path:
            self._make_dir(path.parent)
        try:
            path.mkdir()
        except FileExistsError:
            if path.is_dir():  # made by another process meanwhile
                return
            raise
        if self.fsync:
            _fsync_path(path.parent)

    def _read_pack(self, sha256: str) -> bytes | None:
        if self._reader is None:
            if not self._pack.path.exists():
                return None
            self._reader = sqlite3.connect(self._pack.path, check_same_thread=False)
        row = self._reader.execute("SELECT data FROM blobs WHERE sha256 = ?", (sha256,)).fetchone()
        return bytes(row[0]) if row else None

    async def get(self, sha256: str) -> bytes:
        try:
            packed = await asyncio.to_thread(self._read_pack, sha256)
            if packed is not None:
                return packed
            return await asyncio.to_thread(self.path_of(sha256).read_bytes)
        except (OSError, sqlite3.Error) as e:
            raise BlobStoreError(f"cannot read blob {sha256[:12]}: {e}") from e

    def exists(self, sha256: str) -> bool:
        try:
            if self._read_pack(sha256) is not None:
                return True
        except sqlite3.Error:
            pass
        return self.path_of(sha256).is_file()

    def ping(self) -> None:
        """Raise BlobStoreError unless the blob directory exists (made if missing) and is usable."""
        try:
            self._make_dir(self.root)
        except OSError as e:
            raise BlobStoreError(f"blob directory {self.root} unusable: {e.strerror}") from e

    async def close(self) -> None:
        await self._pack.close()
        if self._reader is not None:
            self._reader.close()
            self._reader = None


def _fsync_path(path: Path) -> None:
    """Flush a file, or a directory's entries, to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
