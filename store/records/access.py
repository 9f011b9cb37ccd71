"""Whether the asking user may make a change, as `rules.access` decides, turned into Salesforce's refusals:
DENY → INSUFFICIENT_ACCESS_OR_READONLY (403), LOCKED → ENTITY_IS_LOCKED (400)."""

from __future__ import annotations

from casegate.rules.access import CASE_CHAIN, DENY, LOCKED, SETTINGS_CHAIN, CaseChange, SettingsChange
from casegate.rules.decision import Verdict, run
from casegate.store.records.call import Call
from casegate.store.records.errors import RecordError
from sqlalchemy import RowMapping


def check_case(call: Call, case: RowMapping | None, *, reopens: bool = False) -> Verdict:
    """May the user change `case` (None: open a new one)? Returns the verdict that allowed it."""
    facts = CaseChange(call.actor, case["OwnerId"] if case is not None else None,
                       bool(case["IsClosed"]) if case is not None else False, reopens)
    verdict = run(CASE_CHAIN, facts, call.now)
    if verdict.action == DENY:
        record = case["Id"] if case is not None else "(new case)"
        raise RecordError(403, "INSUFFICIENT_ACCESS_OR_READONLY",
                          f"insufficient access rights on object id {record}: {verdict.decision.reason}")
    if verdict.action == LOCKED:
        number = case["CaseNumber"] if case is not None else ""
        raise RecordError(400, "ENTITY_IS_LOCKED",
                          f"the entity is locked for editing: case {number} is closed; {verdict.decision.reason}")
    return verdict


def check_settings(call: Call, obj: str) -> None:
    """Only an admin changes a settings object (User, Queue, QueueMember)."""
    verdict = run(SETTINGS_CHAIN, SettingsChange(call.actor, obj), call.now)
    if verdict.action == DENY:
        raise RecordError(403, "INSUFFICIENT_ACCESS_OR_READONLY",
                          f"insufficient access rights on object {obj}: {verdict.decision.reason}")
