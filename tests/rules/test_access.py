"""Who may change what: every role against every kind of case (own, a member queue's, someone else's,
new, closed, a reopen) and settings objects; the decision names the rule and says why."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from casegate.rules.access import (
    ADMIN,
    AGENT,
    ALLOW,
    CASE_CHAIN,
    DENY,
    INTEGRATION,
    LOCKED,
    ROLES,
    SETTINGS_CHAIN,
    SUPERVISOR,
    Actor,
    CaseChange,
    SettingsChange,
)
from casegate.rules.decision import run

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
ME, OTHER, MY_QUEUE, OTHER_QUEUE = "005" + "a" * 15, "005" + "b" * 15, "00G" + "a" * 15, "00G" + "b" * 15

# case kind -> (owner, closed, reopens)
KINDS = {
    "new": (None, False, False),
    "own": (ME, False, False),
    "my queue's": (MY_QUEUE, False, False),
    "someone else's": (OTHER, False, False),
    "another queue's": (OTHER_QUEUE, False, False),
    "closed, own": (ME, True, False),
    "closed, reopened": (OTHER, True, True),
}
EXPECTED = {  # role -> the action for each kind, in KINDS' order
    INTEGRATION: [ALLOW, ALLOW, ALLOW, ALLOW, ALLOW, LOCKED, DENY],
    AGENT: [ALLOW, ALLOW, ALLOW, DENY, DENY, LOCKED, DENY],
    SUPERVISOR: [ALLOW, ALLOW, ALLOW, ALLOW, ALLOW, LOCKED, DENY],
    ADMIN: [ALLOW, ALLOW, ALLOW, ALLOW, ALLOW, LOCKED, ALLOW],
}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("kind", KINDS)
def test_each_role_may_change_what_it_owns_and_no_more(role: str, kind: str) -> None:
    owner, closed, reopens = KINDS[kind]
    actor = Actor(ME, role, frozenset({MY_QUEUE}))
    verdict = run(CASE_CHAIN, CaseChange(actor, owner, closed, reopens), NOW)
    assert verdict.action == EXPECTED[role][list(KINDS).index(kind)], str(verdict)


def test_a_refused_reopen_says_who_may_and_who_asked() -> None:
    verdict = run(CASE_CHAIN, CaseChange(Actor(ME, SUPERVISOR), ME, True, True), NOW)
    assert (verdict.decision.rule, verdict.action) == ("access.closed_case_reopen", DENY)
    assert "only an admin reopens" in verdict.decision.reason and "a supervisor" in verdict.decision.reason


def test_an_agents_refusal_keeps_the_rules_it_tried() -> None:
    verdict = run(CASE_CHAIN, CaseChange(Actor(ME, AGENT, frozenset({MY_QUEUE})), OTHER_QUEUE, False), NOW)
    assert verdict.decision.rule == "access.deny"
    assert [m.rule for m in verdict.misses] == [
        "access.closed_case_reopen", "access.closed_case_locked", "access.any_case", "access.new_case",
        "access.own_case", "access.queue_case"]


@pytest.mark.parametrize("role", ROLES)
def test_only_an_admin_changes_settings_objects(role: str) -> None:
    verdict = run(SETTINGS_CHAIN, SettingsChange(Actor(ME, role), "Queue"), NOW)
    assert verdict.action == (ALLOW if role == ADMIN else DENY)
    if role != ADMIN:
        assert f"only an admin changes Queue records; this user is an {role}" in verdict.decision.reason \
            or f"this user is a {role}" in verdict.decision.reason
