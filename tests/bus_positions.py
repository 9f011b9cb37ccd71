"""Where a topic's log ends and how far a consumer group has committed in it: the facts a test waits on
before it says "nothing more will happen" — never a quiet period.

The local bus keeps both in its SQLite file (`records`, `group_offsets`); Kafka keeps the group's
committed offsets on the broker, and the log's end is read from the records themselves (tansu reports
end offsets that are only a lower bound, see `KafkaBus.read`).
"""

from __future__ import annotations

import asyncio
import time

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from casegate.ingest.bus import Bus
from casegate.ingest.bus.kafka import KafkaBus
from casegate.ingest.bus.local import LocalBus
from casegate.ingest.worker.consumer import Worker

Positions = dict[int, int]
"""Per partition, an offset: the one after the last record (a log's end) or the next one a group reads."""


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


async def log_end(bus: Bus, topic: str) -> Positions:
    """Per partition of `topic`, the offset after the last record on the bus now ({} for no records)."""
    if isinstance(bus, LocalBus):
        [(last,)] = await bus.writer.query(f'SELECT max("offset") FROM records WHERE topic = {_literal(topic)}')
        return {} if last is None else {0: int(last) + 1}
    if isinstance(bus, KafkaBus):
        ends: Positions = {}
        for r in await bus.read(topic, 0, limit=10**9):
            ends[r.partition] = max(ends.get(r.partition, 0), r.offset + 1)
        return ends
    raise TypeError(f"no log end for {type(bus).__name__}")


async def record_count(bus: Bus, topic: str) -> int:
    """How many records `topic` holds on the bus now."""
    if isinstance(bus, LocalBus):
        [(n,)] = await bus.writer.query(f"SELECT count(*) FROM records WHERE topic = {_literal(topic)}")
        return int(n)
    if isinstance(bus, KafkaBus):
        return len(await bus.read(topic, 0, limit=10**9))
    raise TypeError(f"no record count for {type(bus).__name__}")


async def committed(bus: Bus, group: str, topic: str, partitions: list[int]) -> Positions:
    """Per partition of `partitions` of `topic`, the next offset `group` will read (its committed
    position); a partition the group never committed in is missing."""
    if isinstance(bus, LocalBus):
        rows = await bus.writer.query(f'SELECT next_offset FROM group_offsets WHERE "group" = {_literal(group)} '
                                      f"AND topic = {_literal(topic)}")
        return {0: int(rows[0][0])} if rows else {}
    if isinstance(bus, KafkaBus):
        s = bus.settings
        admin = AIOKafkaAdminClient(bootstrap_servers=s.bootstrap_servers, request_timeout_ms=s.request_timeout_ms)
        await admin.start()
        try:
            # tansu cannot answer for "every partition" (null partitions): name them
            offsets = await admin.list_consumer_group_offsets(
                group, partitions=[TopicPartition(topic, p) for p in partitions])
        finally:
            await admin.close()
        return {tp.partition: om.offset for tp, om in offsets.items() if tp.topic == topic and om.offset >= 0}
    raise TypeError(f"no committed positions for {type(bus).__name__}")


def _behind(done: Positions, ends: Positions) -> Positions:
    """The partitions whose committed position has not reached `ends`, with how many records are left."""
    return {p: end - done.get(p, 0) for p, end in ends.items() if done.get(p, 0) < end}


async def wait_committed(bus: Bus, group: str, topic: str, timeout: float = 30) -> None:
    """Return once `group` has committed every record `topic` holds now (so it has handled them);
    fail saying how far behind it is after `timeout` seconds."""
    ends = await log_end(bus, topic)
    deadline = time.monotonic() + timeout
    while behind := _behind(await committed(bus, group, topic, list(ends)), ends):
        if time.monotonic() > deadline:
            raise AssertionError(f"group {group!r} still behind on {topic!r} after {timeout} s "
                                 f"(records left per partition: {behind}; the log ends at {ends})")
        await asyncio.sleep(0.05)


async def run_until_caught_up(worker: Worker, timeout: float = 60) -> None:
    """Drive `worker` (one the test runs itself, not the daemon's task) until its group has committed
    every record its topic holds now."""
    consumer = worker.consumer
    group, topic = consumer.group, consumer.topic  # type: ignore[attr-defined]  # both drivers' consumers
    ends = await log_end(worker.bus, topic)
    deadline = time.monotonic() + timeout
    while behind := _behind(await committed(worker.bus, group, topic, list(ends)), ends):
        if time.monotonic() > deadline:
            raise AssertionError(f"worker still behind on {topic!r} after {timeout} s (records left: {behind})")
        await worker.run_once()
