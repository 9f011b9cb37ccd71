"""The Kafka bus driver (aiokafka): any Kafka-protocol broker (Apache Kafka, Redpanda, tansu).

This module owns how casegate talks to Kafka: the producer settings that make `publish` durable
(`acks="all"`), the consumer settings that make delivery at-least-once (no auto-commit, explicit
per-partition commits), and the translation of aiokafka's failure modes into `BusUnavailable`.
aiokafka hangs in `commit()` and raises a stray CancelledError from `stop()` while the broker is
down, so both are guarded here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError, MessageSizeTooLargeError
from casegate.config.settings import KafkaSettings
from casegate.ingest.bus.base import BusError, BusUnavailable, Record

__all__ = ["KafkaBus", "KafkaConsumer"]

T = TypeVar("T")


def _common(settings: KafkaSettings) -> dict[str, Any]:
    return {
        "bootstrap_servers": settings.bootstrap_servers,
        "client_id": settings.client_id,
        "security_protocol": settings.security_protocol,
    }


def _to_record(msg: Any) -> Record:
    return Record(
        topic=msg.topic,
        partition=msg.partition,
        offset=msg.offset,
        key=msg.key or b"",
        value=msg.value or b"",
        headers=tuple((k, v if v is not None else b"") for k, v in (msg.headers or ())),
        timestamp_ms=msg.timestamp or 0,
    )


async def _guarded(what: str, aw: Awaitable[T], seconds: float) -> T:
    """Await `aw` for at most `seconds`; Kafka errors and the timeout become BusUnavailable."""
    try:
        async with asyncio.timeout(seconds):  # no extra task per call, unlike wait_for on 3.11
            return await aw
    except MessageSizeTooLargeError as e:
        raise BusError(f"kafka {what}: {e}") from e  # retrying cannot help
    except (KafkaError, TimeoutError, OSError) as e:
        raise BusUnavailable(f"kafka {what}: {e!r}") from e


async def _stop_quietly(client: Any, seconds: float) -> None:
    """Stop an aiokafka client, swallowing what it raises during an outage (a stray CancelledError
    from its fetcher, errors, a hang) but not a cancellation aimed at the calling task."""
    try:
        await asyncio.wait_for(client.stop(), seconds)
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
    except Exception:  # the client is being discarded either way
        pass


class KafkaBus:
    """The `kafka` bus: one idempotence-configurable producer; consumers made per group/topic."""

    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings
        self._producer: Any = None
        self._timeout = settings.request_timeout_ms / 1000

    async def start(self) -> None:
        if self._producer is not None:
            return
        s = self.settings
        producer = AIOKafkaProducer(
            **_common(s),
            acks="all",
            enable_idempotence=s.enable_idempotence,
            linger_ms=s.linger_ms,
            max_batch_size=s.max_batch_size,
            max_request_size=s.max_request_size,
            request_timeout_ms=s.request_timeout_ms,
        )
        try:
            await _guarded("producer start", producer.start(), 2 * self._timeout + 1)
        except BaseException:
            await _stop_quietly(producer, self._timeout)
            raise
        self._producer = producer

    async def stop(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await _stop_quietly(producer, 2 * self._timeout + 1)

    def _require_producer(self) -> Any:
        if self._producer is None:
            raise BusUnavailable("kafka bus is not started")
        return self._producer

    async def publish(self, topic: str, key: bytes, value: bytes,
                      headers: Sequence[tuple[str, bytes]] = ()) -> None:
        producer = self._require_producer()
        send = producer.send_and_wait(topic, value=value, key=key, headers=list(headers) or None)
        # aiokafka gives up by itself after request_timeout_ms; the outer timeout is a safety net.
        await _guarded(f"publish to {topic!r}", send, 2 * self._timeout + 1)

    def consumer(self, group: str, topic: str) -> KafkaConsumer:
        return KafkaConsumer(self.settings, group, topic)

    async def ping(self) -> None:
        producer = self._require_producer()
        await _guarded("metadata", producer.client.fetch_all_metadata(), self._timeout)

    async def read(self, topic: str, from_offset: int = 0, limit: int = 1000) -> list[Record]:
        """Records of `topic` for inspection, without a group: every partition from `from_offset` up
        to its end offset at the time of the call, ordered by partition then offset. At most `limit`
        records; when there are more, which partitions' records are cut is unspecified."""
        producer = self._require_producer()
        reader = AIOKafkaConsumer(**_common(self.settings), group_id=None, enable_auto_commit=False,
                                  auto_offset_reset="earliest")
        out: list[Record] = []
        loop = asyncio.get_running_loop()
        try:
            await _guarded("reader start", reader.start(), 2 * self._timeout + 1)
            # Metadata of all topics: asking for this one by name would auto-create it.
            cluster = await _guarded("metadata", producer.client.fetch_all_metadata(), self._timeout)
            tps = [TopicPartition(topic, p) for p in sorted(cluster.partitions_for_topic(topic) or ())]
            if not tps:
                return []
            reader.assign(tps)
            ends: dict[Any, int] = await _guarded("end offsets", reader.end_offsets(tps), self._timeout)
            for tp in tps:  # never seek past the end: Kafka would answer OFFSET_OUT_OF_RANGE
                reader.seek(tp, min(from_offset, ends[tp]))
            # End offsets are a lower bound only: tansu reports the base offset of the last batch + 1.
            # So caught up = every partition at its end offset AND a fetch that brings nothing more.
            stalled_since = loop.time()
            while len(out) < limit:
                at_end = all([await reader.position(tp) >= ends[tp] for tp in tps])
                fetch = reader.getmany(*tps, timeout_ms=200 if at_end else 500)
                batch = await _guarded("fetch", fetch, 4 * self._timeout)
                out.extend(_to_record(m) for msgs in batch.values() for m in msgs if m.offset >= from_offset)
                if batch:
                    stalled_since = loop.time()
                elif at_end:
                    break
                elif loop.time() - stalled_since > 4 * self._timeout:
                    raise BusUnavailable(f"kafka read of {topic!r}: no progress towards the end offsets")
        finally:
            await _stop_quietly(reader, self._timeout)
        out.sort(key=lambda r: (r.partition, r.offset))
        return out[:limit]


class KafkaConsumer:
    """A group member reading one topic; commits are explicit and per partition."""

    def __init__(self, settings: KafkaSettings, group: str, topic: str) -> None:
        self.settings = settings
        self.group = group
        self.topic = topic
        self._consumer: Any = None
        self._timeout = settings.request_timeout_ms / 1000

    async def start(self) -> None:
        if self._consumer is not None:
            return
        s = self.settings
        consumer = AIOKafkaConsumer(
            self.topic,
            **_common(s),
            group_id=self.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=s.session_timeout_ms,
            heartbeat_interval_ms=s.heartbeat_interval_ms,
        )
        # start() joins the group: that takes about session_timeout/2 on some brokers.
        join_timeout = (s.session_timeout_ms + s.request_timeout_ms) / 1000 + 5
        try:
            await _guarded("consumer start", consumer.start(), join_timeout)
            await _guarded("consumer group join", _assigned(consumer), join_timeout)
        except BaseException:
            await _stop_quietly(consumer, self._timeout)
            raise
        self._consumer = consumer

    async def stop(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await _stop_quietly(consumer, self._timeout + self.settings.session_timeout_ms / 1000)

    def _require(self) -> Any:
        if self._consumer is None:
            raise BusError("consumer is not started")
        return self._consumer

    async def poll(self, max_records: int, timeout: float) -> list[Record]:
        consumer = self._require()
        fetch = consumer.getmany(timeout_ms=int(timeout * 1000), max_records=max(1, max_records))
        batch = await _guarded("poll", fetch, timeout + self._timeout + 1)
        return [_to_record(m) for tp in sorted(batch, key=lambda t: t.partition) for m in batch[tp]]

    async def commit(self, records: Sequence[Record]) -> None:
        consumer = self._require()
        offsets: dict[Any, int] = {}
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            offsets[tp] = max(offsets.get(tp, 0), r.offset + 1)
        if offsets:
            # commit() hangs forever while the broker is down; the timeout is what ends it.
            await _guarded("commit", consumer.commit(offsets), self._timeout)


async def _assigned(consumer: Any) -> None:
    """Return once the group gave this consumer its partitions, so a first poll that comes back empty
    means "nothing there" and not "not joined yet" (what `casegate dlq list` relies on)."""
    while not consumer.assignment():  # noqa: ASYNC110 - aiokafka offers no event for this
        await asyncio.sleep(0.05)
