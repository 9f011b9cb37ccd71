"""Whether a mail that continues no case opens one: automatic mail only where the routing address lets
it, never a flood (the flood's own edges are in test_loops). Plain values in, decision out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from casegate.config import LoopSettings
from casegate.rules.decision import Decision, run
from casegate.rules.loops import Flood
from casegate.rules.opening import CHAIN, OPEN, SUPPRESS, NewMail, automatic_mail, open_case

AT = datetime(2026, 11, 27, 18, 0, tzinfo=UTC)
LOOPS = LoopSettings(max_per_sender_subject=1, window_seconds=60)
CALM = Flood((AT,), AT, LOOPS)
STORM = Flood((AT - timedelta(seconds=60), AT - timedelta(seconds=59), AT), AT, LOOPS)


def mail(automatic: str | None = None, reason: str | None = None, opens: bool = False,
         flood: Flood = CALM) -> NewMail:
    return NewMail(automatic, reason, opens, flood)


@pytest.mark.parametrize(
    ("new", "decision"),
    [
        (mail(), Decision("opening.automatic_mail", None, "written by a person")),
        (mail("auto-reply", "Auto-Submitted: auto-replied"),
         Decision("opening.automatic_mail", SUPPRESS, "auto-reply: Auto-Submitted: auto-replied")),
        (mail("list"), Decision("opening.automatic_mail", SUPPRESS, "list: automatic mail")),
        (mail("list", "List-Id: <a.example.org>", opens=True),
         Decision("opening.automatic_mail", None, "list: the routing address lets automatic mail open cases")),
    ],
)
def test_automatic_mail(new: NewMail, decision: Decision) -> None:
    assert automatic_mail(new, AT) == decision


def test_open_is_the_last_rule_and_always_decides() -> None:
    assert open_case(mail(flood=STORM), AT) == Decision("opening.open", OPEN, "continues no case")


@pytest.mark.parametrize(
    ("new", "rule", "action", "missed"),
    [
        (mail(), "opening.open", OPEN, ["opening.automatic_mail", "loops.flood"]),
        (mail("auto-reply", "X-Autoreply: yes"), "opening.automatic_mail", SUPPRESS, []),
        (mail("auto-reply", flood=STORM), "opening.automatic_mail", SUPPRESS, []),
        (mail(flood=STORM), "loops.flood", SUPPRESS, ["opening.automatic_mail"]),
        (mail("list", opens=True), "opening.open", OPEN, ["opening.automatic_mail", "loops.flood"]),
        (mail("list", opens=True, flood=STORM), "loops.flood", SUPPRESS, ["opening.automatic_mail"]),
    ],
)
def test_the_chain(new: NewMail, rule: str, action: str, missed: list[str]) -> None:
    verdict = run(CHAIN, new, AT)
    assert (verdict.decision.rule, verdict.action) == (rule, action)
    assert [m.rule for m in verdict.misses] == missed


def test_a_flood_as_recorded() -> None:
    assert str(run(CHAIN, mail(flood=STORM), AT)) == (
        "more than 1 mails from this sender with this subject within 60 s (2 so far) "
        "[loops.flood; missed opening.automatic_mail]")
