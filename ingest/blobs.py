"""The content-addressed blob store (claim check): raw originals and attachments are written here,
named by their sha256, before anything is published, so bus records stay small and the original is
always kept. A directory by default; the same interface can front S3 later."""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from pathlib import Path


class BlobStoreError(Exception):
    """The blob store could not take or give content now (disk full, permissions, missing)."""


class BlobStore:
    def __init__(self, root: Path, *, fsync: bool = False):
        self.root = root
        self.fsync = fsync

    def path_of(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256[2:4] / sha256

    async def put(self, data: bytes) -> str:
        """Store `data`; returns its sha256. Storing the same content twice is a no-op."""
        sha = hashlib.sha256(data).hexdigest()
        if len(data) > 256 * 1024:
            await asyncio.to_thread(self._write, sha, data)
        else:  # small writes are cheaper than a thread hop
            self._write(sha, data)
        return sha

    def _write(self, sha: str, data: bytes) -> None:
        target = self.path_of(sha)
        if target.exists():
            return
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
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
        except OSError as e:
            raise BlobStoreError(f"cannot write blob {sha[:12]}: {e.strerror or e}") from e

    async def get(self, sha256: str) -> bytes:
        try:
            return await asyncio.to_thread(self.path_of(sha256).read_bytes)
        except OSError as e:
            raise BlobStoreError(f"cannot read blob {sha256[:12]}: {e.strerror or e}") from e

    def exists(self, sha256: str) -> bool:
        return self.path_of(sha256).is_file()

    def ping(self) -> None:
        """Raise BlobStoreError unless the blob directory exists (made if missing) and is writable."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise BlobStoreError(f"blob directory {self.root} unusable: {e.strerror}") from e
