"""The hand-off every channel makes: store the raw original and attachments in the blob store,
build the envelope, publish it keyed by conversation, return only when the bus has it durably."""

from __future__ import annotations

from dataclasses import dataclass

from ingest.blobs import BlobStore
from ingest.bus import Bus
from ingest.envelope import Envelope, encode


@dataclass(frozen=True)
class Publisher:
    bus: Bus
    blobs: BlobStore
    topic: str

    async def publish(self, envelope: Envelope) -> None:
        """Raises BusUnavailable or BlobStoreError when the hand-off is not durable."""
        await self.bus.publish(self.topic, envelope.conversation_key.encode(), encode(envelope),
                               headers=[("channel", envelope.channel.encode()),
                                        ("external-id", envelope.external_id.encode()[:512])])
