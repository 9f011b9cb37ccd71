"""Flood and acknowledgement limits: more than `max_per_sender_subject` mails within the window that ends
at this mail's arrival (a mail exactly one window earlier is outside it) is a flood; an address that got
`acknowledgements_per_address` automatic mails gets no more. Plain values in, decision out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from casegate.config import LoopSettings
from casegate.rules.decision import Decision
from casegate.rules.loops import (
    SUPPRESS,
    WITHHOLD,
    Acknowledgements,
    Flood,
    acknowledgement_limit,
    acknowledgement_window,
    flood,
    flood_window,
)

AT = datetime(2026, 11, 27, 18, 0, tzinfo=UTC)
SETTINGS = LoopSettings(max_per_sender_subject=3, window_seconds=60, acknowledgements_per_address=2,
                        acknowledgement_window_minutes=30)
S = timedelta(seconds=1)


def arrivals(*seconds_before: float) -> Flood:
    """Mails that arrived so many seconds before this one, which arrives at AT (and is counted too)."""
    return Flood((*(AT - s * S for s in seconds_before), AT), AT, SETTINGS)


def test_windows() -> None:
    assert flood_window(SETTINGS) == timedelta(seconds=60)
    assert acknowledgement_window(SETTINGS) == timedelta(minutes=30)


@pytest.mark.parametrize(
    ("mails", "decision"),
    [
        (arrivals(), Decision("loops.flood", None, "1 of at most 3 mails from this sender with this subject "
                                                   "within 60 s")),
        (arrivals(10, 20), Decision("loops.flood", None, "3 of at most 3 mails from this sender with this "
                                                         "subject within 60 s")),
        (arrivals(10, 20, 30), Decision("loops.flood", SUPPRESS, "more than 3 mails from this sender with this "
                                                                 "subject within 60 s (4 so far)")),
        # the window's start is outside it, a moment later is inside
        (arrivals(10, 20, 60), Decision("loops.flood", None, "3 of at most 3 mails from this sender with this "
                                                             "subject within 60 s")),
        (arrivals(10, 20, 59.999999), Decision("loops.flood", SUPPRESS, "more than 3 mails from this sender "
                                                                        "with this subject within 60 s (4 so far)")),
        # two mails at the same instant both count
        (arrivals(0, 0, 0), Decision("loops.flood", SUPPRESS, "more than 3 mails from this sender with this "
                                                              "subject within 60 s (4 so far)")),
    ],
)
def test_flood(mails: Flood, decision: Decision) -> None:
    assert flood(mails, AT + timedelta(hours=5)) == decision  # `now` does not move the window: arrival does


def test_flood_counts_only_mails_up_to_this_ones_arrival() -> None:
    later = Flood((AT + S, AT + 2 * S, AT + 3 * S, AT), AT, SETTINGS)  # a batch out of order
    assert not flood(later, AT).decisive


@pytest.mark.parametrize(
    ("sent", "decision"),
    [
        (0, Decision("loops.acknowledgement_limit", None, "0 of at most 2 automatic mails to this address "
                                                          "within 30 min")),
        (1, Decision("loops.acknowledgement_limit", None, "1 of at most 2 automatic mails to this address "
                                                          "within 30 min")),
        (2, Decision("loops.acknowledgement_limit", WITHHOLD, "more than 2 automatic mails to this address "
                                                              "within 30 min")),
        (7, Decision("loops.acknowledgement_limit", WITHHOLD, "more than 2 automatic mails to this address "
                                                              "within 30 min")),
    ],
)
def test_acknowledgement_limit(sent: int, decision: Decision) -> None:
    assert acknowledgement_limit(Acknowledgements(sent, SETTINGS), AT) == decision


def test_no_acknowledgements_at_all_when_the_limit_is_zero() -> None:
    off = LoopSettings(acknowledgements_per_address=0)
    assert acknowledgement_limit(Acknowledgements(0, off), AT).action == WITHHOLD
