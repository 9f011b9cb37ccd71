"""The hand-off every channel makes: store the raw original and attachments in the blob store,
build the envelope, publish it keyed by conversation, return only when the bus has it durably."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from casegate.ingest.bus import Bus, BusError
from casegate.ingest.bus.blobs import BlobStore, BlobStoreError
from casegate.ingest.envelope import AttachmentRef, Envelope, encode
from casegate.ingest.mail.mime import MailPart
from casegate.ingest.metrics import HANDOFF_FAILURES, PUBLISH_SECONDS, accepted


@dataclass(frozen=True)
class Publisher:
    bus: Bus
    blobs: BlobStore
    topic: str

    async def claim(self, raw: bytes, parts: Sequence[MailPart] = ()) -> tuple[str, tuple[AttachmentRef, ...]]:
        """Store the raw original and each part; returns the raw's sha256 and the attachment references
        for the envelope. Raises BlobStoreError when the blob store cannot take them."""
        try:
            raw_sha = await self.blobs.put(raw)
        except BlobStoreError:
            HANDOFF_FAILURES.labels("blobs").inc()
            raise
        return raw_sha, await self.claim_parts(parts)

    async def claim_parts(self, parts: Sequence[MailPart]) -> tuple[AttachmentRef, ...]:
        """Store each part (the raw original is stored already); their attachment references. Raises
        BlobStoreError when the blob store cannot take them."""
        try:
            refs = []
            for part in parts:
                sha = await self.blobs.put(part.data)
                refs.append(AttachmentRef(name=part.name, content_type=part.content_type, size=len(part.data),
                                          sha256=sha, content_id=part.content_id, inline=part.inline))
        except BlobStoreError:
            HANDOFF_FAILURES.labels("blobs").inc()
            raise
        return tuple(refs)

    async def publish(self, envelope: Envelope) -> None:
        """Returns once the bus has the envelope durably; raises BusError otherwise."""
        started = time.perf_counter()
        try:
            await self.bus.publish(self.topic, envelope.conversation_key.encode(), encode(envelope),
                                   headers=[("channel", envelope.channel.encode()),
                                            ("external-id", envelope.external_id.encode()[:512])])
        except BusError:
            HANDOFF_FAILURES.labels("bus").inc()
            raise
        PUBLISH_SECONDS.observe(time.perf_counter() - started)
        accepted(envelope.channel).inc()
