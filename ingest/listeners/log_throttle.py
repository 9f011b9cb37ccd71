"""Log lines that an attacker or a failing resource could repeat thousands of times a second (accept()
failing for want of descriptors, connections refused over a cap, clients timing out): the first
occurrence per key is logged at once, the rest of its interval only counted, and one line at the end of
the interval says how many were suppressed. The log stays readable and bounded; the figures that matter
are Prometheus counters anyway."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

DEFAULT_INTERVAL = 10.0
"""Seconds between two lines about the same key."""


@dataclass
class _Window:
    logged_at: float
    suppressed: int = 0
    fields: dict[str, Any] = field(default_factory=dict)
    flush: asyncio.TimerHandle | None = None


class LogThrottle:
    """At most one warning `event` per key per `interval`, plus one line with `suppressed=N` when more
    came in that interval. Call `hit` from the event loop; `close` writes what is still counted."""

    def __init__(self, logger: Any, event: str, interval: float = DEFAULT_INTERVAL):
        self.logger = logger
        self.event = event
        self.interval = interval
        self.occurrences = 0
        """Every hit, logged or not."""
        self.lines = 0
        """Lines written."""
        self._windows: dict[str, _Window] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def hit(self, key: str, **fields: Any) -> None:
        """One occurrence; `fields` go on the line (the latest occurrence's, for a summary line)."""
        self.occurrences += 1
        loop = self._loop = asyncio.get_running_loop()
        now = loop.time()
        window = self._windows.get(key)
        if window is None or (window.suppressed == 0 and now - window.logged_at >= self.interval):
            self._windows[key] = _Window(logged_at=now)
            self._write(suppressed=0, **fields)
            return
        window.suppressed += 1
        window.fields = fields
        if window.flush is None:
            window.flush = loop.call_at(window.logged_at + self.interval, self._flush, key)

    def close(self) -> None:
        for key in list(self._windows):
            self._flush(key)
        self._windows.clear()

    def _flush(self, key: str) -> None:
        window = self._windows.get(key)
        if window is None:
            return
        if window.flush is not None:
            window.flush.cancel()
            window.flush = None
        if window.suppressed:  # a new interval starts with this line: at most one line per interval
            self._write(suppressed=window.suppressed, **window.fields)
            window.suppressed = 0
            window.logged_at = self._loop.time() if self._loop is not None else 0.0

    def _write(self, **fields: Any) -> None:
        self.lines += 1
        self.logger.warning(self.event, interval_s=self.interval, **fields)
