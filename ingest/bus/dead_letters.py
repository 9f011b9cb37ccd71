"""The dead-letter topic seen from the command line: list what waits there and replay it onto the
inbound topic. Both read through the consumer group `casegate-dlq-replay`, so a replayed letter is
not replayed again, and a letter that fails again comes back as a new dead letter with its new error.

A mail whose hand-off failed after its raw original was stored (ingest/mail/handoff.py) is replayed by
running that hand-off again from the raw original, with today's settings (`[mail] max_attachments`, the
bus's limits). While the replay cannot find the raw original (a blob directory not mounted where it
runs) the letter is put back as it is, and comes back as a dead letter to be replayed again."""

from __future__ import annotations

import json
from typing import Any

import structlog
from casegate.config import Settings
from casegate.ingest.bus import Consumer, Record, open_bus
from casegate.ingest.bus.blobs import BlobStore
from casegate.ingest.bus.publisher import Publisher
from casegate.ingest.mail.handoff import failed_hand_off_in, hand_off_again

log = structlog.get_logger("casegate.dlq")

REPLAY_GROUP = "casegate-dlq-replay"
_DROP_ON_REPLAY = {"error", "source-topic", "source-partition", "source-offset", "failed-at"}


def describe(r: Record) -> dict[str, Any]:
    h = {k: v.decode(errors="replace") for k, v in r.headers}
    try:
        external_id = json.loads(r.value).get("external_id")
    except (ValueError, AttributeError):
        external_id = h.get("external-id")
    return {"partition": r.partition, "offset": r.offset, "error": h.get("error"), "failed_at": h.get("failed-at"),
            "source": f"{h.get('source-topic')}[{h.get('source-partition')}]@{h.get('source-offset')}",
            "external_id": external_id, "size": len(r.value)}


async def _drain(consumer: Consumer, quiet_polls: int = 1) -> list[Record]:
    out: list[Record] = []
    quiet = 0
    while quiet < quiet_polls:
        batch = await consumer.poll(500, 1.0)
        out.extend(batch)
        quiet = 0 if batch else quiet + 1
    return out


async def list_dead_letters(settings: Settings) -> list[dict[str, Any]]:
    bus = open_bus(settings)
    await bus.start()
    try:
        consumer = bus.consumer(REPLAY_GROUP, settings.bus.dead_letter_topic)
        await consumer.start()
        try:
            return [describe(r) for r in await _drain(consumer)]
        finally:
            await consumer.stop()
    finally:
        await bus.stop()


async def replay_dead_letters(settings: Settings) -> int:
    """Publish every waiting dead letter back onto the inbound topic (a failed mail hand-off: hand it off
    again); returns how many."""
    bus = open_bus(settings)
    await bus.start()
    s = settings.blobs
    blobs = BlobStore(settings.blob_path, fsync=s.fsync, pack_max_size=s.pack_max_size, busy_timeout=s.busy_timeout)
    publisher = Publisher(bus, blobs, settings.bus.topic)
    replayed = 0
    try:
        consumer = bus.consumer(REPLAY_GROUP, settings.bus.dead_letter_topic)
        await consumer.start()
        try:
            for r in await _drain(consumer):
                failed = failed_hand_off_in(r.value)
                if failed is not None and failed.raw_sha256 and blobs.exists(failed.raw_sha256):
                    await hand_off_again(publisher, failed, await blobs.get(failed.raw_sha256),
                                         max_attachments=settings.mail.max_attachments)
                else:
                    if failed is not None:  # not lost: it comes back as a dead letter, to be replayed again
                        log.warning("dlq.raw_original_not_found", raw_sha256=failed.raw_sha256,
                                    blobs=str(settings.blob_path), external_id=failed.external_id)
                    headers = [(k, v) for k, v in r.headers if k not in _DROP_ON_REPLAY]
                    headers.append(("replayed-from", f"{r.topic}[{r.partition}]@{r.offset}".encode()))
                    await bus.publish(settings.bus.topic, r.key, r.value, headers=headers)
                await consumer.commit([r])
                replayed += 1
        finally:
            await consumer.stop()
    finally:
        await blobs.close()
        await bus.stop()
    return replayed
