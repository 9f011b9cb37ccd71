"""Whether a mail that continues no case opens one: automatic mail (auto-replies, list mail — recognised
by the mail reader) only where its routing address lets it, and no flood (`rules.loops.flood`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from casegate.rules import loops
from casegate.rules.decision import Chain, Decision, miss
from casegate.rules.loops import SUPPRESS

__all__ = ["CHAIN", "OPEN", "SUPPRESS", "NewMail", "automatic_mail", "open_case"]

OPEN = "open"
"""Open a new case for the mail."""


@dataclass(frozen=True, slots=True)
class NewMail:
    """A mail that threads onto no case (a bounce is never one: it goes to the case of the bounced mail)."""

    automatic: str | None
    """Its kind of automatic mail (auto-reply, list ...); None when a person wrote it."""
    automatic_reason: str | None
    """What showed it automatic (`Auto-Submitted: auto-replied`)."""
    automatic_opens_case: bool
    """The routing address lets automatic mail open cases."""
    flood: loops.Flood


def automatic_mail(f: NewMail, now: datetime) -> Decision:
    rule = "opening.automatic_mail"
    if f.automatic is None:
        return miss(rule, "written by a person")
    if f.automatic_opens_case:
        return miss(rule, f"{f.automatic}: the routing address lets automatic mail open cases")
    return Decision(rule, SUPPRESS, f"{f.automatic}: {f.automatic_reason or 'automatic mail'}")


def open_case(f: NewMail, now: datetime) -> Decision:
    """The last rule: a mail nothing held back opens a case."""
    return Decision("opening.open", OPEN, "continues no case")


CHAIN: Chain[NewMail] = (
    ("opening.automatic_mail", automatic_mail),
    ("loops.flood", lambda f, now: loops.flood(f.flood, now)),
    ("opening.open", open_case),
)
