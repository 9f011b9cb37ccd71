"""The closed-case policy: automatic mail never reopens; `reject` keeps the message on the closed case;
`reopen` always reopens; `reopen_within_days` reopens up to and including the boundary, and opens a
follow-up after it; `new_case` always opens a follow-up. Plain values in, decision out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from casegate.rules.closed_case import (
    CHAIN,
    KEEP,
    NEW_CASE,
    REJECT,
    REOPEN,
    ClosedCase,
    automatic_mail,
    new_case,
    reject,
    reopen,
    reopen_within_days,
)
from casegate.rules.decision import Decision, Rule, run

NOW = datetime(2026, 11, 27, 18, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def facts(policy: str = "reopen_within_days", within_days: int = 14, closed_ago: timedelta | None = 3 * DAY,
          automatic: str | None = None) -> ClosedCase:
    return ClosedCase(policy, within_days, None if closed_ago is None else NOW - closed_ago, automatic)


@pytest.mark.parametrize(
    ("rule", "case", "decision"),
    [
        # automatic mail
        (automatic_mail, facts(automatic="auto-reply"),
         Decision("closed_case.automatic_mail", KEEP, "automatic mail (auto-reply) never reopens a case")),
        (automatic_mail, facts(), Decision("closed_case.automatic_mail", None, "written by a person")),
        # reject
        (reject, facts("reject"), Decision("closed_case.reject", REJECT, "policy reject")),
        (reject, facts("reopen"), Decision("closed_case.reject", None, "policy reopen")),
        # reopen
        (reopen, facts("reopen", closed_ago=400 * DAY), Decision("closed_case.reopen", REOPEN, "policy reopen")),
        (reopen, facts("new_case"), Decision("closed_case.reopen", None, "policy new_case")),
        # reopen_within_days: the boundary is inside the window
        (reopen_within_days, facts(closed_ago=3 * DAY),
         Decision("closed_case.reopen_within_days", REOPEN, "closed 3 days ago, within 14 days")),
        (reopen_within_days, facts(closed_ago=14 * DAY),
         Decision("closed_case.reopen_within_days", REOPEN, "closed 14 days ago, within 14 days")),
        (reopen_within_days, facts(closed_ago=14 * DAY + timedelta(seconds=1)),
         Decision("closed_case.reopen_within_days", NEW_CASE, "closed 14 days, 0:00:01 ago, more than 14 days")),
        (reopen_within_days, facts(closed_ago=14 * DAY + timedelta(microseconds=1)),
         Decision("closed_case.reopen_within_days", NEW_CASE,
                  "closed 14 days, 0:00:00.000001 ago, more than 14 days")),
        (reopen_within_days, facts(within_days=0, closed_ago=timedelta(0)),
         Decision("closed_case.reopen_within_days", REOPEN, "closed 0 days ago, within 0 days")),
        (reopen_within_days, facts(within_days=0, closed_ago=timedelta(seconds=1)),
         Decision("closed_case.reopen_within_days", NEW_CASE, "closed 0:00:01 ago, more than 0 days")),
        (reopen_within_days, facts(closed_ago=None),
         Decision("closed_case.reopen_within_days", NEW_CASE, "closing date unknown")),
        (reopen_within_days, facts("reopen"), Decision("closed_case.reopen_within_days", None, "policy reopen")),
        # new_case: the last rule, always decides
        (new_case, facts("new_case"), Decision("closed_case.new_case", NEW_CASE, "policy new_case")),
        (new_case, facts("reopen"), Decision("closed_case.new_case", NEW_CASE, "policy reopen")),
    ],
)
def test_each_rule(rule: Rule[ClosedCase], case: ClosedCase, decision: Decision) -> None:
    assert rule(case, NOW) == decision


@pytest.mark.parametrize(
    ("case", "rule", "action", "missed"),
    [
        (facts(automatic="list", policy="reopen"), "closed_case.automatic_mail", KEEP, []),
        (facts(automatic="auto-reply", policy="reject"), "closed_case.automatic_mail", KEEP, []),
        (facts("reject"), "closed_case.reject", REJECT, ["closed_case.automatic_mail"]),
        (facts("reopen", closed_ago=400 * DAY), "closed_case.reopen", REOPEN,
         ["closed_case.automatic_mail", "closed_case.reject"]),
        (facts(closed_ago=14 * DAY), "closed_case.reopen_within_days", REOPEN,
         ["closed_case.automatic_mail", "closed_case.reject", "closed_case.reopen"]),
        (facts(closed_ago=30 * DAY), "closed_case.reopen_within_days", NEW_CASE,
         ["closed_case.automatic_mail", "closed_case.reject", "closed_case.reopen"]),
        (facts("new_case", closed_ago=timedelta(0)), "closed_case.new_case", NEW_CASE,
         ["closed_case.automatic_mail", "closed_case.reject", "closed_case.reopen", "closed_case.reopen_within_days"]),
    ],
)
def test_the_chain(case: ClosedCase, rule: str, action: str, missed: list[str]) -> None:
    verdict = run(CHAIN, case, NOW)
    assert (verdict.decision.rule, verdict.action) == (rule, action)
    assert [m.rule for m in verdict.misses] == missed


def test_the_chain_as_recorded() -> None:
    assert str(run(CHAIN, facts(closed_ago=3 * DAY), NOW)) == (
        "closed 3 days ago, within 14 days [closed_case.reopen_within_days; "
        "missed closed_case.automatic_mail, closed_case.reject, closed_case.reopen]")
