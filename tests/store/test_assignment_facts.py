"""Assignment rules judge the case as it is stored, on real databases: one table of messages (email
routed and not, SMS without a subject, web forms with and without a priority) and one assignment
entry each; the entry matches exactly when the stored case's field satisfies it — the Subject derived
from the first line and cut as stored, the Priority the form gave (or the channel's), the Origin and
RoutingAddress the case got."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from casegate.config import AssignmentEntry, RoutingAddress, RulesSettings
from casegate.store.case_policy import CasePolicy
from casegate.store.case_service import CaseService
from casegate.store.channel_policy import ChannelPolicy
from casegate.store.database import Database
from casegate.store.inbound import InboundMessage
from casegate.store.owners import ensure_owners

from tests.store.test_case_service import SECRET, T0, Store, msg

ROUTING = {
    "support@localhost": RoutingAddress(address="support@localhost"),
    "vip@example.com": RoutingAddress(address="vip@example.com", priority="High", origin="Partner"),
}
CHANNELS = {"twilio": ChannelPolicy(priority="Low"), "web_form": ChannelPolicy(priority="High")}
OWNERS = ["queue:Support", "queue:Matched"]


def sms(body: str) -> InboundMessage:
    return InboundMessage(
        channel="sms", external_id=f"SM{uuid.uuid4().hex}", envelope_id=str(uuid.uuid4()), received_at=T0,
        conversation_key=f"sms:+1555{uuid.uuid4().int % 10**7:07d}", sender_email=None, sender_phone="+15551230000",
        recipients=("+15550009999",), text=body, source="twilio")


def form(priority: str | None, subject: str | None = "Cannot log in",
         body: str = "Reset link expires.") -> InboundMessage:
    return InboundMessage(
        channel="web", external_id=str(uuid.uuid4()), envelope_id=str(uuid.uuid4()), received_at=T0,
        conversation_key=f"web:{uuid.uuid4().hex}", sender_email="ines@example.org", subject=subject, text=body,
        source="web_form", entry_type="Form", case_fields={"Priority": priority} if priority else {})


LONG_LINE = "Router " + "x" * 80 + " outage"
"""A first line whose keyword lies past the 80 characters the derived Subject keeps."""


@dataclass(frozen=True)
class Row:
    id: str
    message: InboundMessage
    criteria: dict[str, Any]
    matched: bool
    stored: dict[str, Any]
    """Fields of the stored case, checked alongside: the value the rule was judged on."""


ROWS = [
    # a message without a subject: the case's Subject is its first line, and the rule sees that
    Row("sms-first-line-contains", sms("My ROUTER is broken\nIt blinks red"), {"subject_contains": ["router"]},
        True, {"Subject": "My ROUTER is broken", "Origin": "SMS"}),
    Row("sms-first-line-regex", sms("\n  Router down  \nsince noon"), {"subject_regex": r"^router down$"},
        True, {"Subject": "Router down"}),
    Row("sms-second-line-is-not-the-subject", sms("Hello\nmy router is broken"), {"subject_contains": ["router"]},
        False, {"Subject": "Hello"}),
    Row("sms-second-line-is-in-the-description", sms("Hello\nmy router is broken"),
        {"description_contains": ["router"]}, True, {"Description": "Hello\nmy router is broken"}),
    Row("sms-keyword-past-80-characters", sms(LONG_LINE), {"subject_contains": ["outage"]},
        False, {"Subject": LONG_LINE[:80]}),
    Row("sms-channel-priority", sms("Hi"), {"priority": "Low"}, True, {"Priority": "Low"}),
    # a web form's priority is the case's, whatever the channel's default
    Row("form-priority-given", form("High"), {"priority": "High"}, True, {"Priority": "High"}),
    Row("form-priority-other-than-the-channel", form("Low"), {"priority": "High"}, False, {"Priority": "Low"}),
    Row("form-priority-own-value", form("Urgent"), {"priority": "urgent"}, True, {"Priority": "Urgent"}),
    Row("form-without-priority-gets-the-channel", form(None), {"priority": "High"}, True, {"Priority": "High"}),
    Row("form-without-subject", form("Low", subject=None, body="Invoice 42 is wrong\nPlease fix"),
        {"subject_contains": ["invoice"]}, True, {"Subject": "Invoice 42 is wrong", "Origin": "Web"}),
    # mail: the Origin, Priority and RoutingAddress the case got, not what the message lacked
    Row("mail-unrouted-origin", msg("Hello", to=("nobody@elsewhere.test",)), {"origin": "Email"}, True,
        {"Origin": "Email", "Priority": "Medium"}),
    Row("mail-unrouted-priority", msg("Hello", to=("nobody@elsewhere.test",)), {"priority": "Medium"}, True,
        {"Priority": "Medium"}),
    Row("mail-routing-address-not-first-recipient", msg("Hello", to=("cc@example.org", "vip@example.com")),
        {"recipient": "vip@example.com", "priority": "High", "origin": "Partner"}, True,
        {"RoutingAddress": "vip@example.com", "Priority": "High", "Origin": "Partner"}),
    Row("mail-first-recipient-is-not-the-routing-address", msg("Hello", to=("cc@example.org", "vip@example.com")),
        {"recipient": "cc@example.org"}, False, {"RoutingAddress": "vip@example.com"}),
    Row("mail-subject-as-stored", msg("Refund " + "y" * 300 + " tail"), {"subject_regex": "tail$"}, False,
        {"Subject": ("Refund " + "y" * 300)[:255]}),
    Row("mail-blank-subject-takes-the-first-line", msg("   ", "Refund please\nthanks"),
        {"subject_contains": ["refund"]}, True, {"Subject": "Refund please"}),
]


@pytest.fixture
async def owners(db: Database) -> dict[str, str]:
    return await ensure_owners(db, OWNERS)


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
async def test_the_rule_is_judged_on_the_stored_case(db: Database, owners: dict[str, str], row: Row) -> None:
    entry = AssignmentEntry(name=row.id, owner="queue:Matched", **row.criteria)
    policy = CasePolicy(ROUTING, RulesSettings(assignment=[entry]), owners, SECRET, channels=CHANNELS)
    store = Store(db, CaseService(db, policy), owners)
    [out] = await store.record(row.message)
    assert out.outcome == "created"
    case = await store.case(out.case_number or "")
    assert {k: case[k] for k in row.stored} == row.stored
    [rule] = [f for f in case["Feed"] if f["Type"] == "AssignmentRule"]
    if row.matched:
        assert (case["OwnerId"], rule["Body"]) == (owners["queue:Matched"], f"assignment rule entry '{row.id}' matched")
    else:
        assert case["OwnerId"] == owners["queue:Support"] and rule["Body"].startswith("no assignment entry matched")
