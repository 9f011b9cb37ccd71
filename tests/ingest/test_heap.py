"""settle_heap: what start-up made is frozen out of the collector's sight, garbage is collected first."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest
from casegate.ingest.app.heap import settle_heap


class _Cycle:
    def __init__(self) -> None:
        self.me = self


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


@pytest.mark.usefixtures("unfrozen")
def test_it_freezes_what_survives_and_collects_the_garbage_first() -> None:
    kept = [_Cycle() for _ in range(100)]
    garbage = _Cycle()
    gone = weakref.ref(garbage)
    del garbage
    assert gc.get_freeze_count() == 0
    frozen = settle_heap()
    assert frozen == gc.get_freeze_count() > len(kept)
    assert gone() is None  # collected, not frozen
