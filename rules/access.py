"""Who may change what (pure): the roles of users, and the chains that decide whether a user may change a
case or a settings object (users, queues and their members, knowledge articles).

Roles, from least to most:
- integration: a system that creates and updates cases through the API (a web shop, a CRM sync); it may
  change any open case, never reopen one, never change settings objects;
- agent: works cases; may change a case they own or whose owning queue they are a member of;
- supervisor: may change any open case;
- admin: may change anything, and is the only one who reopens a closed case or changes settings objects.

Everyone with a token reads everything. A closed case is locked: a change to it other than a reopen is
refused as locked (Salesforce's ENTITY_IS_LOCKED) whoever asks; a reopen needs an admin."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from casegate.rules.decision import Chain, Decision, miss

INTEGRATION, AGENT, SUPERVISOR, ADMIN = "integration", "agent", "supervisor", "admin"
ROLES = (INTEGRATION, AGENT, SUPERVISOR, ADMIN)

ALLOW = "allow"
DENY = "deny"
"""Not this user's to change (INSUFFICIENT_ACCESS_OR_READONLY, 403)."""
LOCKED = "locked"
"""The record is locked (ENTITY_IS_LOCKED): a closed case, changed other than by a reopen."""


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is asking."""

    user_id: str
    role: str
    queue_ids: frozenset[str] = frozenset()
    """The queues the user is a member of (QueueMember)."""


@dataclass(frozen=True, slots=True)
class CaseChange:
    """A user wants to change (or delete) a case."""

    actor: Actor
    owner_id: str | None
    """The case's OwnerId now (a User 005… or a Queue 00G…); None for a case being created."""
    is_closed: bool
    reopens: bool = False
    """The change sets an open Status on a closed case."""


def closed_case_reopen(f: CaseChange, now: datetime) -> Decision:
    rule = "access.closed_case_reopen"
    if not (f.is_closed and f.reopens):
        return miss(rule, "not a reopen")
    if f.actor.role == ADMIN:
        return Decision(rule, ALLOW, "an admin reopens a closed case")
    return Decision(rule, DENY, f"only an admin reopens a closed case; this user is {_a(f.actor.role)}")


def closed_case_locked(f: CaseChange, now: datetime) -> Decision:
    rule = "access.closed_case_locked"
    if not f.is_closed:
        return miss(rule, "the case is open")
    return Decision(rule, LOCKED, "the case is closed: it is locked until an admin reopens it")


def any_case(f: CaseChange, now: datetime) -> Decision:
    rule = "access.any_case"
    if f.actor.role in (ADMIN, SUPERVISOR, INTEGRATION):
        return Decision(rule, ALLOW, f"{_a(f.actor.role)} may change any open case")
    return miss(rule, f"{_a(f.actor.role)} changes only their own or their queues' cases")


def new_case(f: CaseChange, now: datetime) -> Decision:
    rule = "access.new_case"
    if f.owner_id is not None:
        return miss(rule, "the case exists")
    return Decision(rule, ALLOW, "every role may open a case")


def own_case(f: CaseChange, now: datetime) -> Decision:
    rule = "access.own_case"
    if f.owner_id != f.actor.user_id:
        return miss(rule, "owned by someone else")
    return Decision(rule, ALLOW, "the user owns the case")


def queue_case(f: CaseChange, now: datetime) -> Decision:
    rule = "access.queue_case"
    if f.owner_id not in f.actor.queue_ids:
        return miss(rule, "not owned by a queue the user is a member of")
    return Decision(rule, ALLOW, "owned by a queue the user is a member of")


def deny(f: CaseChange, now: datetime) -> Decision:
    """The last rule: an agent's change to a case that is neither theirs nor their queues'."""
    return Decision("access.deny", DENY, "the case is neither the user's nor one of their queues'")


CASE_CHAIN: Chain[CaseChange] = (
    ("access.closed_case_reopen", closed_case_reopen),
    ("access.closed_case_locked", closed_case_locked),
    ("access.any_case", any_case),
    ("access.new_case", new_case),
    ("access.own_case", own_case),
    ("access.queue_case", queue_case),
    ("access.deny", deny),
)


@dataclass(frozen=True, slots=True)
class SettingsChange:
    """A user wants to change a settings object (a User, a Queue, a QueueMember)."""

    actor: Actor
    object_name: str


def settings_admin(f: SettingsChange, now: datetime) -> Decision:
    rule = "access.settings_admin"
    if f.actor.role == ADMIN:
        return Decision(rule, ALLOW, f"an admin may change {f.object_name} records")
    return Decision(rule, DENY, f"only an admin changes {f.object_name} records; this user is {_a(f.actor.role)}")


SETTINGS_CHAIN: Chain[SettingsChange] = (("access.settings_admin", settings_admin),)


def _a(role: str) -> str:
    return f"an {role}" if role[:1] in "aeiou" else f"a {role}"
