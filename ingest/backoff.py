"""Exponential back-off, written once: the delays between the retries of whatever failed, and the wait
itself, which a stop event ends at once.

Its users: the worker retrying a batch (ingest/worker/consumer.py, `[worker] retry_initial/retry_max`),
an IMAP mailbox reconnecting or retrying its hand-off (ingest/channels/imap.py, the mailbox's
`retry_initial/retry_max`), the outbox sender scheduling a mail's next attempt
(ingest/worker/outbox.py, `[outbound] retry_initial/retry_max`) and the supervisor restarting a
process that died (ingest/app/supervisor.py, 0.5 s to 30 s).

`Backoff(initial, maximum)` gives `initial`, then each delay `factor` (2) times the one before, never
more than `maximum` (the first one included); `reset()` after a success starts again at `initial`.
`upcoming` is the delay the next `next()` returns, for a log line written before the failure is
counted. `delay_after(n)` is the same sequence as a function of the number of failures in a row, for a
caller that keeps that count elsewhere (the outbox keeps it in the database). With `jitter` (0 to 1)
each delay is drawn from [(1 - jitter) * d, d], so processes that failed together do not all retry
together; `random` may be given (tests). Without jitter a Backoff is a pure function of its failures.

Nothing here reads the clock but `pause(seconds, stop)`, the one await: a sleep that ends as soon as
`stop` is set, so a shutdown never waits out a back-off (the outbox's poll and the daemon's release of
held-back web forms wait with it too).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random as _random
from collections.abc import Callable


class Backoff:
    """Delays between retries: `initial`, then `factor` times the one before, never over `maximum`."""

    def __init__(self, initial: float, maximum: float, *, factor: float = 2.0, jitter: float = 0.0,
                 random: Callable[[], float] = _random.random) -> None:
        if not initial > 0 or not maximum > 0:
            raise ValueError(f"back-off delays must be positive (initial {initial}, maximum {maximum})")
        if not factor >= 1:
            raise ValueError(f"back-off factor must be at least 1, not {factor}")
        if not 0 <= jitter <= 1:
            raise ValueError(f"back-off jitter must be between 0 and 1, not {jitter}")
        self.initial = initial
        self.maximum = maximum
        self.factor = factor
        self.jitter = jitter
        self._random = random
        self._steps_to_maximum = (math.ceil(math.log(maximum / initial, factor))
                                  if factor > 1 and initial < maximum else 0)
        """Multiplications after which the delay is `maximum` for good (so a long run never overflows)."""
        self.failures = 0
        """Failures counted by `next()` since the last `reset()`."""
        self.upcoming = self.delay_after(1)
        """The delay the next `next()` returns (jitter already drawn)."""

    def delay_after(self, failures: int) -> float:
        """The delay after `failures` failures in a row (1: `initial`), at most `maximum`, jittered."""
        if failures < 1:
            raise ValueError(f"a delay comes after at least one failure, not {failures}")
        steps = min(failures - 1, self._steps_to_maximum)
        delay = min(self.initial * self.factor ** steps, self.maximum)
        if self.jitter:
            delay *= 1 - self.jitter * self._random()
        return delay

    def next(self) -> float:
        """Count a failure and return the delay to wait before the retry; the one after grows."""
        delay = self.upcoming
        self.failures += 1
        self.upcoming = self.delay_after(self.failures + 1)
        return delay

    def reset(self) -> None:
        """A success: the next failure waits `initial` again."""
        self.failures = 0
        self.upcoming = self.delay_after(1)


async def pause(seconds: float, stop: asyncio.Event) -> bool:
    """Wait `seconds`, or only until `stop` is set (at once if it already is); True if `stop` ended it."""
    if stop.is_set():
        return True
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()


__all__ = ["Backoff", "pause"]
