"""The bus interface: what every bus driver offers the channels and the worker.

A bus carries opaque byte records on named topics. `publish` returns only once the record is durable
(that is what lets a channel acknowledge upstream). Consumers belong to a group; a group's position
moves only when `commit` is called with records it has finished, so anything not committed is
delivered again (at-least-once; the worker's ledger makes the effect exactly-once).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Record:
    """One record read from a topic; `partition`/`offset` identify it for commits and logs."""

    topic: str
    partition: int
    offset: int
    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = field(default=())
    timestamp_ms: int = 0


class BusError(Exception):
    """Root of bus failures."""


class BusUnavailable(BusError):
    """The bus could not take or give records now (broker down, log locked). Retry later."""


class Consumer(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def poll(self, max_records: int, timeout: float) -> list[Record]:
        """Up to `max_records` records after the group's position; [] when none came within `timeout`."""
        ...

    async def commit(self, records: Sequence[Record]) -> None:
        """Mark these records (and everything before them in their partitions) as done."""
        ...


class Bus(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def publish(self, topic: str, key: bytes, value: bytes,
                      headers: Sequence[tuple[str, bytes]] = ()) -> None:
        """Write one record; returns only once it is durable. Raises BusUnavailable otherwise."""
        ...

    def consumer(self, group: str, topic: str) -> Consumer:
        """A consumer of `topic` in consumer group `group` (not started)."""
        ...

    async def ping(self) -> None:
        """Raise BusUnavailable unless the bus answers now (used by /readyz)."""
        ...
