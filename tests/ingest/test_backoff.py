"""The back-off helper (ingest/backoff.py): the sequence of delays, reset, the pure `delay_after`, jitter
with an injected random source, and `pause`, which a stop event ends early. No clock is read: delays are
compared as numbers, and the early stop is observed through the event the sleeper waits on."""

from __future__ import annotations

import asyncio
from typing import Literal

import pytest
from casegate.ingest.backoff import Backoff, pause


def delays(backoff: Backoff, n: int) -> list[float]:
    return [backoff.next() for _ in range(n)]


def test_doubles_from_initial_up_to_maximum() -> None:
    """The supervisor's restart delays: 0.5 s doubling to 30 s, then 30 s for good."""
    assert delays(Backoff(0.5, 30.0), 9) == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]


def test_reset_starts_again_at_initial() -> None:
    b = Backoff(1.0, 300.0)
    assert delays(b, 4) == [1.0, 2.0, 4.0, 8.0]
    b.reset()
    assert b.failures == 0
    assert delays(b, 3) == [1.0, 2.0, 4.0]


def test_upcoming_is_what_next_returns() -> None:
    """The IMAP watcher logs `retry_in=upcoming` before it counts the failure with `next()`."""
    b = Backoff(1.0, 10.0, jitter=0.5, random=iter([0.0, 0.2, 0.4, 0.6, 0.8] * 4).__next__)
    for _ in range(8):
        upcoming = b.upcoming
        assert b.next() == upcoming


@pytest.mark.parametrize(("initial", "maximum"), [(0.5, 30.0), (1.0, 300.0), (30.0, 3600.0), (0.05, 0.1)])
def test_delay_after_is_the_sequence_and_the_old_outbox_formula(initial: float, maximum: float) -> None:
    """`delay_after(n)` (the outbox, which keeps the count in its table) is the n-th `next()`, and what
    the outbox computed before: min(initial * 2^(n-1), maximum)."""
    b = Backoff(initial, maximum)
    sequence = delays(Backoff(initial, maximum), 40)
    assert [b.delay_after(n) for n in range(1, 41)] == sequence
    assert sequence == [min(initial * 2 ** (n - 1), maximum) for n in range(1, 41)]


def test_a_long_run_of_failures_stays_at_maximum() -> None:
    """initial * 2^(n-1) overflows a float past n ≈ 1025; the delay must stay the maximum instead."""
    assert Backoff(30.0, 3600.0).delay_after(10**6) == 3600.0
    assert set(delays(Backoff(0.5, 30.0), 3000)[6:]) == {30.0}


def test_maximum_below_initial_caps_the_first_delay_too() -> None:
    assert delays(Backoff(5.0, 2.0), 3) == [2.0, 2.0, 2.0]


def test_other_factors() -> None:
    assert delays(Backoff(1.0, 50.0, factor=3.0), 5) == [1.0, 3.0, 9.0, 27.0, 50.0]
    assert delays(Backoff(2.0, 50.0, factor=1.0), 3) == [2.0, 2.0, 2.0]


def test_jitter_shortens_each_delay_by_up_to_its_share() -> None:
    """jitter 0.5: each delay d becomes d * (1 - 0.5 * random()), so within [d/2, d] and never over maximum."""
    draws = iter([0.0, 1.0, 0.5, 0.25, 0.0, 1.0])
    b = Backoff(2.0, 8.0, jitter=0.5, random=draws.__next__)
    assert delays(b, 5) == [2.0, 4.0 * 0.5, 8.0 * 0.75, 8.0 * 0.875, 8.0]


def test_no_jitter_never_draws() -> None:
    def draw() -> float:
        raise AssertionError("a back-off without jitter drew a random number")

    assert delays(Backoff(1.0, 4.0, random=draw), 4) == [1.0, 2.0, 4.0, 4.0]


@pytest.mark.parametrize("arguments", [
    {"initial": 0.0, "maximum": 1.0},
    {"initial": 1.0, "maximum": -1.0},
    {"initial": 1.0, "maximum": 2.0, "factor": 0.5},
    {"initial": 1.0, "maximum": 2.0, "jitter": 1.5},
    {"initial": 1.0, "maximum": 2.0, "jitter": -0.1},
])
def test_unusable_settings_are_refused(arguments: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="back-off"):
        Backoff(**arguments)


def test_a_delay_needs_a_failure() -> None:
    with pytest.raises(ValueError, match="at least one failure"):
        Backoff(1.0, 2.0).delay_after(0)


class WatchedEvent(asyncio.Event):
    """An event that says when someone has begun waiting on it."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting = asyncio.Event()

    async def wait(self) -> Literal[True]:
        self.waiting.set()
        return await super().wait()


async def test_a_stop_wakes_the_sleeper_at_once() -> None:
    stop = WatchedEvent()
    async with asyncio.timeout(60):  # only so that a broken pause fails instead of sleeping an hour
        sleeper = asyncio.create_task(pause(3600, stop))
        await stop.waiting.wait()
        assert not sleeper.done()
        stop.set()
        assert await sleeper is True


async def test_a_stop_already_set_does_not_wait() -> None:
    stop = WatchedEvent()
    stop.set()
    async with asyncio.timeout(60):
        assert await pause(3600, stop) is True
    assert not stop.waiting.is_set()


async def test_the_time_running_out_is_not_a_stop() -> None:
    stop = asyncio.Event()
    assert await pause(0, stop) is False
    assert not stop.is_set()
