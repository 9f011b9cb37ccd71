"""Never lose a message: acknowledge only after a durable hand-off, exactly-once effect over
redelivery, poison messages to the dead-letter topic (and back with `dlq replay`)."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from casegate.config import Settings
from casegate.ingest.app.daemon import make_worker, open_store
from casegate.ingest.bus import open_bus
from casegate.ingest.bus.blobs import PACK_SCHEMA, BlobStore
from casegate.ingest.bus.dead_letters import list_dead_letters, replay_dead_letters
from casegate.ingest.envelope import Envelope, Sender, encode
from casegate.ingest.worker.consumer import Worker
from casegate.store import message_trace
from casegate.store.database import Database
from casegate.store.models import Case, EmailMessage, ProcessedMessage
from sqlalchemy import func, select

from tests.bus_positions import run_until_caught_up
from tests.ingest.test_metrics import Samples, delta
from tests.pipeline import Pipeline, mail, settings_for, start_pipeline
from tests.services import start_tansu


async def _counts(db: Database) -> tuple[int, int, int]:
    """Cases, EmailMessages, and ledger rows of processed messages (dead-letter trace rows aside)."""
    async with db.session() as s:
        counts = [(await s.execute(select(func.count()).select_from(m))).scalar_one() for m in (Case, EmailMessage)]
        counts.append((await s.execute(select(func.count()).select_from(ProcessedMessage)
                                       .where(ProcessedMessage.Outcome != "dead-lettered"))).scalar_one())
    return counts[0], counts[1], counts[2]


async def test_local_bus_failing_answers_451_and_stores_nothing_then_resend_makes_one_case(tmp_path: Path) -> None:
    p = await start_pipeline(settings_for("local-sqlite", tmp_path, bus={"local": {"busy_timeout": 0.3}}))
    try:
        holder = sqlite3.connect(p.settings.bus_path, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")  # another process holds the log's write lock: the bus cannot write
        raw, _ = mail("during the outage")
        before = await p.metrics()
        code, text = await p.send(raw)
        assert (code, text[:5]) == (451, "4.3.0")
        after = await p.metrics()
        for name, labels in [("casegate_ingest_handoff_failures_total", (("stage", "bus"),)),
                             ("casegate_smtp_refused_total", (("code", "451"),))]:
            assert after[(name, labels)] - before.get((name, labels), 0) == 1, name
        holder.execute("ROLLBACK")
        holder.close()
        assert await p.published() == 0  # nothing reached the bus ...
        await p.wait_idle()
        assert p.daemon.db is not None
        assert await _counts(p.daemon.db) == (0, 0, 0)  # ... nor the store
        assert (await p.send(raw))[0] == 250  # the MTA retries once we recovered
        await p.wait_for(lambda cs: len(cs) == 1)
        await p.wait_idle()
        assert await _counts(p.daemon.db) == (1, 1, 1)
    finally:
        await p.daemon.stop()


async def test_kafka_down_answers_451_and_after_recovery_the_retry_makes_one_case(
        tmp_path: Path, pg_db_url: str) -> None:
    broker = start_tansu()
    settings = settings_for("kafka-postgres", tmp_path, kafka=broker.bootstrap, pg=pg_db_url)
    try:
        p = await start_pipeline(settings)
        try:
            broker.kill()
            raw, _ = mail("while kafka is down")
            code, _ = await p.send(raw)
            assert code == 451
            assert p.daemon.db is not None
            assert await _counts(p.daemon.db) == (0, 0, 0)
        finally:
            await p.daemon.stop()
        broker = start_tansu(port=broker.port)  # a restarted tansu is a new, empty cluster
        p = await start_pipeline(settings)
        try:
            assert (await p.send(raw))[0] == 250
            await p.wait_for(lambda cs: len(cs) == 1)
            await p.wait_idle()
            assert p.daemon.db is not None
            assert await _counts(p.daemon.db) == (1, 1, 1)
        finally:
            await p.daemon.stop()
    finally:
        broker.stop()


async def test_blob_pack_locked_answers_451(deployment_settings: Callable[..., Settings]) -> None:
    p = await start_pipeline(deployment_settings(blobs={"busy_timeout": 0.3}))
    try:
        p.settings.blob_path.mkdir(parents=True, exist_ok=True)
        holder = sqlite3.connect(p.settings.blob_path / "pack.db", isolation_level=None)
        holder.execute(PACK_SCHEMA)
        holder.execute("BEGIN EXCLUSIVE")  # another process holds the pack: no blob can be written
        raw, _ = mail("no blob store")
        assert (await p.send(raw))[0] == 451
        holder.execute("ROLLBACK")
        holder.close()
        assert (await p.send(raw))[0] == 250
        await p.wait_for(lambda cs: len(cs) == 1)
    finally:
        await p.daemon.stop()


async def test_blob_directory_unusable_answers_451(tmp_path: Path) -> None:
    p = await start_pipeline(settings_for("local-sqlite", tmp_path, blobs={"pack_max_size": 0}))
    try:
        blobs = p.settings.blob_path
        shutil.rmtree(blobs, ignore_errors=True)
        blobs.write_text("not a directory")  # the blob store cannot write
        raw, _ = mail("no blob store")
        key = ("casegate_ingest_handoff_failures_total", (("stage", "blobs"),))
        before = (await p.metrics()).get(key, 0)
        assert (await p.send(raw))[0] == 451
        assert (await p.metrics())[key] - before == 1
        blobs.unlink()
        assert (await p.send(raw))[0] == 250
        await p.wait_for(lambda cs: len(cs) == 1)
    finally:
        await p.daemon.stop()


async def test_shutting_down_answers_421(pipeline: Pipeline) -> None:
    assert pipeline.daemon.smtp is not None
    await pipeline.daemon.smtp.drain(1)
    raw, _ = mail("too late")
    assert (await pipeline.send(raw))[0] == 421


async def _worker(settings: Settings, db: Database) -> Worker:
    bus = open_bus(settings)
    await bus.start()
    return await make_worker(settings, db, bus, BlobStore(settings.blob_path))


async def _work_off(settings: Settings, db: Database) -> Worker:
    """A fresh worker (as after a restart) that handles everything waiting, then stops."""
    w = await _worker(settings, db)
    await run_until_caught_up(w)
    await _close(w)
    return w


@asynccontextmanager
async def _ingest_only(settings: Settings) -> AsyncIterator[tuple[Pipeline, Database]]:
    """An ingest-only daemon (no worker: the test drives workers itself) and the case store."""
    ingest = await start_pipeline(settings, role="ingest")
    db = await open_store(settings)
    try:
        yield ingest, db
    finally:
        await db.dispose()
        await ingest.daemon.stop()


async def _close(w: Worker) -> None:
    await w.consumer.stop()
    await w.bus.stop()
    await w.blobs.close()


async def test_redelivery_after_a_crash_between_database_and_offset_commit_is_a_no_op(
        deployment_settings: Callable[..., Settings]) -> None:
    settings = deployment_settings()
    async with _ingest_only(settings) as (ingest, db):
        for i in range(3):
            assert (await ingest.send(mail(f"m{i}", sender=f"c{i}@example.org")[0]))[0] == 250
        first = await _worker(settings, db)
        records: list = []
        for _ in range(100):
            records += await first.consumer.poll(100, 0.2)
            if len(records) == 3:
                break
        assert len(records) == 3
        await first.process(records)  # database committed ...
        await first.process(records)  # ... the same records again: still one effect
        assert await _counts(db) == (3, 3, 3)
        await _close(first)  # ... and the worker dies before committing the offset
        second = await _work_off(settings, db)
        assert second.processed == 3  # redelivered
        assert await _counts(db) == (3, 3, 3)


async def test_poison_messages_go_to_the_dead_letter_topic_and_replay_once_they_can(
        deployment_settings: Callable[..., Settings]) -> None:
    settings = deployment_settings()
    async with _ingest_only(settings) as (ingest, db):
        bus = ingest.daemon.bus
        raw_missing = b"From: late@example.org\r\nSubject: blob not there yet\r\n\r\nbody\r\n"
        missing_sha = hashlib.sha256(raw_missing).hexdigest()
        claim = Envelope(channel="email", external_id="<late@example.org>", conversation_key="late@example.org",
                         sender=Sender(email="late@example.org"), subject="blob not there yet",
                         raw_sha256=missing_sha)
        await bus.publish(settings.bus.topic, b"late@example.org", encode(claim))
        await bus.publish(settings.bus.topic, b"x", b'{"schema": 99, "id": "from-the-future"}')
        assert (await ingest.send(mail("a good one")[0]))[0] == 250

        w = await _work_off(settings, db)
        assert w.dead_lettered == 2
        assert await _counts(db) == (1, 1, 1)  # the good one went through; the line did not stop

        letters = await list_dead_letters(settings)
        errors = sorted(d["error"] for d in letters)
        assert len(letters) == 2
        assert "claimed blob(s) missing" in errors[0] and "unknown envelope schema 99" in errors[1]
        [trace] = await message_trace.find(db, "<late@example.org>")  # "where did this mail go?"
        assert (trace["outcome"], trace["case_number"]) == ("dead-lettered", None)
        assert "claimed blob(s) missing" in trace["reason"] and trace["sender"] == "late@example.org"
        everything = [e async for e in message_trace.export(db)]
        assert sorted(e["outcome"] for e in everything) == ["created", "dead-lettered", "dead-lettered"]
        assert any("unknown envelope schema 99" in (e["reason"] or "") for e in everything)

        restored = BlobStore(settings.blob_path)
        await restored.put(raw_missing)  # the operator restores the blob
        await restored.close()
        assert await replay_dead_letters(settings) == 2
        assert await list_dead_letters(settings) == []
        w = await _work_off(settings, db)
        assert await _counts(db) == (2, 2, 2)
        [trace] = await message_trace.find(db, "late@example.org")
        assert (trace["outcome"], trace["case_number"], trace["rule"]) == ("created", "00001001", "new")
        assert w.dead_lettered == 1  # schema 99 still cannot be read: back in the dead-letter topic
        assert [d["error"] for d in await list_dead_letters(settings)] == [errors[1]]



async def test_a_batch_that_failed_for_a_while_is_processed_after_recovery_not_skipped(tmp_path: Path) -> None:
    p = await start_pipeline(settings_for("local-sqlite", tmp_path, store={"sqlite_busy_timeout": 0.2},
                                          worker={"retry_initial": 0.1, "retry_max": 0.2}))
    try:
        store = sqlite3.connect(p.settings.data_path / "cases.db", isolation_level=None)
        store.execute("BEGIN EXCLUSIVE")  # the case store cannot be written: a temporary failure
        before = await p.metrics()
        for i in range(3):
            assert (await p.send(mail(f"during the store outage {i}")[0]))[0] == 250
        await _until_retried(p, before, 3)  # the worker polled these records, failed, and retried several times
        store.execute("ROLLBACK")
        store.close()
        cases = await p.wait_for(lambda cs: len(cs) == 3, timeout=15)
        assert sorted(c["Subject"] for c in cases) == [f"during the store outage {i}" for i in range(3)]
    finally:
        await p.daemon.stop()


async def _until_retried(p: Pipeline, before: Samples, times: int, timeout: float = 15) -> None:
    """Wait until the worker has retried a batch `times` times since the metrics `before`."""
    end = time.monotonic() + timeout
    while (retries := delta(before, await p.metrics(), "casegate_worker_retries_total")) < times:
        assert time.monotonic() < end, f"the worker retried {retries} times in {timeout} s"
        await asyncio.sleep(0.05)
