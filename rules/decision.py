"""What every rule returns, and the chain that runs rules in order.

A rule is a small pure function of plain values (its facts) and `now` that returns a `Decision`: the
rule's name, the action it decides, and the reason in words. A rule that does not apply still says
why, as a miss (action None), so that "why did this happen?" — and "why not that?" — have answers.

A chain is a declarative table, `((name, rule), ...)`, run in order: the first decisive rule wins and
the misses before it are kept (GNU Mailman's chains work so). The last rule of a chain always decides.
The store gathers the facts, runs the chain, applies the decision's action and records it:

    verdict = run(closed_case.CHAIN, ClosedCase(...), now)
    if verdict.action == closed_case.REOPEN: ...     # apply it, then record str(verdict) or
                                                      # str(verdict.decision): `reason [rule; missed ...]`

A new kind of decision (escalation, SLA, routing) is a new module the same way: a frozen facts
dataclass, its rules, action names, and one `CHAIN`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar


@dataclass(frozen=True, slots=True)
class Decision:
    rule: str
    """Dotted name, `<module>.<rule>`: closed_case.reopen_within_days, loops.flood."""
    action: str | None
    """What to do (the rule module names its actions); None: the rule does not apply (a miss)."""
    reason: str
    """Why, in words, with the values that decided (`closed 3 days ago, within 14 days`)."""

    @property
    def decisive(self) -> bool:
        return self.action is not None

    def __str__(self) -> str:
        """The form the feed and the message trace record: `reason [rule]`."""
        return f"{self.reason} [{self.rule}]"


def miss(rule: str, reason: str) -> Decision:
    """`rule` does not apply, because `reason`."""
    return Decision(rule, None, reason)


F = TypeVar("F")
Rule = Callable[[F, datetime], Decision]
"""A rule: (facts, now) -> Decision. Pure: no I/O, no clock but `now`."""
Chain = tuple[tuple[str, Rule[F]], ...]
"""Rules by name, in the order they are tried."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a chain decided, and the rules it tried before."""

    decision: Decision
    misses: tuple[Decision, ...] = ()

    @property
    def action(self) -> str:
        """The action decided (a verdict's decision is always decisive)."""
        if self.decision.action is None:
            raise ValueError(f"{self.decision.rule} did not decide")
        return self.decision.action

    def __str__(self) -> str:
        """The decision as recorded, with the names of the rules that missed before it."""
        if not self.misses:
            return str(self.decision)
        missed = ", ".join(m.rule for m in self.misses)
        return f"{self.decision.reason} [{self.decision.rule}; missed {missed}]"


def run(chain: Chain[F], facts: F, now: datetime) -> Verdict:
    """Try each rule of `chain` in order on `facts`; the first decisive one wins."""
    misses: list[Decision] = []
    for name, rule in chain:
        decision = rule(facts, now)
        if decision.rule != name:
            raise ValueError(f"chain entry {name!r} returned a decision of rule {decision.rule!r}")
        if decision.decisive:
            return Verdict(decision, tuple(misses))
        misses.append(decision)
    raise ValueError(f"no rule of the chain decided: {', '.join(name for name, _ in chain)}")


def span(duration: timedelta) -> str:
    """A duration as a reason says it: `3 days`, `1 day`, `14 days, 0:00:01`, `2:00:00`."""
    if duration == timedelta(days=duration.days):
        return f"{duration.days} day{'' if abs(duration.days) == 1 else 's'}"
    return str(duration)
