"""Case assignment rules: ordered entries, first match wins, else the owner of the routing address or
channel the case came through, else the default owner.

Pure: `CHAIN` (run on a `NewCase`) decides the owner — the decision's action is the owner reference
(`queue:Billing`, `user:ann@example.com`) — and says why, so the store can record why a case got its
owner. `assign(entries, default_owner, facts)` is the entries' part alone. The facts are the case's
fields as they will be stored (`CaseFacts.of_case`): the Subject derived from the first line of a
message without one, the Priority a web form gave, the Origin and RoutingAddress the case got — never
the raw input, so an entry matches exactly the cases whose stored fields satisfy it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from casegate.config import AssignmentEntry
from casegate.rules.decision import Chain, Decision, miss


@dataclass(frozen=True, slots=True)
class CaseFacts:
    """The case fields assignment criteria look at."""

    origin: str | None
    recipient: str | None
    subject: str | None
    description: str | None
    priority: str | None
    account: str | None

    @classmethod
    def of_case(cls, case: Mapping[str, object], account: str | None) -> CaseFacts:
        """The facts of a case from its field values by Salesforce name (Origin, RoutingAddress, Subject,
        Description, Priority); `account` is the Name of the case's account."""
        return cls(origin=_text(case.get("Origin")), recipient=_text(case.get("RoutingAddress")),
                   subject=_text(case.get("Subject")), description=_text(case.get("Description")),
                   priority=_text(case.get("Priority")), account=account)


@dataclass(frozen=True, slots=True)
class Assignment:
    owner: str
    """`queue:<name>` or `user:<email>`."""
    entry: str | None
    """Name of the entry that matched; None when the default owner was used."""


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


@lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


def _contains_any(text: str | None, needles: Sequence[str]) -> bool:
    low = (text or "").casefold()
    return any(n.casefold() in low for n in needles)


def _same(want: str | None, have: str | None) -> bool:
    return want is None or (have or "").casefold() == want.casefold()


def matches(entry: AssignmentEntry, facts: CaseFacts) -> bool:
    """All of an entry's criteria hold for the case (an entry with no criteria matches everything)."""
    return (
        _same(entry.origin, facts.origin)
        and _same(entry.recipient, facts.recipient)
        and _same(entry.priority, facts.priority)
        and _same(entry.account, facts.account)
        and (not entry.subject_contains or _contains_any(facts.subject, entry.subject_contains))
        and (not entry.description_contains or _contains_any(facts.description, entry.description_contains))
        and (entry.subject_regex is None or bool(_compiled(entry.subject_regex).search(facts.subject or "")))
        and (
            entry.description_regex is None
            or bool(_compiled(entry.description_regex).search(facts.description or ""))
        )
    )


def first_match(entries: Sequence[AssignmentEntry], facts: CaseFacts) -> AssignmentEntry | None:
    return next((entry for entry in entries if matches(entry, facts)), None)


def assign(entries: Sequence[AssignmentEntry], default_owner: str, facts: CaseFacts) -> Assignment:
    """The owner for a case: the first entry whose criteria hold, else `default_owner`."""
    entry = first_match(entries, facts)
    return Assignment(entry.owner, entry.name) if entry else Assignment(default_owner, None)


@dataclass(frozen=True, slots=True)
class NewCase:
    """A case being opened, to be given its owner."""

    case: CaseFacts
    entries: tuple[AssignmentEntry, ...]
    """`[[rules.assignment]]`, in order."""
    source_owner: str | None
    """The owner of the routing address or channel the case came through, if it names one."""
    source: str
    """That routing address or channel, in words (`routing address support@example.com`, `chat channel`)."""
    default_owner: str
    """`[rules] default_owner`."""


def entries(f: NewCase, now: datetime) -> Decision:
    rule = "assignment.entries"
    entry = first_match(f.entries, f.case)
    if entry is None:
        return miss(rule, f"none of {len(f.entries)} assignment entries matched")
    return Decision(rule, entry.owner, f"assignment rule entry '{entry.name}' matched")


def source_owner(f: NewCase, now: datetime) -> Decision:
    rule = "assignment.source_owner"
    if not f.source_owner:
        return miss(rule, f"{f.source} names no owner")
    return Decision(rule, f.source_owner, f"no assignment entry matched: owner of {f.source}")


def default_owner(f: NewCase, now: datetime) -> Decision:
    """The last rule: the default owner."""
    return Decision("assignment.default_owner", f.default_owner, "no assignment entry matched: default owner")


CHAIN: Chain[NewCase] = (
    ("assignment.entries", entries),
    ("assignment.source_owner", source_owner),
    ("assignment.default_owner", default_owner),
)
