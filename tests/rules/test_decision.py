"""The chain runner: rules tried in order, the first decisive one wins, the misses before it are kept;
a chain whose table and rules disagree on a name, or where no rule decides, is an error. And every
chain of `rules/` has unique names and ends in a rule that always decides."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from types import ModuleType

import pytest
from casegate.rules import acknowledgement, assignment, closed_case, opening
from casegate.rules.decision import Chain, Decision, Rule, Verdict, miss, run, span

NOW = datetime(2026, 11, 27, 18, 0, tzinfo=UTC)


def hit_if(name: str, action: str, wanted: int) -> tuple[str, Rule[int]]:
    def rule(facts: int, now: datetime) -> Decision:
        if facts == wanted:
            return Decision(name, action, f"facts are {wanted}")
        return miss(name, f"facts are {facts}, not {wanted}")

    return name, rule


def always(name: str, action: str) -> tuple[str, Rule[int]]:
    return name, lambda facts, now: Decision(name, action, "always")


CHAIN: Chain[int] = (hit_if("t.one", "a", 1), hit_if("t.two", "b", 2), always("t.last", "c"))


@pytest.mark.parametrize(
    ("facts", "decision", "missed"),
    [
        (1, Decision("t.one", "a", "facts are 1"), []),
        (2, Decision("t.two", "b", "facts are 2"), ["t.one"]),
        (3, Decision("t.last", "c", "always"), ["t.one", "t.two"]),
    ],
)
def test_first_decisive_rule_wins_and_the_misses_are_kept(facts: int, decision: Decision, missed: list[str]) -> None:
    verdict = run(CHAIN, facts, NOW)
    assert verdict.decision == decision and verdict.action == decision.action
    assert [m.rule for m in verdict.misses] == missed
    assert all(not m.decisive and m.action is None for m in verdict.misses)


def test_misses_say_why_they_missed() -> None:
    assert run(CHAIN, 2, NOW).misses == (Decision("t.one", None, "facts are 2, not 1"),)


def test_a_decision_is_recorded_as_reason_and_rule_with_the_misses_named() -> None:
    assert str(Decision("closed_case.reopen", "reopen", "policy reopen")) == "policy reopen [closed_case.reopen]"
    assert str(run(CHAIN, 1, NOW)) == "facts are 1 [t.one]"
    assert str(run(CHAIN, 3, NOW)) == "always [t.last; missed t.one, t.two]"


def test_a_rule_answering_under_another_name_is_an_error() -> None:
    wrong: Chain[int] = (("t.table_name", lambda facts, now: Decision("t.other", "a", "x")),)
    with pytest.raises(ValueError, match=re.escape("'t.table_name' returned a decision of rule 't.other'")):
        run(wrong, 1, NOW)


def test_a_chain_where_nothing_decides_is_an_error() -> None:
    undecided: Chain[int] = CHAIN[:2]
    with pytest.raises(ValueError, match=re.escape("no rule of the chain decided: t.one, t.two")):
        run(undecided, 3, NOW)
    with pytest.raises(ValueError, match="did not decide"):
        _ = Verdict(miss("t.one", "no")).action


@pytest.mark.parametrize(
    ("duration", "text"),
    [
        (timedelta(days=3), "3 days"),
        (timedelta(days=1), "1 day"),
        (timedelta(0), "0 days"),
        (timedelta(days=14, seconds=1), "14 days, 0:00:01"),
        (timedelta(hours=2), "2:00:00"),
        (timedelta(days=-1), "-1 day"),
    ],
)
def test_span(duration: timedelta, text: str) -> None:
    assert span(duration) == text


@pytest.mark.parametrize("module", [closed_case, opening, acknowledgement, assignment], ids=lambda m: m.__name__)
def test_every_chain_has_unique_dotted_names(module: ModuleType) -> None:
    names = [name for name, _ in module.CHAIN]
    assert len(set(names)) == len(names)
    assert all(name.count(".") == 1 for name in names)
    assert names[0].startswith(module.__name__.removeprefix("casegate.rules.") + ".")
