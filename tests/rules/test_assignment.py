"""Assignment rules: ordered entries, first match wins, every criterion of an entry must hold, the
default owner (and no entry name) when nothing matches; the chain: an entry, else the owner of the
routing address or channel, else the default owner, each saying why."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from casegate.config import AssignmentEntry
from casegate.rules.assignment import (
    CHAIN,
    Assignment,
    CaseFacts,
    NewCase,
    assign,
    default_owner,
    entries,
    matches,
    source_owner,
)
from casegate.rules.decision import Decision, Rule, run

FACTS = CaseFacts(origin="Email", recipient="support@example.com", subject="Refund for invoice 42",
                  description="Please send the money back.\nOrder 1234", priority="High", account="Acme Corp")
DEFAULT = "queue:Support"


def entry(name: str = "e", owner: str = "queue:Billing", **criteria: Any) -> AssignmentEntry:
    return AssignmentEntry(name=name, owner=owner, **criteria)


def test_first_matching_entry_wins_in_order() -> None:
    entries = [
        entry("no", "queue:Nobody", subject_contains=["printer"]),
        entry("billing", "queue:Billing", subject_contains=["refund"]),
        entry("vip", "user:lead@example.com", account="Acme Corp"),
    ]
    assert assign(entries, DEFAULT, FACTS) == Assignment("queue:Billing", "billing")
    assert assign([entries[2], entries[1]], DEFAULT, FACTS) == Assignment("user:lead@example.com", "vip")


def test_default_owner_when_no_entry_matches() -> None:
    entries = [entry("printers", subject_contains=["printer"]), entry("sms", origin="SMS")]
    assert assign(entries, DEFAULT, FACTS) == Assignment(DEFAULT, None)
    assert assign([], "user:someone@example.com", FACTS) == Assignment("user:someone@example.com", None)


def test_entry_without_criteria_matches_everything() -> None:
    assert matches(entry(), FACTS)
    assert matches(entry(), CaseFacts(None, None, None, None, None, None))


@pytest.mark.parametrize(
    ("criteria", "miss"),
    [
        # origin, recipient, priority and account: equal, case-insensitively
        ({"origin": "email"}, {"origin": "Web"}),
        ({"origin": "Email"}, {"origin": None}),
        ({"recipient": "SUPPORT@example.com"}, {"recipient": "billing@example.com"}),
        ({"priority": "high"}, {"priority": "Medium"}),
        ({"account": "acme corp"}, {"account": "Acme"}),
        ({"account": "Acme Corp"}, {"account": None}),
        # contains: any of the listed words, case-insensitive, substring
        ({"subject_contains": ["REFUND"]}, {"subject": "Printer on fire"}),
        ({"subject_contains": ["printer", "invoice"]}, {"subject": "Hello"}),
        ({"subject_contains": ["refund"]}, {"subject": None}),
        ({"description_contains": ["MONEY back"]}, {"description": "all good"}),
        ({"description_contains": ["money"]}, {"description": None}),
        # regexes: searched anywhere, case-insensitive
        ({"subject_regex": r"invoice \d+"}, {"subject": "invoice pending"}),
        ({"subject_regex": r"^REFUND"}, {"subject": "Re: Refund"}),
        ({"description_regex": r"order \d{4}"}, {"description": "order 12"}),
        ({"description_regex": r"^please"}, {"description": "Say please"}),
    ],
)
def test_each_criterion_matches_and_fails(criteria: dict[str, Any], miss: dict[str, Any]) -> None:
    e = entry(**criteria)
    assert matches(e, FACTS)
    assert assign([e], DEFAULT, FACTS) == Assignment("queue:Billing", "e")
    assert not matches(e, replace(FACTS, **miss))
    assert assign([e], DEFAULT, replace(FACTS, **miss)) == Assignment(DEFAULT, None)


def test_description_regex_runs_over_the_whole_text() -> None:
    assert matches(entry(description_regex=r"Order \d+$"), FACTS)


def test_an_entry_with_several_criteria_needs_all_of_them() -> None:
    e = entry("vip-refunds", "user:lead@example.com", origin="Email", recipient="support@example.com",
              subject_contains=["refund"], description_contains=["money"], subject_regex=r"\d+",
              description_regex="order", priority="High", account="Acme Corp")
    assert matches(e, FACTS)
    for change in ({"origin": "Web"}, {"recipient": "other@example.com"}, {"subject": "Refund please"},
                   {"description": "Order 1 please"}, {"priority": "Low"}, {"account": "Other Ltd"},
                   {"subject": "Invoice 42"}, {"description": "no money"}):
        assert not matches(e, replace(FACTS, **change)), change
    assert assign([e], DEFAULT, replace(FACTS, priority="Low")) == Assignment(DEFAULT, None)


# -- the facts are the case's stored fields ---------------------------------------------------------
STORED = {"Id": "500000000000000AAA", "Origin": "SMS", "RoutingAddress": "+15550009999",
          "Subject": "My router is broken", "Description": "My router is broken\nIt blinks red",
          "Priority": "High", "Type": None, "OwnerId": ""}


def test_facts_of_a_case_are_its_fields_by_salesforce_name() -> None:
    assert CaseFacts.of_case(STORED, "Acme Corp") == CaseFacts(
        origin="SMS", recipient="+15550009999", subject="My router is broken",
        description="My router is broken\nIt blinks red", priority="High", account="Acme Corp")
    assert CaseFacts.of_case({}, None) == CaseFacts(None, None, None, None, None, None)


@pytest.mark.parametrize(
    ("criteria", "fields", "matched"),
    [
        ({"subject_contains": ["router"]}, {}, True),
        ({"subject_contains": ["router"]}, {"Subject": None}, False),
        ({"subject_regex": "^my router"}, {}, True),
        ({"priority": "high"}, {}, True),
        ({"priority": "High"}, {"Priority": "Low"}, False),
        ({"origin": "sms"}, {}, True),
        ({"recipient": "+15550009999"}, {}, True),
        ({"recipient": "+15550009999"}, {"RoutingAddress": "+15550000000"}, False),
        ({"description_regex": "red$"}, {}, True),
    ],
)
def test_entries_match_on_the_stored_fields(criteria: dict[str, Any], fields: dict[str, Any], matched: bool) -> None:
    facts = CaseFacts.of_case({**STORED, **fields}, None)
    assert matches(entry(**criteria), facts) is matched


# -- the chain ------------------------------------------------------------------------------------
NOW = datetime(2026, 11, 27, 18, 0, tzinfo=UTC)
BILLING = entry("billing", "queue:Billing", subject_contains=["refund"])
PRINTERS = entry("printers", "queue:Printers", subject_contains=["printer"])
NEW = NewCase(case=FACTS, entries=(PRINTERS, BILLING), source_owner="queue:Email", source="routing address s@x",
              default_owner=DEFAULT)


@pytest.mark.parametrize(
    ("rule", "new", "decision"),
    [
        (entries, NEW, Decision("assignment.entries", "queue:Billing", "assignment rule entry 'billing' matched")),
        (entries, replace(NEW, entries=(PRINTERS,)),
         Decision("assignment.entries", None, "none of 1 assignment entries matched")),
        (entries, replace(NEW, entries=()),
         Decision("assignment.entries", None, "none of 0 assignment entries matched")),
        (source_owner, NEW, Decision("assignment.source_owner", "queue:Email",
                                     "no assignment entry matched: owner of routing address s@x")),
        (source_owner, replace(NEW, source_owner=None),
         Decision("assignment.source_owner", None, "routing address s@x names no owner")),
        (source_owner, replace(NEW, source_owner=""),
         Decision("assignment.source_owner", None, "routing address s@x names no owner")),
        (default_owner, NEW,
         Decision("assignment.default_owner", DEFAULT, "no assignment entry matched: default owner")),
    ],
)
def test_each_assignment_rule(rule: Rule[NewCase], new: NewCase, decision: Decision) -> None:
    assert rule(new, NOW) == decision


@pytest.mark.parametrize(
    ("new", "rule", "owner", "missed"),
    [
        (NEW, "assignment.entries", "queue:Billing", []),
        (replace(NEW, entries=(PRINTERS,)), "assignment.source_owner", "queue:Email", ["assignment.entries"]),
        (replace(NEW, entries=(), source_owner=None), "assignment.default_owner", DEFAULT,
         ["assignment.entries", "assignment.source_owner"]),
    ],
)
def test_the_assignment_chain(new: NewCase, rule: str, owner: str, missed: list[str]) -> None:
    verdict = run(CHAIN, new, NOW)
    assert (verdict.decision.rule, verdict.action) == (rule, owner)
    assert [m.rule for m in verdict.misses] == missed
