"""The case service on real databases (a migrated SQLite file and a fresh PostgreSQL database):
opening cases with the Salesforce fields, threading (In-Reply-To, References, ghost parents, signed
tokens), idempotency, reopening, the configured `[case]` statuses and defaults, assignment, contact matching,
field limits, gapless CaseNumbers under concurrency, and reading a case back."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from casegate.config import (
    AssignmentEntry,
    CaseSettings,
    LoopSettings,
    OutboundSettings,
    RoutingAddress,
    RulesSettings,
    StatusValue,
)
from casegate.store.agent_replies import ReplyPolicy, queue_email_reply
from casegate.store.case_policy import CasePolicy
from casegate.store.case_queries import count_cases, show_case
from casegate.store.case_service import CaseService
from casegate.store.database import Database
from casegate.store.errors import CaseNotFound, PermanentStoreError, TemporaryStoreError
from casegate.store.inbound import InboundMessage, Outcome
from casegate.store.models import Account, Contact, Counter, EmailMessage, Outbox, ProcessedMessage
from casegate.store.owners import ensure_owners
from casegate.store.thread_token import make_token
from sqlalchemy import event, func, select

SECRET = b"casegate-test-thread-secret"
T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
ROUTING = {
    "support@localhost": RoutingAddress(address="support@localhost"),
    "vip@example.com": RoutingAddress(address="vip@example.com", origin="Web", priority="High", type="Problem",
                                      owner="queue:VIP"),
}
ENTRIES = [
    AssignmentEntry(name="refunds", subject_contains=["refund"], owner="queue:Billing"),
    AssignmentEntry(name="acme", account="Acme Corp", owner="user:Lead@Example.com"),
]
OWNER_REFS = ["queue:Support", "queue:VIP", "queue:Billing", "user:Lead@Example.com"]


SQLITE_ONLY = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
"""For decisions made in memory (matching, rules): the database adds nothing, so one is enough."""


# -- fixtures -------------------------------------------------------------------------------------
@dataclass
class Store:
    db: Database
    service: CaseService
    owners: dict[str, str]

    def with_rules(self, **rules: Any) -> CaseService:
        policy = self.service.policy
        return CaseService(self.db, CasePolicy(policy.routing, policy.rules.model_copy(update=rules),
                                               policy.owner_ids, policy.thread_secret))

    async def record(self, *messages: InboundMessage, now: datetime = T0) -> list[Outcome]:
        return await self.service.record_messages(list(messages), now=now)

    async def case(self, number: str) -> dict[str, Any]:
        return await show_case(self.db, number)

    async def scalar(self, query: Any) -> Any:
        async with self.db.session() as s:
            return (await s.execute(query)).scalar()

    async def rows(self, query: Any) -> list[Any]:
        async with self.db.session() as s:
            return list((await s.execute(query)).all())

    async def add(self, *objects: Any) -> None:
        async with self.db.session() as s, s.begin():
            for o in objects:
                s.add(o)
                await s.flush()


@pytest.fixture
async def store(db: Database) -> Store:
    owners = await ensure_owners(db, OWNER_REFS)
    policy = CasePolicy(ROUTING, RulesSettings(assignment=ENTRIES), owners, SECRET)
    return Store(db, CaseService(db, policy), owners)


def msg(subject: str = "Printer on fire", text: str = "It is on fire.", *, sender: str = "ada@example.org",
        name: str | None = "Ada Customer", to: Sequence[str] = ("support@localhost",), msgid: str | None = None,
        in_reply_to: Sequence[str] = (), references: Sequence[str] = (), channel: str = "email",
        external_id: str | None = None) -> InboundMessage:
    """An inbound message as the worker hands it over (Message-ID = external id unless told)."""
    msgid = msgid or f"<{uuid.uuid4().hex}@example.org>"
    return InboundMessage(
        channel=channel, external_id=external_id or msgid, envelope_id=str(uuid.uuid4()), received_at=T0,
        conversation_key=sender.lower(), sender_email=sender, sender_name=name, recipients=tuple(to),
        subject=subject, text=text, message_id=msgid, in_reply_to=tuple(in_reply_to),
        references=tuple(references), to_address=", ".join(to),
    )


def feed_kinds(case: dict[str, Any]) -> list[str]:
    return [f["Type"] for f in case["Feed"]]


# -- opening a case -------------------------------------------------------------------------------
async def test_new_message_opens_a_case_with_the_salesforce_fields(store: Store) -> None:
    m = msg("Printer on fire", "It is on fire.", sender="ada@example.org", name="Ada Customer")
    [out] = await store.record(m)
    assert (out.outcome, out.rule, out.case_number) == ("created", "new", "00001000")
    assert out.case_id is not None and out.case_id.startswith("500") and len(out.case_id) == 18

    case = await store.case("00001000")
    assert case["attributes"] == {"type": "Case"} and case["Id"] == out.case_id
    assert (case["Subject"], case["Description"]) == ("Printer on fire", "It is on fire.")
    assert (case["Status"], case["IsClosed"], case["ClosedDate"]) == ("New", False, None)
    assert (case["Origin"], case["Priority"], case["Type"]) == ("Email", "Medium", None)
    assert case["OwnerId"] == store.owners["queue:Support"] and case["OwnerId"].startswith("00G")
    assert (case["SuppliedEmail"], case["SuppliedName"]) == ("ada@example.org", "Ada Customer")
    assert case["RoutingAddress"] == "support@localhost"
    assert case["CreatedDate"] == case["LastModifiedDate"] == T0.isoformat()

    contacts = await store.rows(select(Contact.Id, Contact.FirstName, Contact.LastName, Contact.Email))
    assert [tuple(c) for c in contacts] == [(case["ContactId"], "Ada", "Customer", "ada@example.org")]
    assert case["ContactId"].startswith("003")

    [email] = case["EmailMessages"]
    assert case["SourceId"] == email["Id"] and email["Id"].startswith("02s")
    assert (email["ParentId"], email["Incoming"], email["Status"]) == (case["Id"], True, "0")
    assert (email["MessageIdentifier"], email["FromAddress"], email["FromName"]) == (
        m.message_id, "ada@example.org", "Ada Customer")
    assert feed_kinds(case) == ["CaseCreated", "AssignmentRule", "EmailMessageEvent"]
    # only the entry a rule decided names it: the owner (no assignment entry matched: the default owner)
    assert [f["Rule"] for f in case["Feed"]] == [None, "assignment.default_owner", None]

    ledger = await store.rows(select(ProcessedMessage.Channel, ProcessedMessage.ExternalId, ProcessedMessage.Outcome,
                                     ProcessedMessage.Rule, ProcessedMessage.CaseId, ProcessedMessage.EmailMessageId))
    assert [tuple(r) for r in ledger] == [("email", m.external_id, "created", "new", case["Id"], email["Id"])]


@SQLITE_ONLY
async def test_case_numbers_count_up_in_message_order(store: Store) -> None:
    outs = await store.record(msg("one"), msg("two", sender="bob@example.org"), msg("three", sender="cy@example.org"))
    assert [o.case_number for o in outs] == ["00001000", "00001001", "00001002"]
    [later] = await store.record(msg("four", sender="di@example.org"), now=T0 + timedelta(seconds=1))
    assert later.case_number == "00001003"


async def test_routing_address_gives_origin_priority_type_and_owner(store: Store) -> None:
    [out] = await store.record(msg("Cannot log in", to=("vip@example.com",)))
    case = await store.case(out.case_number or "")
    assert (case["Origin"], case["Priority"], case["Type"]) == ("Web", "High", "Problem")
    assert case["RoutingAddress"] == "vip@example.com"
    assert case["OwnerId"] == store.owners["queue:VIP"]
    [rule] = [f for f in case["Feed"] if f["Type"] == "AssignmentRule"]
    assert (rule["Field"], rule["NewValue"], rule["Rule"]) == ("OwnerId", "queue:VIP", "assignment.source_owner")
    assert "no assignment entry matched" in rule["Body"]


# -- threading ------------------------------------------------------------------------------------
async def test_reply_threads_by_in_reply_to(store: Store) -> None:
    first = msg("Printer on fire")
    [opened] = await store.record(first)
    reply = msg("Re: Printer on fire", "Still burning.", in_reply_to=[first.message_id or ""],
                references=[first.message_id or ""])
    [out] = await store.record(reply, now=T0 + timedelta(minutes=1))
    assert (out.outcome, out.rule, out.case_id, out.case_number) == (
        "threaded", "in-reply-to", opened.case_id, "00001000")
    assert await count_cases(store.db) == 1
    case = await store.case("00001000")
    assert [e["MessageIdentifier"] for e in case["EmailMessages"]] == [first.message_id, reply.message_id]
    [threading] = [f for f in case["Feed"] if f["Type"] == "ThreadingRule"]
    assert threading["Body"] == "email message threaded by in-reply-to"
    assert threading["RelatedRecordId"] == case["EmailMessages"][1]["Id"]
    assert case["LastModifiedDate"] == (T0 + timedelta(minutes=1)).isoformat()
    assert case["SourceId"] == case["EmailMessages"][0]["Id"]  # the case still points at its first message


async def test_reply_threads_by_references_only(store: Store) -> None:
    first = msg("Printer on fire")
    [opened] = await store.record(first)
    reply = msg("Re: Printer on fire", references=["<never-seen@elsewhere.test>", first.message_id or ""])
    [out] = await store.record(reply)
    assert (out.outcome, out.rule, out.case_id) == ("threaded", "references", opened.case_id)


@SQLITE_ONLY
async def test_reply_to_a_reply_lands_on_the_same_case(store: Store) -> None:
    first = msg("Printer on fire")
    reply = msg("Re: Printer on fire", in_reply_to=[first.message_id or ""])
    [opened] = await store.record(first)
    await store.record(reply)
    [out] = await store.record(msg("Re: Re: Printer on fire", in_reply_to=[reply.message_id or ""]))
    assert (out.outcome, out.case_id) == ("threaded", opened.case_id)


@pytest.mark.parametrize("same_batch", [False, True], ids=["two-batches", "one-batch"])
async def test_two_replies_to_a_ghost_parent_meet_on_one_case(store: Store, same_batch: bool) -> None:
    ghost = "<the-original-we-never-got@example.org>"
    a = msg("Re: outage", "me too", sender="ada@example.org", in_reply_to=[ghost], references=[ghost])
    b = msg("Re: outage", "and me", sender="bob@example.org", in_reply_to=[ghost], references=[ghost])
    if same_batch:
        first, second = await store.record(a, b)
    else:
        [first] = await store.record(a)
        [second] = await store.record(b)
    assert (first.outcome, second.outcome) == ("created", "threaded")
    assert second.case_id == first.case_id and second.case_number == "00001000"
    assert await count_cases(store.db) == 1


async def test_thread_token_in_the_subject_threads_the_message(store: Store) -> None:
    [opened] = await store.record(msg("Printer on fire"))
    token = make_token(SECRET, opened.case_id or "")
    [out] = await store.record(msg(f"Re: Printer on fire [{token}]", sender="colleague@example.org"))
    assert (out.outcome, out.rule, out.case_id) == ("threaded", "token", opened.case_id)


@SQLITE_ONLY
async def test_thread_token_in_the_body_threads_the_message(store: Store) -> None:
    [opened] = await store.record(msg("Printer on fire"))
    token = make_token(SECRET, opened.case_id or "")
    [out] = await store.record(msg("new subject", f"hello\n\n{token}\n"))
    assert (out.outcome, out.rule, out.case_id) == ("threaded", "token", opened.case_id)


@SQLITE_ONLY
async def test_thread_token_wins_over_in_reply_to(store: Store) -> None:
    a = msg("case A")
    [case_a, case_b] = await store.record(a, msg("case B", sender="bob@example.org"))
    token_b = make_token(SECRET, case_b.case_id or "")
    [out] = await store.record(msg(f"Re: {token_b}", in_reply_to=[a.message_id or ""]))
    assert (out.rule, out.case_id) == ("token", case_b.case_id) and out.case_id != case_a.case_id


@SQLITE_ONLY
async def test_forged_tokens_and_typed_case_numbers_do_not_attach(store: Store) -> None:
    [opened] = await store.record(msg("Printer on fire"))
    case_id = opened.case_id or ""
    attempts = [
        msg(f"Re: {make_token(b'some-other-installation', case_id)}", sender="mallory@evil.test"),
        msg("Re: case 00001000", "about case 00001000", sender="mallory@evil.test"),
        msg(f"Re: {case_id}", f"case {case_id}", sender="mallory@evil.test"),
        msg(f"Re: thread::{case_id}.AAAAAAAAAAAAAAAA::", sender="mallory@evil.test"),
    ]
    outs = await store.record(*attempts)
    assert [(o.outcome, o.rule) for o in outs] == [("created", "new")] * len(attempts)
    assert opened.case_id not in {o.case_id for o in outs}
    assert len((await store.case("00001000"))["EmailMessages"]) == 1


@SQLITE_ONLY
async def test_valid_token_of_a_case_that_does_not_exist_opens_a_new_case(store: Store) -> None:
    [out] = await store.record(msg(f"Re: {make_token(SECRET, '500' + 'x' * 15)}"))
    assert (out.outcome, out.case_number) == ("created", "00001000")


async def test_reply_in_the_same_batch_as_its_parent_threads_onto_the_new_case(store: Store) -> None:
    parent = msg("Printer on fire")
    reply = msg("Re: Printer on fire", in_reply_to=[parent.message_id or ""])
    unrelated = msg("Invoice question", sender="bob@example.org")
    outs = await store.record(parent, reply, unrelated)
    assert [(o.outcome, o.rule, o.case_number) for o in outs] == [
        ("created", "new", "00001000"), ("threaded", "in-reply-to", "00001000"), ("created", "new", "00001001")]
    assert outs[1].case_id == outs[0].case_id
    case = await store.case("00001000")
    assert [e["MessageIdentifier"] for e in case["EmailMessages"]] == [parent.message_id, reply.message_id]


# -- idempotency ----------------------------------------------------------------------------------
async def test_same_message_twice_in_one_batch_is_one_message(store: Store) -> None:
    m = msg("Printer on fire")
    again = msg("Printer on fire", msgid=m.message_id)
    first, second = await store.record(m, again)
    assert first.outcome == "created"
    assert (second.outcome, second.external_id) == ("duplicate", m.external_id)
    assert await count_cases(store.db) == 1
    assert await store.scalar(select(func.count()).select_from(EmailMessage)) == 1
    assert await store.scalar(select(func.count()).select_from(ProcessedMessage)) == 1


async def test_same_message_in_a_later_batch_is_a_duplicate(store: Store) -> None:
    m = msg("Printer on fire")
    await store.record(m)
    [out] = await store.record(msg("Printer on fire", msgid=m.message_id), now=T0 + timedelta(hours=1))
    assert out.outcome == "duplicate"
    assert await count_cases(store.db) == 1
    assert await store.scalar(select(func.count()).select_from(EmailMessage)) == 1
    assert (await store.case("00001000"))["LastModifiedDate"] == T0.isoformat()
    assert await store.scalar(select(Counter.Value)) == 1000  # no number was used up


async def test_a_duplicate_reply_is_not_threaded_twice(store: Store) -> None:
    first = msg("Printer on fire")
    reply = msg("Re: Printer on fire", in_reply_to=[first.message_id or ""])
    await store.record(first, reply)
    outs = await store.record(reply, reply)
    assert [o.outcome for o in outs] == ["duplicate", "duplicate"]
    assert len((await store.case("00001000"))["EmailMessages"]) == 2


async def test_same_external_id_on_another_channel_is_another_message(store: Store) -> None:
    m = msg("Printer on fire", external_id="SM123")
    web = msg("Printer on fire", channel="web", external_id="SM123", msgid="<web-SM123@example.org>")
    outs = await store.record(m, web)
    assert [o.outcome for o in outs] == ["created", "created"]


# -- status ---------------------------------------------------------------------------------------
async def test_change_status_closes_and_reopens_with_closed_date(store: Store) -> None:
    await store.record(msg("Printer on fire"))
    t1, t2 = T0 + timedelta(hours=1), T0 + timedelta(hours=2)
    await store.service.change_status("00001000", "Closed", now=t1)
    case = await store.case("00001000")
    assert (case["Status"], case["IsClosed"], case["ClosedDate"]) == ("Closed", True, t1.isoformat())
    await store.service.change_status("00001000", "Closed", now=t2)  # closing again keeps the first date
    assert (await store.case("00001000"))["ClosedDate"] == t1.isoformat()
    await store.service.change_status("00001000", "On Hold", now=t2)
    case = await store.case("00001000")
    assert (case["Status"], case["IsClosed"], case["ClosedDate"]) == ("On Hold", False, None)
    changes = [(f["Field"], f["OldValue"], f["NewValue"]) for f in case["Feed"] if f["Type"] == "TrackedChange"]
    assert changes == [("Status", "New", "Closed"), ("Status", "Closed", "Closed"), ("Status", "Closed", "On Hold")]


async def test_change_status_updates_last_modified_date(store: Store) -> None:
    await store.record(msg("Printer on fire"))
    t1 = T0 + timedelta(hours=1)
    await store.service.change_status("00001000", "Closed", now=t1)
    assert (await store.case("00001000"))["LastModifiedDate"] == t1.isoformat()


@SQLITE_ONLY
async def test_change_status_of_an_unknown_case_or_to_an_unknown_status(store: Store) -> None:
    with pytest.raises(CaseNotFound):
        await store.service.change_status("00009999", "Closed")
    await store.record(msg("Printer on fire"))
    with pytest.raises(ValueError, match="unknown case status"):
        await store.service.change_status("00001000", "Resolved-ish")
    assert (await store.case("00001000"))["Status"] == "New"


async def test_reply_to_a_closed_case_reopens_it(store: Store) -> None:
    first = msg("Printer on fire")
    await store.record(first)
    await store.service.change_status("00001000", "Closed", now=T0 + timedelta(hours=1))
    t2 = T0 + timedelta(hours=2)
    [out] = await store.record(msg("Re: Printer on fire", "It is back.", in_reply_to=[first.message_id or ""]),
                               now=t2)
    assert (out.outcome, out.case_number) == ("threaded", "00001000")
    case = await store.case("00001000")
    assert (case["Status"], case["IsClosed"], case["ClosedDate"]) == ("Working", False, None)
    assert case["LastModifiedDate"] == t2.isoformat()
    reopen = case["Feed"][-3:]
    assert [f["Type"] for f in reopen] == ["TrackedChange", "EmailMessageEvent", "ThreadingRule"]
    assert (reopen[0]["Field"], reopen[0]["OldValue"], reopen[0]["NewValue"]) == ("Status", "Closed", "Working")
    assert reopen[0]["Body"] == "customer wrote again (email); policy reopen_within_days"
    assert reopen[2]["Body"] == ("email message threaded by in-reply-to; "
                                 "closed-case policy reopen_within_days: reopened")
    # the decision's two entries name the rule that reopened the case; the message's entry names none
    assert [f["Rule"] for f in reopen] == ["closed_case.reopen_within_days", None, "closed_case.reopen_within_days"]
    assert reopen[0]["CreatedDate"] == t2.isoformat()


@SQLITE_ONLY
async def test_reopen_status_comes_from_the_rules(store: Store) -> None:
    first = msg("Printer on fire")
    await store.record(first)
    await store.service.change_status("00001000", "Closed", now=T0 + timedelta(hours=1))
    service = store.with_rules(reopen_status="Escalated")
    await service.record_messages([msg("Re: again", in_reply_to=[first.message_id or ""])])
    case = await store.case("00001000")
    assert (case["Status"], case["IsClosed"], case["ClosedDate"]) == ("Escalated", False, None)


async def test_one_batch_reopens_one_case_and_touches_another(store: Store) -> None:
    a, b = msg("case A"), msg("case B", sender="bob@example.org")
    await store.record(a, b)
    await store.service.change_status("00001000", "Closed", now=T0 + timedelta(hours=1))
    t2 = T0 + timedelta(hours=2)
    outs = await store.record(msg("Re: A", in_reply_to=[a.message_id or ""]),
                              msg("Re: B", sender="bob@example.org", in_reply_to=[b.message_id or ""]), now=t2)
    assert [(o.outcome, o.case_number) for o in outs] == [("threaded", "00001000"), ("threaded", "00001001")]
    case_a, case_b = await store.case("00001000"), await store.case("00001001")
    assert (case_a["Status"], case_a["IsClosed"], case_a["LastModifiedDate"]) == ("Working", False, t2.isoformat())
    assert (case_b["Status"], case_b["IsClosed"], case_b["LastModifiedDate"]) == ("New", False, t2.isoformat())
    assert "TrackedChange" not in feed_kinds(case_b)


@SQLITE_ONLY
async def test_two_replies_in_one_batch_reopen_a_closed_case_once(store: Store) -> None:
    first = msg("Printer on fire")
    await store.record(first)
    await store.service.change_status("00001000", "Closed", now=T0 + timedelta(hours=1))
    await store.record(msg("Re: 1", in_reply_to=[first.message_id or ""]),
                       msg("Re: 2", in_reply_to=[first.message_id or ""]), now=T0 + timedelta(hours=2))
    case = await store.case("00001000")
    changes = [(f["OldValue"], f["NewValue"]) for f in case["Feed"] if f["Type"] == "TrackedChange"]
    assert changes == [("New", "Closed"), ("Closed", "Working")]


CUSTOM_CASE = CaseSettings(
    statuses=[StatusValue(name="Received"), StatusValue(name="In Progress"), StatusValue(name="Reopened"),
              StatusValue(name="Waiting on Customer", stops_clock=True), StatusValue(name="Resolved", closed=True)],
    default_status="Received", priorities=["P1", "P2", "P3"], default_priority="P3")
"""A `[case]` section sharing no Status or Priority with the defaults."""


async def test_configured_statuses_open_close_and_reopen_mail_cases(store: Store) -> None:
    policy = CasePolicy(ROUTING, RulesSettings(reopen_status="Reopened"), store.owners, SECRET, case=CUSTOM_CASE)
    service = CaseService(store.db, policy)
    first = msg("Printer on fire")
    [out] = await service.record_messages([first], now=T0)
    case = await store.case("00001000")
    assert (case["Status"], case["Priority"], case["IsClosed"], case["IsStopped"]) == ("Received", "P3", False, False)

    t1, t2, t3 = (T0 + timedelta(hours=h) for h in (1, 2, 3))
    await service.change_status("00001000", "Waiting on Customer", now=t1)
    case = await store.case("00001000")
    assert (case["IsStopped"], case["StopStartDate"]) == (True, t1.isoformat())  # its status stops the clock
    await service.change_status("00001000", "Resolved", now=t2)
    case = await store.case("00001000")
    assert (case["Status"], case["IsClosed"], case["ClosedDate"], case["IsStopped"]) == (
        "Resolved", True, t2.isoformat(), False)
    with pytest.raises(ValueError, match="unknown case status 'Closed'"):  # the default values are not these
        await service.change_status("00001000", "Closed", now=t2)

    [again] = await service.record_messages([msg("Re: Printer on fire", in_reply_to=[first.message_id or ""])],
                                            now=t3)
    assert (again.outcome, again.case_id) == ("threaded", out.case_id)
    case = await store.case("00001000")
    assert (case["Status"], case["IsClosed"], case["ClosedDate"]) == ("Reopened", False, None)
    reopened = [f for f in case["Feed"] if f["Type"] == "TrackedChange"][-1]
    assert (reopened["OldValue"], reopened["NewValue"], reopened["Rule"]) == (
        "Resolved", "Reopened", "closed_case.reopen_within_days")


@SQLITE_ONLY
async def test_a_new_case_starting_in_a_status_that_stops_the_clock_is_stopped(store: Store) -> None:
    case_settings = CUSTOM_CASE.model_copy(update={"default_status": "Waiting on Customer"})
    service = CaseService(store.db, CasePolicy(ROUTING, RulesSettings(), store.owners, SECRET, case=case_settings))
    await service.record_messages([msg("Printer on fire")], now=T0)
    case = await store.case("00001000")
    assert (case["Status"], case["IsStopped"], case["StopStartDate"]) == ("Waiting on Customer", True, T0.isoformat())


async def test_agents_replies_do_not_count_against_the_acknowledgement_limit(store: Store) -> None:
    policy = CasePolicy(ROUTING, RulesSettings(), store.owners, SECRET,
                        LoopSettings(acknowledgements_per_address=2), OutboundSettings(enabled=True))
    service = CaseService(store.db, policy)
    [first] = await service.record_messages([msg("Printer on fire")], now=T0)
    replies = ReplyPolicy(SECRET, routing=tuple(ROUTING))
    for n in range(3):  # three answers from an agent to the same customer within the hour
        await store.db.transaction(lambda c, n=n: queue_email_reply(
            c, replies, first.case_id or "", to=None, text_body=f"Answer {n}", actor_id=None,
            now=T0 + timedelta(minutes=n + 1)))
    later = T0 + timedelta(minutes=10)
    await service.record_messages([msg("Scanner on fire"), msg("Fax on fire")], now=later)
    kinds = await store.rows(select(Outbox.Kind, func.count()).group_by(Outbox.Kind).order_by(Outbox.Kind))
    assert kinds == [("acknowledgement", 2), ("reply", 3)]  # the second case acknowledged, the third held back
    withheld = await store.case("00001002")
    [said] = [f for f in withheld["Feed"] if f["Type"] == "OutboundMail"]
    assert said["Rule"] == "loops.acknowledgement_limit"


# -- assignment -----------------------------------------------------------------------------------
async def test_matching_assignment_entry_sets_its_queue_and_the_feed_names_it(store: Store) -> None:
    [out] = await store.record(msg("Refund for order 42"))
    case = await store.case(out.case_number or "")
    assert case["OwnerId"] == store.owners["queue:Billing"]
    [rule] = [f for f in case["Feed"] if f["Type"] == "AssignmentRule"]
    assert (rule["Field"], rule["NewValue"], rule["Rule"]) == ("OwnerId", "queue:Billing", "assignment.entries")
    assert rule["Body"] == "assignment rule entry 'refunds' matched"


@SQLITE_ONLY
async def test_assignment_entry_wins_over_the_routing_owner(store: Store) -> None:
    [out] = await store.record(msg("REFUND please", to=("vip@example.com",)))
    assert (await store.case(out.case_number or ""))["OwnerId"] == store.owners["queue:Billing"]


@SQLITE_ONLY
async def test_routing_owner_applies_when_no_entry_matches(store: Store) -> None:
    support, vip = await store.record(msg("Hello"), msg("Hello", sender="bob@example.org", to=("vip@example.com",)))
    assert (await store.case(support.case_number or ""))["OwnerId"] == store.owners["queue:Support"]
    assert (await store.case(vip.case_number or ""))["OwnerId"] == store.owners["queue:VIP"]


async def test_user_owner_and_account_criterion(store: Store) -> None:
    await store.add(Account(Id="001000000000000AAA", Name="Acme Corp", CreatedDate=T0),
                    Contact(Id="003000000000000AAA", AccountId="001000000000000AAA", LastName="Lovelace",
                            Email="ada@acme.test", EmailKey="ada@acme.test", CreatedDate=T0))
    [out] = await store.record(msg("Hello", sender="ada@acme.test"))
    case = await store.case(out.case_number or "")
    assert case["OwnerId"] == store.owners["user:Lead@Example.com"] and case["OwnerId"].startswith("005")
    assert (case["ContactId"], case["AccountId"]) == ("003000000000000AAA", "001000000000000AAA")
    [rule] = [f for f in case["Feed"] if f["Type"] == "AssignmentRule"]
    assert (rule["Body"], rule["Rule"]) == ("assignment rule entry 'acme' matched", "assignment.entries")


# -- contacts -------------------------------------------------------------------------------------
async def test_existing_contact_is_linked_case_insensitively(store: Store) -> None:
    await store.add(Contact(Id="003000000000000BBB", FirstName="Ada", LastName="Lovelace", Email="Ada@Example.org",
                            EmailKey="ada@example.org", CreatedDate=T0))
    [out] = await store.record(msg("Hello", sender="ADA@Example.ORG"))
    case = await store.case(out.case_number or "")
    assert case["ContactId"] == "003000000000000BBB"
    assert case["SuppliedEmail"] == "ADA@Example.ORG"
    assert await store.scalar(select(func.count()).select_from(Contact)) == 1


async def test_address_shared_by_two_contacts_links_none(store: Store) -> None:
    await store.add(
        Contact(Id="003000000000000CC1", LastName="One", Email="shared@example.org", EmailKey="shared@example.org",
                CreatedDate=T0),
        Contact(Id="003000000000000CC2", LastName="Two", Email="shared@example.org", EmailKey="shared@example.org",
                CreatedDate=T0),
    )
    [out] = await store.record(msg("Hello", sender="Shared@example.org", name="Who Knows"))
    case = await store.case(out.case_number or "")
    assert (case["ContactId"], case["AccountId"]) == (None, None)
    assert (case["SuppliedEmail"], case["SuppliedName"]) == ("Shared@example.org", "Who Knows")
    assert await store.scalar(select(func.count()).select_from(Contact)) == 2


async def test_a_new_sender_becomes_one_contact_across_messages_and_batches(store: Store) -> None:
    a, b = await store.record(msg("one", sender="new@example.org", name="New Person"),
                              msg("two", sender="NEW@example.org", name="New Person"))
    [c] = await store.record(msg("three", sender="new@example.org"), now=T0 + timedelta(hours=1))
    ids = {(await store.case(o.case_number or ""))["ContactId"] for o in (a, b, c)}
    assert len(ids) == 1 and None not in ids
    rows = await store.rows(select(Contact.FirstName, Contact.LastName, Contact.Email, Contact.EmailKey))
    assert [tuple(r) for r in rows] == [("New", "Person", "new@example.org", "new@example.org")]


@SQLITE_ONLY
async def test_sender_without_a_name_gets_the_local_part_as_last_name(store: Store) -> None:
    await store.record(msg("Hello", sender="someone@example.org", name=None))
    rows = await store.rows(select(Contact.FirstName, Contact.LastName))
    assert [tuple(r) for r in rows] == [(None, "someone")]


# -- field limits ---------------------------------------------------------------------------------
async def test_long_subject_and_body_are_cut_to_the_case_field_lengths(store: Store) -> None:
    subject, body = "S" * 299 + "!", "B" * 39_999 + "!"
    [out] = await store.record(msg(subject, body))
    case = await store.case(out.case_number or "")
    assert case["Subject"] == subject[:255] and len(case["Subject"]) == 255
    assert case["Description"] == body[:32_000] and len(case["Description"]) == 32_000
    [email] = case["EmailMessages"]
    assert (email["Subject"], email["TextBody"]) == (subject, body)  # the message keeps them whole


async def test_long_sender_name_is_cut_and_the_message_is_stored(store: Store) -> None:
    """A From display name longer than EmailMessage.FromName (1000) must not make the message unstorable."""
    name = "N" * 1200
    [out] = await store.record(msg("Hello", name=name))
    case = await store.case(out.case_number or "")
    assert case["SuppliedName"] == name[:80]
    from_name = case["EmailMessages"][0]["FromName"]
    assert name.startswith(from_name) and 0 < len(from_name) <= 1000


async def test_a_message_the_database_refuses_is_never_a_temporary_error(store: Store) -> None:
    """A body with a NUL character (PostgreSQL text cannot hold it) must be stored or refused for good
    (PermanentStoreError, so the worker dead-letters it) — a TemporaryStoreError makes the worker retry the
    same batch for ever and stops the line."""
    try:
        [out] = await store.record(msg("Hello", "before\x00after"))
    except PermanentStoreError:
        return
    except TemporaryStoreError as e:
        pytest.fail(f"a message that can never be written was reported as temporary: {e}")
    assert out.outcome == "created"


async def test_redelivered_message_with_a_very_long_message_id_is_a_duplicate(store: Store) -> None:
    long_id = "<" + "m" * 800 + "@example.org>"
    [first] = await store.record(msg("Hello", msgid=long_id))
    assert first.outcome == "created"
    [again] = await store.record(msg("Hello", msgid=long_id), now=T0 + timedelta(minutes=5))
    assert again.outcome == "duplicate"
    assert await count_cases(store.db) == 1


# -- case numbers under concurrency ---------------------------------------------------------------
async def test_concurrent_batches_get_200_distinct_gapless_case_numbers(store: Store) -> None:
    async def batch(i: int) -> list[Outcome]:
        return await store.service.record_messages(
            [msg(f"question {i}-{j}", sender=f"c{i}@example.org") for j in range(20)])

    in_use = peak = 0

    def checked_out(*_: Any) -> None:
        nonlocal in_use, peak
        in_use += 1
        peak = max(peak, in_use)

    def checked_in(*_: Any) -> None:
        nonlocal in_use
        in_use -= 1

    pool = (store.db.sync_engine or store.db.engine.sync_engine).pool  # the engine transaction() uses
    event.listen(pool, "checkout", checked_out)
    event.listen(pool, "checkin", checked_in)
    try:
        results = await asyncio.gather(*(batch(i) for i in range(10)))
    finally:
        event.remove(pool, "checkout", checked_out)
        event.remove(pool, "checkin", checked_in)
    assert peak > 1, "the batches never overlapped: nothing concurrent was tested"
    numbers = [o.case_number for outs in results for o in outs]
    assert all(o.outcome == "created" for outs in results for o in outs)
    assert len(numbers) == len(set(numbers)) == 200
    assert sorted(n or "" for n in numbers) == [f"{n:08d}" for n in range(1000, 1200)]
    for outs in results:  # one counter update per batch: each batch holds a contiguous run
        mine = sorted(int(o.case_number or 0) for o in outs)
        assert mine == list(range(mine[0], mine[0] + 20))
    assert await count_cases(store.db) == 200
    assert await store.scalar(select(Counter.Value)) == 1199


# -- reading a case back --------------------------------------------------------------------------
async def test_show_case_gives_messages_and_feed_in_order(store: Store) -> None:
    first = msg("Printer on fire")
    reply = msg("Re: Printer on fire", in_reply_to=[first.message_id or ""])
    second_reply = msg("Re: Re: Printer on fire", references=[first.message_id or "", reply.message_id or ""])
    await store.record(first)
    await store.record(reply, now=T0 + timedelta(minutes=1))
    await store.service.change_status("00001000", "Closed", now=T0 + timedelta(minutes=2))
    await store.record(second_reply, now=T0 + timedelta(minutes=3))

    case = await store.case("00001000")
    assert [e["MessageIdentifier"] for e in case["EmailMessages"]] == [
        first.message_id, reply.message_id, second_reply.message_id]
    assert all(e["attributes"] == {"type": "EmailMessage"} for e in case["EmailMessages"])
    assert [e["InReplyTo"] for e in case["EmailMessages"]] == [None, first.message_id, None]
    assert case["EmailMessages"][2]["References"] == f"{first.message_id} {reply.message_id}"
    assert [(f["Type"], f["NewValue"]) for f in case["Feed"]] == [
        ("CaseCreated", None),
        ("AssignmentRule", "queue:Support"),
        ("EmailMessageEvent", None),
        ("EmailMessageEvent", None),
        ("ThreadingRule", None),
        ("TrackedChange", "Closed"),
        ("TrackedChange", "Working"),
        ("EmailMessageEvent", None),
        ("ThreadingRule", None),
    ]
    assert case["Feed"][-1]["Body"] == ("email message threaded by references; "
                                        "closed-case policy reopen_within_days: reopened")
    reopening = "closed_case.reopen_within_days"  # a status set by hand, or a reply to an open case, names none
    assert [f["Rule"] for f in case["Feed"]] == [None, "assignment.default_owner", None, None, None, None,
                                                 reopening, None, reopening]
    assert case["Attachments"] == [] and case["CaseComments"] == []
    with pytest.raises(CaseNotFound):
        await store.case("00000001")
