"""Case assignment rules: ordered entries, first match wins, the default owner otherwise.

Pure: `assign(entries, default_owner, facts)` looks only at the values it is given and says which
entry matched (or none), so the store can record why a case got its owner. The facts are the case's
fields as they will be stored (`CaseFacts.of_case`): the Subject derived from the first line of a
message without one, the Priority a web form gave, the Origin and RoutingAddress the case got — never
the raw input, so an entry matches exactly the cases whose stored fields satisfy it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from config import AssignmentEntry


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


def assign(entries: Sequence[AssignmentEntry], default_owner: str, facts: CaseFacts) -> Assignment:
    """The owner for a case: the first entry whose criteria hold, else `default_owner`."""
    for entry in entries:
        if matches(entry, facts):
            return Assignment(entry.owner, entry.name)
    return Assignment(default_owner, None)
