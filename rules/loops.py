"""Mail-loop and flood limits: how many mails one sender may send with one subject within a window
before they stop opening cases, and how many automatic mails (acknowledgements, notices) one address
gets within a window.

Two robots answering each other, or a broken script, would otherwise open a case per mail and get an
acknowledgement per case. The store counts (the ledger and the outbox, plus the batch so far); these
rules judge the counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from casegate.config import LoopSettings
from casegate.rules.decision import Decision, miss

SUPPRESS = "suppress"
"""Keep the mail as suppressed (on the ledger with its reason, raw original kept); it opens nothing."""
WITHHOLD = "withhold"
"""Do not send the automatic mail, and say so on the case feed."""


def flood_window(settings: LoopSettings) -> timedelta:
    return timedelta(seconds=settings.window_seconds)


def acknowledgement_window(settings: LoopSettings) -> timedelta:
    return timedelta(minutes=settings.acknowledgement_window_minutes)


@dataclass(frozen=True, slots=True)
class Flood:
    """The mails from one sender with one subject (reply prefixes aside) that the store knows of."""

    arrivals: tuple[datetime, ...]
    """When each arrived, this mail's included."""
    received_at: datetime
    """When this mail arrived."""
    settings: LoopSettings


def flood(f: Flood, now: datetime) -> Decision:
    """More than `max_per_sender_subject` mails within the window that ends when this mail arrived
    (`received_at`, not `now`: a batch worked through late judges each mail as it came). A mail exactly
    one window earlier is outside it."""
    rule = "loops.flood"
    start = f.received_at - flood_window(f.settings)
    count = sum(1 for t in f.arrivals if start < t <= f.received_at)
    limit, within = f.settings.max_per_sender_subject, f"within {f.settings.window_seconds:g} s"
    if count > limit:
        return Decision(rule, SUPPRESS, f"more than {limit} mails from this sender with this subject {within} "
                                        f"({count} so far)")
    return miss(rule, f"{count} of at most {limit} mails from this sender with this subject {within}")


@dataclass(frozen=True, slots=True)
class Acknowledgements:
    """The automatic mails one address got within the acknowledgement window (`acknowledgement_window`
    before `now`: the store counts them so), this batch's included."""

    sent: int
    settings: LoopSettings


def acknowledgement_limit(f: Acknowledgements, now: datetime) -> Decision:
    """At most `acknowledgements_per_address` automatic mails to one address per window."""
    rule = "loops.acknowledgement_limit"
    limit, within = f.settings.acknowledgements_per_address, f"within {f.settings.acknowledgement_window_minutes:g} min"
    if f.sent >= limit:
        return Decision(rule, WITHHOLD, f"more than {limit} automatic mails to this address {within}")
    return miss(rule, f"{f.sent} of at most {limit} automatic mails to this address {within}")
