"""Durable by default: the local bus log and the blob store flush to disk before a hand-off is
acknowledged (SQLite synchronous=FULL, group-committed: one flush per group, not per message; large
blob files and their directory entries fsynced), and `fsync = false` still works for throwaway rigs."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from casegate.config import Settings
from casegate.config.settings import LocalBusSettings
from casegate.ingest.bus.blobs import BlobStore
from casegate.ingest.bus.local import LocalBus

from tests.pipeline import mail, settings_for, start_pipeline

FULL, NORMAL = 2, 1
"""What `PRAGMA synchronous` answers."""


def test_the_defaults_flush_to_disk() -> None:
    settings = Settings()
    assert settings.bus.local.fsync is True
    assert settings.blobs.fsync is True


async def test_the_bus_log_and_the_blob_pack_run_synchronous_full_by_default(tmp_path: Path) -> None:
    bus = LocalBus(tmp_path / "bus.db", LocalBusSettings())
    blobs = BlobStore(tmp_path / "blobs")
    await bus.start()
    try:
        await bus.publish("t", b"k", b"v")
        assert await bus.writer.query("PRAGMA synchronous") == [(FULL,)]
        assert await bus.writer.query("PRAGMA journal_mode") == [("wal",)]
        sha = await blobs.put(b"small")
        assert await blobs.pack.query("PRAGMA synchronous") == [(FULL,)]
        assert await blobs.get(sha) == b"small"
    finally:
        await bus.stop()
        await blobs.close()


async def test_one_flush_covers_every_hand_off_waiting_on_it(tmp_path: Path) -> None:
    """600 concurrent publishes and puts: a handful of group commits each (one fsync per commit under
    synchronous=FULL), not one per message."""
    bus = LocalBus(tmp_path / "bus.db", LocalBusSettings())
    blobs = BlobStore(tmp_path / "blobs")
    await bus.start()
    try:
        await asyncio.gather(*(bus.publish("t", b"k", b"%d" % i) for i in range(600)))
        await asyncio.gather(*(blobs.put(b"blob %d" % i) for i in range(600)))
        assert bus.commits <= 10, bus.commits
        assert blobs.pack.commits <= 10, blobs.pack.commits
        assert len(await bus.read("t", limit=1000)) == 600
    finally:
        await bus.stop()
        await blobs.close()


async def test_large_blobs_are_files_fsynced_with_their_directory(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs", pack_max_size=1024)
    try:
        big = os.urandom(4096)
        sha = await blobs.put(big)
        assert blobs.path_of(sha).read_bytes() == big
        assert await blobs.put(big) == sha  # already there: flushed again, not rewritten
        assert not [p for p in blobs.path_of(sha).parent.iterdir() if p.name.startswith(".tmp-")]
        assert await blobs.get(sha) == big
    finally:
        await blobs.close()


async def test_fsync_false_still_works(tmp_path: Path) -> None:
    bus = LocalBus(tmp_path / "bus.db", LocalBusSettings(fsync=False))
    blobs = BlobStore(tmp_path / "blobs", fsync=False, pack_max_size=1024)
    await bus.start()
    try:
        await bus.publish("t", b"k", b"v")
        assert await bus.writer.query("PRAGMA synchronous") == [(NORMAL,)]
        assert [r.value for r in await bus.read("t")] == [b"v"]
        small, big = await blobs.put(b"small"), await blobs.put(b"x" * 4096)
        assert await blobs.pack.query("PRAGMA synchronous") == [(NORMAL,)]
        assert (await blobs.get(small), await blobs.get(big)) == (b"small", b"x" * 4096)
    finally:
        await bus.stop()
        await blobs.close()


async def test_the_daemon_hands_off_durably_by_default_and_without_fsync_when_told(tmp_path: Path) -> None:
    for fsync, expected in ((None, FULL), (False, NORMAL)):
        sections = {} if fsync is None else {"bus": {"local": {"fsync": fsync}}, "blobs": {"fsync": fsync}}
        p = await start_pipeline(settings_for("local-sqlite", tmp_path / f"fsync-{fsync}", **sections))
        try:
            assert isinstance(p.daemon.bus, LocalBus)
            raw, _ = mail(f"fsync {fsync}")
            assert (await p.send(raw))[0] == 250
            assert await p.daemon.bus.writer.query("PRAGMA synchronous") == [(expected,)]
            assert await p.daemon.blobs.pack.query("PRAGMA synchronous") == [(expected,)]
            cases = await p.wait_for(lambda cs: len(cs) == 1)
            assert [c["Subject"] for c in cases] == [f"fsync {fsync}"]
        finally:
            await p.daemon.stop()


async def test_the_sqlite_case_store_commits_to_disk_before_the_bus_offset_moves(tmp_path: Path) -> None:
    """The worker commits a batch's cases, then its bus offset (flushed, above): the cases must be on disk
    first, or a power loss could keep the offset and lose the cases."""
    p = await start_pipeline(settings_for("local-sqlite", tmp_path))
    try:
        assert p.daemon.db is not None
        async with p.daemon.db.engine.connect() as conn:
            level = (await conn.exec_driver_sql("PRAGMA synchronous")).scalar_one()
        assert level == 2  # FULL
    finally:
        await p.daemon.stop()
