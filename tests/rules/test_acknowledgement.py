"""Whether casegate writes to the sender: never to automatic mail, not when the routing address turns
acknowledgements off (a notice is sent anyway), not without a relay or an address, never to our own
addresses, and not past the per-address limit. Plain values in, decision out."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from casegate.config import LoopSettings
from casegate.rules.acknowledgement import (
    ACKNOWLEDGEMENT,
    CHAIN,
    NOTICE,
    SEND,
    SKIP,
    WITHHOLD,
    Acknowledgement,
    automatic_mail,
    no_address,
    no_relay,
    own_address,
    routing_address,
    send,
)
from casegate.rules.decision import Decision, Rule, run
from casegate.rules.loops import Acknowledgements

NOW = datetime(2026, 11, 27, 18, 0, tzinfo=UTC)
LOOPS = LoopSettings(acknowledgements_per_address=3, acknowledgement_window_minutes=60)
ACK = Acknowledgement(kind=ACKNOWLEDGEMENT, to="ada@example.org", automatic=None, routing_address_acknowledges=True,
                      relay=True, own_address=False, recent=Acknowledgements(0, LOOPS))


@pytest.mark.parametrize(
    ("rule", "facts", "decision"),
    [
        (automatic_mail, replace(ACK, automatic="list"),
         Decision("acknowledgement.automatic_mail", SKIP, "automatic mail (list) is never answered")),
        (automatic_mail, ACK, Decision("acknowledgement.automatic_mail", None, "written by a person")),
        (routing_address, replace(ACK, routing_address_acknowledges=False),
         Decision("acknowledgement.routing_address", SKIP, "the routing address does not acknowledge")),
        (routing_address, replace(ACK, kind=NOTICE, routing_address_acknowledges=False),
         Decision("acknowledgement.routing_address", None, "a notice is not an acknowledgement")),
        (routing_address, ACK, Decision("acknowledgement.routing_address", None, "the routing address acknowledges")),
        (no_relay, replace(ACK, relay=False),
         Decision("acknowledgement.no_relay", SKIP, "no outbound relay configured")),
        (no_relay, ACK, Decision("acknowledgement.no_relay", None, "an outbound relay is configured")),
        (no_address, replace(ACK, to=None), Decision("acknowledgement.no_address", SKIP, "the sender has no address")),
        (no_address, replace(ACK, to=""), Decision("acknowledgement.no_address", SKIP, "the sender has no address")),
        (no_address, ACK, Decision("acknowledgement.no_address", None, "the sender is ada@example.org")),
        (own_address, replace(ACK, to="support@example.com", own_address=True),
         Decision("acknowledgement.own_address", SKIP, "support@example.com is one of our routing addresses")),
        (own_address, ACK,
         Decision("acknowledgement.own_address", None, "ada@example.org is not one of our routing addresses")),
        (send, ACK, Decision("acknowledgement.send", SEND, "automatic mail 1 of at most 3 to this address "
                                                           "within 60 min")),
        (send, replace(ACK, recent=Acknowledgements(2, LOOPS)),
         Decision("acknowledgement.send", SEND, "automatic mail 3 of at most 3 to this address within 60 min")),
    ],
)
def test_each_rule(rule: Rule[Acknowledgement], facts: Acknowledgement, decision: Decision) -> None:
    assert rule(facts, NOW) == decision


ALL_MISSED = ["acknowledgement.automatic_mail", "acknowledgement.routing_address", "acknowledgement.no_relay",
              "acknowledgement.no_address", "acknowledgement.own_address", "loops.acknowledgement_limit"]


@pytest.mark.parametrize(
    ("facts", "rule", "action", "missed"),
    [
        (ACK, "acknowledgement.send", SEND, ALL_MISSED),
        (replace(ACK, kind=NOTICE, routing_address_acknowledges=False), "acknowledgement.send", SEND, ALL_MISSED),
        (replace(ACK, recent=Acknowledgements(2, LOOPS)), "acknowledgement.send", SEND, ALL_MISSED),
        (replace(ACK, recent=Acknowledgements(3, LOOPS)), "loops.acknowledgement_limit", WITHHOLD, ALL_MISSED[:5]),
        (replace(ACK, automatic="auto-reply", relay=False), "acknowledgement.automatic_mail", SKIP, []),
        (replace(ACK, routing_address_acknowledges=False, relay=False), "acknowledgement.routing_address", SKIP,
         ALL_MISSED[:1]),
        (replace(ACK, relay=False, to=None), "acknowledgement.no_relay", SKIP, ALL_MISSED[:2]),
        (replace(ACK, to=None, recent=Acknowledgements(9, LOOPS)), "acknowledgement.no_address", SKIP,
         ALL_MISSED[:3]),
        # never to ourselves, even before the limit is counted
        (replace(ACK, own_address=True, recent=Acknowledgements(9, LOOPS)), "acknowledgement.own_address", SKIP,
         ALL_MISSED[:4]),
    ],
)
def test_the_chain(facts: Acknowledgement, rule: str, action: str, missed: list[str]) -> None:
    verdict = run(CHAIN, facts, NOW)
    assert (verdict.decision.rule, verdict.action) == (rule, action)
    assert [m.rule for m in verdict.misses] == missed


def test_a_withheld_acknowledgement_as_recorded() -> None:
    decision = run(CHAIN, replace(ACK, recent=Acknowledgements(3, LOOPS)), NOW).decision
    assert str(decision) == "more than 3 automatic mails to this address within 60 min [loops.acknowledgement_limit]"
