"""The worker: consume a batch → decode → check claimed blobs → case service (one transaction,
deduplicated by the ledger) → commit the database → commit the offset.

A temporary failure (database down) retries the same batch with back-off (ingest/backoff.py) and
commits nothing. A permanent failure is narrowed to the message(s) that cause it, which go to the
dead-letter topic with the error; the rest of the batch goes on. An offset is committed only after
every record of the batch is either in the case store or in the dead-letter topic. A mail whose
hand-off failed after its raw original was stored (ingest/mail/handoff.py) arrives marked so, and is
dead-lettered with its error. A delivery report (a provider's status of an agent's reply) is applied to
the reply it names, after the batch's messages, forward only (ingest.replies.delivery_status).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from casegate.config import WorkerSettings
from casegate.ingest.backoff import Backoff, pause
from casegate.ingest.bus import Bus, BusError, Consumer, Record
from casegate.ingest.bus.blobs import BlobStore
from casegate.ingest.envelope import Entry, Envelope, EnvelopeError, decode
from casegate.ingest.mail.handoff import HANDOFF_ERROR
from casegate.ingest.mail.mime import message_id, message_ids
from casegate.ingest.metrics import WORKER_BATCH_SECONDS, WORKER_DEAD_LETTERED, WORKER_MESSAGES, WORKER_RETRIES
from casegate.ingest.replies.delivery_status import advance_status
from casegate.store.agent_replies import DeliveryUpdate
from casegate.store.case_service import CaseService
from casegate.store.errors import PermanentStoreError, TemporaryStoreError
from casegate.store.inbound import InboundAttachment, InboundMessage, Outcome

log = structlog.get_logger("casegate.worker")


class PermanentMessageError(Exception):
    """This record can never be processed as it is."""


def to_inbound(env: Envelope) -> InboundMessage:
    h = env.headers
    date = h.get("Date")
    return InboundMessage(
        channel=env.channel, external_id=env.external_id, envelope_id=env.id, received_at=env.received_at,
        conversation_key=env.conversation_key, sender_email=env.sender.email, sender_name=env.sender.name,
        sender_phone=env.sender.phone, recipients=env.recipients, subject=env.subject, text=env.text,
        html=env.html, message_id=message_id(h.get("Message-ID")), message_id_header=h.get("Message-ID"),
        in_reply_to=tuple(message_ids(h.get("In-Reply-To"))), references=tuple(message_ids(h.get("References"))),
        thread_index=h.get("Thread-Index"), to_address=h.get("To") or None, cc_address=h.get("Cc") or None,
        headers=env.meta.get("raw_headers"), message_date=datetime.fromisoformat(date) if date else None,
        raw_sha256=env.raw_sha256,
        attachments=tuple(InboundAttachment(a.name, a.content_type, a.size, a.sha256, a.content_id, a.inline)
                          for a in env.attachments),
        auto=env.auto, auto_reason=env.meta.get("auto_reason"),
        bounced_message_ids=tuple(message_ids(env.meta.get("bounced_message_ids"))),
        sender_handle=env.sender.handle, **_entry(env.entry),
    )


def _entry(entry: Entry | None) -> dict[str, Any]:
    """The InboundMessage fields of a message's entry (none for an email)."""
    if entry is None:
        return {}
    return {"source": entry.source, "entry_type": entry.entry_type, "media": entry.media, "details": entry.details,
            "case_fields": entry.case_fields, "action": entry.action}


def _traceable(r: Record) -> InboundMessage:
    """What the ledger can say about a record: its envelope's facts, or (undecodable) its headers'."""
    with contextlib.suppress(Exception):
        return to_inbound(decode(r.value))
    found = dict(r.headers)
    return InboundMessage(
        channel=found.get("channel", b"unknown").decode(errors="replace")[:20],
        external_id=found.get("external-id", b"").decode(errors="replace") or f"{r.topic}:{r.partition}:{r.offset}",
        envelope_id=str(uuid.uuid4()), received_at=datetime.now(UTC),
        conversation_key=(r.key or b"").decode(errors="replace"), sender_email=None)


@dataclass(frozen=True)
class DeadLetter:
    record: Record
    error: str


class Worker:
    def __init__(self, bus: Bus, consumer: Consumer, service: CaseService, blobs: BlobStore,
                 settings: WorkerSettings, dead_letter_topic: str):
        self.bus = bus
        self.consumer = consumer
        self.service = service
        self.blobs = blobs
        self.settings = settings
        self.dead_letter_topic = dead_letter_topic
        self.processed = 0
        self.dead_lettered = 0
        self._unfinished: list[Record] = []
        """A batch whose processing or offset commit failed: retried as it is, never skipped."""

    async def run(self, stopping: asyncio.Event, *, drain_until: float | None = None) -> None:
        """Consume until `stopping` is set; the batch in hand is finished and committed first. With
        `drain_until` (a loop time), keep going after `stopping` until the topic is empty or that time."""
        backoff = Backoff(self.settings.retry_initial, self.settings.retry_max)
        loop = asyncio.get_running_loop()
        while not stopping.is_set() or (drain_until is not None and loop.time() < drain_until):
            try:
                handled = await self.run_once()
                backoff.reset()
                if stopping.is_set() and handled == 0:
                    return
            except (TemporaryStoreError, BusError) as e:
                delay = backoff.next()
                log.warning("worker.retry", reason=str(e)[:300], retry_in=round(delay, 2))
                WORKER_RETRIES.inc()
                if stopping.is_set():
                    return
                await pause(delay, stopping)

    async def run_once(self) -> int:
        """One poll, process and commit; returns how many records it handled. A batch that failed
        (temporary error) is taken again as it is: the consumer has already moved past it."""
        records = self._unfinished or await self._poll()
        self._unfinished = records
        if records:
            await self.process(records)
            await self.consumer.commit(records)
        self._unfinished = []
        return len(records)

    async def _poll(self) -> list[Record]:
        size = self.settings.batch_size
        records = await self.consumer.poll(size, self.settings.poll_timeout)
        if records and len(records) < size and self.settings.linger > 0:
            # a few more milliseconds buy a fuller batch: one transaction instead of many small ones
            await asyncio.sleep(self.settings.linger)
            records += await self.consumer.poll(size - len(records), 0)
        return records

    async def run_until_idle(self, idle_polls: int = 2) -> None:
        """Process until the bus has nothing more (for tests and `dlq replay`)."""
        quiet = 0
        while quiet < idle_polls:
            quiet = quiet + 1 if await self.run_once() == 0 else 0

    async def process(self, records: Sequence[Record]) -> list[Outcome]:
        """Put the records in the case store or the dead-letter topic; commits no offset."""
        started = time.perf_counter()
        good: list[tuple[Record, InboundMessage]] = []
        reports: list[tuple[Record, DeliveryUpdate]] = []
        dead: list[DeadLetter] = []
        for r in records:
            try:
                item = self._prepare(r)
                if isinstance(item, DeliveryUpdate):
                    reports.append((r, item))
                else:
                    good.append((r, item))
            except (EnvelopeError, PermanentMessageError) as e:
                dead.append(DeadLetter(r, str(e)))
            except Exception as e:  # unforeseen: this record goes aside, the line goes on
                dead.append(DeadLetter(r, f"cannot read record: {type(e).__name__}: {e}"))
        outcomes = await self._record(good, dead)
        await self._apply_reports(reports, dead)
        for d in dead:
            await self._dead_letter(d)
        self.processed += len(records)
        if records:
            seconds = time.perf_counter() - started
            WORKER_BATCH_SECONDS.observe(seconds)
            log.debug("worker.batch", records=len(records), dead=len(dead), ms=round(seconds * 1000, 1))
        return outcomes

    def _prepare(self, r: Record) -> InboundMessage | DeliveryUpdate:
        env = decode(r.value)
        if env.delivery is not None:
            d = env.delivery
            return DeliveryUpdate(d.source, d.message_id, d.status, d.error_code, d.error)
        missing = [s for s in [env.raw_sha256, *(a.sha256 for a in env.attachments)] if s and not self.blobs.exists(s)]
        if missing:
            raise PermanentMessageError(f"claimed blob(s) missing from the blob store: {', '.join(missing)}")
        if HANDOFF_ERROR in env.meta:  # accepted, but the hand-off failed after storing the raw original
            raise PermanentMessageError(f"mail hand-off failed: {env.meta[HANDOFF_ERROR]} (the raw original is "
                                        "kept: `casegate dlq replay` hands it off again)")
        try:
            return to_inbound(env)
        except ValueError as e:
            raise PermanentMessageError(f"envelope field unusable: {e}") from e

    async def _record(self, good: list[tuple[Record, InboundMessage]], dead: list[DeadLetter]) -> list[Outcome]:
        if not good:
            return []
        try:
            outcomes = await self.service.record_messages([m for _, m in good])
            pairs = list(zip(good, outcomes, strict=True))
        except TemporaryStoreError:
            raise
        except Exception as e:  # permanent or unforeseen: narrow it down to the message(s) causing it
            log.warning("worker.batch_refused", records=len(good), error=str(e)[:300])
            pairs = []
            for item in good:
                try:
                    (o,) = await self.service.record_messages([item[1]])
                    pairs.append((item, o))
                except TemporaryStoreError:
                    raise
                except Exception as one:
                    kind = "case store refused the message" if isinstance(one, PermanentStoreError) else "failed"
                    dead.append(DeadLetter(item[0], f"{kind}: {type(one).__name__}: {one}"))
        for (r, _), o in pairs:
            WORKER_MESSAGES.labels(o.channel, o.outcome).inc()
            log.info("worker.message", channel=o.channel, external_id=o.external_id, outcome=o.outcome,
                     case_number=o.case_number, rule=o.rule, partition=r.partition, offset=r.offset)
        return [o for _, o in pairs]

    async def _apply_reports(self, reports: list[tuple[Record, DeliveryUpdate]], dead: list[DeadLetter]) -> None:
        """Delivery statuses onto the replies they name, in one transaction; one that the store refuses
        (or that fails unforeseen) is narrowed down and dead-lettered, as messages are."""
        if not reports:
            return
        try:
            await self.service.apply_delivery_statuses([u for _, u in reports], advance_status)
            applied = reports
        except TemporaryStoreError:
            raise
        except Exception as e:
            log.warning("worker.reports_refused", records=len(reports), error=str(e)[:300])
            applied = []
            for r, u in reports:
                try:
                    await self.service.apply_delivery_statuses([u], advance_status)
                    applied.append((r, u))
                except TemporaryStoreError:
                    raise
                except Exception as one:
                    dead.append(DeadLetter(r, f"delivery status not applied: {type(one).__name__}: {one}"))
        for r, u in applied:
            log.info("worker.delivery_status", source=u.source, external_id=u.message_id, status=u.status,
                     partition=r.partition, offset=r.offset)

    async def _dead_letter(self, d: DeadLetter) -> None:
        r = d.record
        headers = [*r.headers, ("error", d.error.encode()[:4000]), ("source-topic", r.topic.encode()),
                   ("source-partition", str(r.partition).encode()), ("source-offset", str(r.offset).encode()),
                   ("failed-at", datetime.now(UTC).isoformat().encode())]
        await self.bus.publish(self.dead_letter_topic, r.key, r.value, headers=headers)
        self.dead_lettered += 1
        WORKER_DEAD_LETTERED.inc()
        log.error("worker.dead_lettered", topic=r.topic, partition=r.partition, offset=r.offset,
                  error=d.error[:500])
        try:  # for the message trace; the dead-letter topic itself is what keeps the message
            await self.service.record_dead_letter(_traceable(r), d.error)
        except Exception as e:
            log.warning("worker.dead_letter_not_traced", offset=r.offset, error=f"{type(e).__name__}: {e}")
