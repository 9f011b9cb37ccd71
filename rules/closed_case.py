"""What a message to a closed case does, under the closed-case policy of the routing address (email) or
the channel (the other channels): reopen the case, open a new case whose ParentId is the closed one,
or keep the message on the closed case (with a notice to the sender under `reject`). Automatic mail
never reopens a case."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from casegate.rules.decision import Chain, Decision, miss, span

KEEP = "keep"
"""Put the message on the closed case; the case stays closed."""
REJECT = "reject"
"""As KEEP, and tell the sender the case is closed."""
REOPEN = "reopen"
"""Reopen the case and put the message on it."""
NEW_CASE = "new_case"
"""Open a new case whose ParentId is the closed one."""


@dataclass(frozen=True, slots=True)
class ClosedCase:
    """A message reached a closed case."""

    policy: str
    """reopen, reopen_within_days, new_case or reject (`RoutingAddress` / channel `closed_case_policy`)."""
    within_days: int
    """The policy's `reopen_within_days`."""
    closed_date: datetime | None
    """When the case closed (aware); None when the store has no ClosedDate."""
    automatic: str | None = None
    """The message is automatic mail of this kind (auto-reply, list ...); None when a person wrote it."""


def automatic_mail(f: ClosedCase, now: datetime) -> Decision:
    rule = "closed_case.automatic_mail"
    if f.automatic is None:
        return miss(rule, "written by a person")
    return Decision(rule, KEEP, f"automatic mail ({f.automatic}) never reopens a case")


def reject(f: ClosedCase, now: datetime) -> Decision:
    rule = "closed_case.reject"
    if f.policy != "reject":
        return miss(rule, f"policy {f.policy}")
    return Decision(rule, REJECT, "policy reject")


def reopen(f: ClosedCase, now: datetime) -> Decision:
    rule = "closed_case.reopen"
    if f.policy != "reopen":
        return miss(rule, f"policy {f.policy}")
    return Decision(rule, REOPEN, "policy reopen")


def reopen_within_days(f: ClosedCase, now: datetime) -> Decision:
    """Reopen when the case closed at most `within_days` ago (the boundary included), else a new case."""
    rule = "closed_case.reopen_within_days"
    if f.policy != "reopen_within_days":
        return miss(rule, f"policy {f.policy}")
    if f.closed_date is None:
        return Decision(rule, NEW_CASE, "closing date unknown")
    age, limit = now - f.closed_date, timedelta(days=f.within_days)
    if age <= limit:
        return Decision(rule, REOPEN, f"closed {span(age)} ago, within {span(limit)}")
    return Decision(rule, NEW_CASE, f"closed {span(age)} ago, more than {span(limit)}")


def new_case(f: ClosedCase, now: datetime) -> Decision:
    """The last rule: whatever no rule before reopened or kept opens a new case."""
    return Decision("closed_case.new_case", NEW_CASE, f"policy {f.policy}")


CHAIN: Chain[ClosedCase] = (
    ("closed_case.automatic_mail", automatic_mail),
    ("closed_case.reject", reject),
    ("closed_case.reopen", reopen),
    ("closed_case.reopen_within_days", reopen_within_days),
    ("closed_case.new_case", new_case),
)
