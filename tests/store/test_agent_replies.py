"""Agents' replies in the store, on SQLite and PostgreSQL: an email reply queued as a MIME mail with the
thread token, In-Reply-To and bounded References, one outbox row per recipient; a messaging reply queued
on the route of the customer's last message; refusals that write nothing; the reply outbox's claims;
delivery statuses that only move forward, including one that arrives before its reply was recorded as
sent; and migration 0010 giving older entries their Source."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.policy import default as default_policy
from typing import Any, TypeVar

import pytest
from casegate.config import RoutingAddress, RulesSettings
from casegate.ingest.replies.delivery_status import advance_status
from casegate.store.agent_replies import (
    DeliveryUpdate,
    OutgoingReply,
    ReplyPolicy,
    ReplyRefusedError,
    ReplyTemplate,
    apply_delivery_statuses,
    claim_due_replies,
    mark_reply_failed,
    mark_reply_sent,
    queue_conversation_reply,
    queue_email_reply,
    settle_receipts,
)
from casegate.store.case_policy import CasePolicy
from casegate.store.case_service import CaseService
from casegate.store.database import Database
from casegate.store.inbound import InboundMessage
from casegate.store.migrate import downgrade, upgrade
from casegate.store.models import (
    CaseFeed,
    ConversationEntry,
    DeliveryReceipt,
    EmailMessage,
    EmailStatus,
    Outbox,
    ReplyOutbox,
    ThreadReference,
    User,
)
from casegate.store.owners import ensure_owners
from casegate.store.thread_token import make_token
from sqlalchemy import Connection, func, insert, select, text

T = TypeVar("T")
SECRET = b"reply-test-secret"
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
ROUTING = ("support@example.com", "billing@example.com")
POLICY = ReplyPolicy(SECRET, "cases.example.net", ROUTING)
AGENT = "005000000000001AAA"
OURS, CUSTOMER = "+15550009999", "+447700900123"


async def seed(db: Database) -> CaseService:
    owners = await ensure_owners(db, ["queue:Support"])
    routes = {a: RoutingAddress(address=a, auto_acknowledge=False) for a in ROUTING}
    await db.transaction(lambda c: c.execute(insert(User).values(
        Id=AGENT, Name="Ann Agent", Email="ann@example.com", IsActive=True, Role="agent", CreatedDate=T0)))
    return CaseService(db, CasePolicy(routes, RulesSettings(), owners, SECRET))


def mail(subject: str, msgid: str, *, in_reply_to: str | None = None, to: str = "billing@example.com",
         references: tuple[str, ...] = ()) -> InboundMessage:
    return InboundMessage(
        channel="email", external_id=msgid, envelope_id=str(uuid.uuid4()), received_at=T0,
        conversation_key="ada@example.org", sender_email="ada@example.org", sender_name="Ada", recipients=(to,),
        subject=subject, text="text", message_id=msgid, to_address=to,
        in_reply_to=(in_reply_to,) if in_reply_to else (), references=references)


def sms(body: str, *, at: datetime = T0, channel: str = "sms", source: str = "twilio", phone: str = CUSTOMER,
        **more: Any) -> InboundMessage:
    return InboundMessage(
        channel=channel, external_id=f"SM{uuid.uuid4().hex}", envelope_id=str(uuid.uuid4()), received_at=at,
        conversation_key=f"{channel}:{phone}", sender_email=None, sender_phone=phone, recipients=(OURS,),
        text=body, source=source, **more)


async def open_case(service: CaseService, *messages: InboundMessage) -> str:
    outcomes = await service.record_messages(list(messages), now=T0)
    assert outcomes[0].case_id is not None
    return outcomes[0].case_id


async def rows(db: Database, *columns: Any, where: Any = None) -> list[tuple[Any, ...]]:
    stmt = select(*columns) if where is None else select(*columns).where(where)
    return await db.transaction(lambda c: [tuple(r) for r in c.execute(stmt)])


async def counts(db: Database) -> tuple[int, ...]:
    def count(c: Connection) -> tuple[int, ...]:
        return tuple(int(c.execute(select(func.count()).select_from(m)).scalar_one())
                     for m in (EmailMessage, Outbox, ConversationEntry, ReplyOutbox, CaseFeed))

    return await db.transaction(count)


# -- email -------------------------------------------------------------------------------------------
async def test_an_email_reply_is_a_mime_mail_with_the_token_and_the_conversations_ids(db: Database) -> None:
    service = await seed(db)
    case_id = await open_case(service, mail("Invoice charged twice", "<first@example.org>"))
    await service.record_messages([mail("Re: Invoice charged twice", "<second@example.org>",
                                        in_reply_to="<first@example.org>",
                                        references=("<first@example.org>",))], now=T0)
    email_id = await db.transaction(lambda c: queue_email_reply(
        c, POLICY, case_id, to=None, cc="Bob <bob@example.org>; carol@example.org", bcc="audit@example.net",
        text_body="We refunded the second charge.", html_body="<p>We refunded the second charge.</p>",
        actor_id=AGENT, now=T0 + timedelta(hours=1)))

    [(status, incoming, sender, to, cc, bcc, subject, msgid, in_reply_to, refs)] = await rows(
        db, EmailMessage.Status, EmailMessage.Incoming, EmailMessage.FromAddress, EmailMessage.ToAddress,
        EmailMessage.CcAddress, EmailMessage.BccAddress, EmailMessage.Subject, EmailMessage.MessageIdentifier,
        EmailMessage.InReplyTo, EmailMessage.References, where=EmailMessage.Id == email_id)
    token = make_token(SECRET, case_id)
    assert (status, incoming, sender) == (EmailStatus.QUEUED, False, "billing@example.com")  # the case's address
    assert (to, cc, bcc) == ("ada@example.org", "bob@example.org; carol@example.org", "audit@example.net")
    assert subject == f"Re: Invoice charged twice {token}"
    assert (in_reply_to, refs) == ("<second@example.org>", "<first@example.org> <second@example.org>")
    assert msgid.endswith("@cases.example.net>")
    outbox = await rows(db, Outbox.ToAddress, Outbox.Kind, Outbox.MessageIdentifier, Outbox.Raw, Outbox.Status,
                        where=Outbox.EmailMessageId == email_id)
    assert sorted(r[0] for r in outbox) == sorted(["ada@example.org", "bob@example.org", "carol@example.org",
                                                   "audit@example.net"])
    assert {(r[1], r[2], r[4]) for r in outbox} == {("reply", msgid, "queued")}
    sent = message_from_bytes(outbox[0][3], policy=default_policy)
    assert (sent["From"], sent["To"], sent["Cc"]) == ("billing@example.com", "ada@example.org",
                                                      "Bob <bob@example.org>, carol@example.org")
    assert sent["Bcc"] is None and sent["Auto-Submitted"] is None  # a person's reply, not a robot's
    assert (sent["Subject"], sent["Message-ID"], sent["In-Reply-To"]) == (subject, msgid, "<second@example.org>")
    assert sent["References"] == "<first@example.org> <second@example.org>"
    assert [p.get_content_type() for p in sent.walk()] == ["multipart/alternative", "text/plain", "text/html"]
    assert await rows(db, ThreadReference.CaseId, where=ThreadReference.MessageKey == msgid) == [(case_id,)]
    [(body, by)] = await rows(db, CaseFeed.Body, CaseFeed.CreatedById, where=CaseFeed.RelatedRecordId == email_id)
    assert body == f"Reply by Ann Agent ({AGENT}) queued to ada@example.org: {subject}" and by == AGENT


async def test_references_keep_the_first_and_the_latest_ids_and_in_reply_to_last(db: Database) -> None:
    service = await seed(db)
    ids = [f"<m{i}@example.org>" for i in range(25)]
    case_id = await open_case(service, mail("Long thread", ids[0]))
    for i in range(1, 25):
        await service.record_messages([mail("Re: Long thread", ids[i], in_reply_to=ids[i - 1])],
                                      now=T0 + timedelta(minutes=i))
    email_id = await db.transaction(lambda c: queue_email_reply(
        c, POLICY, case_id, to="ada@example.org", subject="Our answer", text_body="Done.",
        from_address="Support@Example.com", actor_id=AGENT, now=T0 + timedelta(hours=1)))
    [(refs, in_reply_to, subject, sender)] = await rows(
        db, EmailMessage.References, EmailMessage.InReplyTo, EmailMessage.Subject, EmailMessage.FromAddress,
        where=EmailMessage.Id == email_id)
    assert refs.split() == [ids[0], *ids[6:]] and len(refs.split()) == 20 and in_reply_to == ids[24]
    assert subject == f"Our answer {make_token(SECRET, case_id)}" and sender == "support@example.com"


@pytest.mark.parametrize(("fields", "reason", "code", "named"), [
    ({"case_id": "500000000000000AAA"}, "no_case", "INVALID_CROSS_REFERENCE_KEY", ["ParentId"]),
    ({"text_body": " ", "html_body": None}, "empty", "REQUIRED_FIELD_MISSING", ["TextBody", "HtmlBody"]),
    ({"to": "ada@example.org; not an address"}, "bad_address", "FIELD_INTEGRITY_EXCEPTION", ["ToAddress"]),
    ({"cc": "a@b.org\r\nBcc: x@y.org"}, "bad_address", "FIELD_INTEGRITY_EXCEPTION", ["CcAddress"]),
    ({"from_address": "ceo@example.com"}, "bad_address", "FIELD_INTEGRITY_EXCEPTION", ["FromAddress"]),
    ({"text_body": "x" * 131073}, "text_too_long", "STRING_TOO_LONG", ["TextBody"]),
    ({"policy": ReplyPolicy(SECRET, routing=ROUTING, relay=False)}, "no_relay", "FIELD_INTEGRITY_EXCEPTION", []),
])
async def test_a_refused_email_reply_names_the_field_and_writes_nothing(
        db: Database, fields: dict[str, Any], reason: str, code: str, named: list[str]) -> None:
    service = await seed(db)
    case_id = await open_case(service, mail("Hello", "<hello@example.org>"))
    before = await counts(db)
    values: dict[str, Any] = {"case_id": case_id, "policy": POLICY, "to": None, "text_body": "Hi", **fields}
    with pytest.raises(ReplyRefusedError) as refused:
        await db.transaction(lambda c: queue_email_reply(c, values.pop("policy"), values.pop("case_id"),
                                                         actor_id=AGENT, now=T0, **values))
    assert (refused.value.reason, refused.value.code, refused.value.fields) == (reason, code, named)
    assert refused.value.as_salesforce()[0]["errorCode"] == code
    assert await counts(db) == before


# -- messaging ---------------------------------------------------------------------------------------
async def test_a_messaging_reply_goes_back_on_the_route_of_the_customers_last_message(db: Database) -> None:
    service = await seed(db)
    case_id = await open_case(service, sms("My router blinks red"))
    later = T0 + timedelta(hours=2)
    await service.record_messages([sms("Any news?", at=later)], now=later)
    seen: list[OutgoingReply] = []
    entry_id = await db.transaction(lambda c: queue_conversation_reply(
        c, case_id, text="A technician comes tomorrow.\nBetween 9 and 12.", actor_id=AGENT, now=later,
        check=lambda reply, now: seen.append(reply)))
    [reply] = seen
    assert (reply.entry_id, reply.channel, reply.provider, reply.to, reply.from_id) == (
        entry_id, "sms", "twilio", CUSTOMER, OURS)
    assert reply.last_inbound_at is not None and reply.last_inbound_at.replace(tzinfo=UTC) == later
    [entry] = await rows(db, ConversationEntry.ActorType, ConversationEntry.ActorName, ConversationEntry.Status,
                         ConversationEntry.Source, ConversationEntry.Recipient, ConversationEntry.MessageIdentifier,
                         where=ConversationEntry.Id == entry_id)
    assert entry == ("Agent", "Ann Agent", "queued", "twilio", CUSTOMER, entry_id)
    [row] = await rows(db, ReplyOutbox.Channel, ReplyOutbox.Provider, ReplyOutbox.Recipient, ReplyOutbox.SenderId,
                       ReplyOutbox.Status, ReplyOutbox.Attempts, where=ReplyOutbox.EntryId == entry_id)
    assert row == ("sms", "twilio", CUSTOMER, OURS, "queued", 0)
    [(body,)] = await rows(db, CaseFeed.Body, where=CaseFeed.RelatedRecordId == entry_id)
    assert body == f"SMS reply by Ann Agent ({AGENT}) queued to {CUSTOMER}: A technician comes tomorrow."


async def test_whatsapp_via_meta_replies_to_the_digits_from_the_number_the_customer_wrote_to(db: Database) -> None:
    service = await seed(db)
    case_id = await open_case(service, sms("Olá", channel="whatsapp", source="meta", phone="+4915112345678",
                                           details={"phone_number_id": "209715200000002", "type": "text"}))
    template = ReplyTemplate("order_update", "pt_BR", ("Jonas", "B-2210"))
    entry_id = await db.transaction(lambda c: queue_conversation_reply(c, case_id, template=template,
                                                                       actor_id=AGENT, now=T0))
    [due] = await db.transaction(lambda c: claim_due_replies(c, T0, timedelta(seconds=30)))
    assert (due.entry_id, due.channel, due.provider, due.to, due.from_id, due.text, due.template, due.attempts) == (
        entry_id, "whatsapp", "meta", "4915112345678", "209715200000002", None, template, 1)
    [(message,)] = await rows(db, ConversationEntry.Message, where=ConversationEntry.Id == entry_id)
    assert message == "[template order_update (pt_BR): Jonas, B-2210]"


@pytest.mark.parametrize(("kind", "reason", "named"), [
    ("email case", "not_messaging", ["ParentId"]),
    ("no text", "empty", ["Message"]),
    ("text and template", "both", ["Message"]),
    ("refused by the check", "outside_window", ["Message"]),
])
async def test_a_refused_messaging_reply_writes_nothing(db: Database, kind: str, reason: str,
                                                        named: list[str]) -> None:
    service = await seed(db)
    case_id = await open_case(service, mail("Hello", "<hello@example.org>") if kind == "email case" else sms("Hi"))

    def check(reply: OutgoingReply, now: datetime) -> None:
        raise ReplyRefusedError("outside_window", "WhatsApp takes free text only within 24 hours", ["Message"])

    args: dict[str, Any] = {"text": "Hello"}
    if kind == "no text":
        args = {"text": "  "}
    elif kind == "text and template":
        args["template"] = ReplyTemplate("hello")
    elif kind == "refused by the check":
        args["check"] = check
    before = await counts(db)
    with pytest.raises(ReplyRefusedError) as refused:
        await db.transaction(lambda c: queue_conversation_reply(c, case_id, actor_id=AGENT, now=T0, **args))
    assert (refused.value.reason, refused.value.fields) == (reason, named)
    assert await counts(db) == before


async def test_a_claim_is_taken_once_until_its_lease_runs_out(db: Database) -> None:
    service = await seed(db)
    case_id = await open_case(service, sms("Hi"))
    entry_id = await db.transaction(lambda c: queue_conversation_reply(c, case_id, text="Hello", actor_id=AGENT,
                                                                       now=T0))
    lease = timedelta(seconds=30)
    first, second = await asyncio.gather(db.transaction(lambda c: claim_due_replies(c, T0, lease)),
                                         db.transaction(lambda c: claim_due_replies(c, T0, lease)))
    assert sorted(len(claimed) for claimed in (first, second)) == [0, 1]
    assert await db.transaction(lambda c: claim_due_replies(c, T0 + lease - timedelta(seconds=1), lease)) == []
    [again] = await db.transaction(lambda c: claim_due_replies(c, T0 + lease, lease))
    assert (again.entry_id, again.attempts) == (entry_id, 2)


# -- delivery statuses -------------------------------------------------------------------------------
async def test_statuses_only_move_forward_and_one_that_came_early_waits_for_its_reply(db: Database) -> None:
    service = await seed(db)
    case_id = await open_case(service, sms("Hi"))
    entry_id = await db.transaction(lambda c: queue_conversation_reply(c, case_id, text="Hello", actor_id=AGENT,
                                                                       now=T0))
    [reply] = await db.transaction(lambda c: claim_due_replies(c, T0, timedelta(seconds=30)))

    def apply(*updates: DeliveryUpdate) -> Callable[[Connection], int]:
        return lambda c: apply_delivery_statuses(c, updates, T0, advance_status)

    async def status() -> str:
        [(value,)] = await rows(db, ConversationEntry.Status, where=ConversationEntry.Id == entry_id)
        return str(value)

    sid = "SM" + "a" * 32
    assert await db.transaction(apply(DeliveryUpdate("twilio", sid, "delivered"))) == 0  # before it is recorded
    assert await rows(db, DeliveryReceipt.Status) == [("delivered",)]
    await db.transaction(lambda c: mark_reply_sent(c, reply, sid, "queued", T0, advance_status))
    assert await status() == "queued"
    assert await db.transaction(lambda c: settle_receipts(c, T0, advance_status)) == 1
    assert await status() == "delivered" and await rows(db, DeliveryReceipt.Status) == []
    assert await db.transaction(apply(DeliveryUpdate("twilio", sid, "sent"),
                                      DeliveryUpdate("meta", sid, "read"))) == 1  # another provider's id: not ours
    assert await status() == "delivered"
    await db.transaction(apply(DeliveryUpdate("twilio", sid, "read"), DeliveryUpdate("twilio", sid, "failed")))
    assert await status() == "read"  # a failure after delivery does not undo it
    feed = await rows(db, CaseFeed.Body, where=CaseFeed.RelatedRecordId == entry_id)
    assert len(feed) == 1  # only the queued entry: no failure on the feed


async def test_a_failure_is_on_the_feed_once_and_old_unknown_statuses_are_forgotten(db: Database) -> None:
    service = await seed(db)
    case_id = await open_case(service, sms("Hi"))
    entry_id = await db.transaction(lambda c: queue_conversation_reply(c, case_id, text="Hello", actor_id=AGENT,
                                                                       now=T0))
    [reply] = await db.transaction(lambda c: claim_due_replies(c, T0, timedelta(seconds=30)))
    await db.transaction(lambda c: mark_reply_sent(c, reply, "SM1", "queued", T0, advance_status))
    failed = DeliveryUpdate("twilio", "SM1", "failed", "30003", "Unreachable destination handset")
    for _ in range(2):  # the provider delivers its callback twice
        await db.transaction(lambda c: apply_delivery_statuses(c, [failed], T0, advance_status))
    feed = [r[0] for r in await rows(db, CaseFeed.Body, where=CaseFeed.RelatedRecordId == entry_id)]
    assert feed[1:] == [f"SMS reply to {CUSTOMER} was not delivered: [30003] Unreachable destination handset"]
    stranger = DeliveryUpdate("twilio", "SM-not-ours", "delivered")
    await db.transaction(lambda c: apply_delivery_statuses(c, [stranger], T0, advance_status))
    await db.transaction(lambda c: settle_receipts(c, T0 + timedelta(days=6), advance_status))
    assert await rows(db, DeliveryReceipt.MessageIdentifier) == [("SM-not-ours",)]
    await db.transaction(lambda c: settle_receipts(c, T0 + timedelta(days=8), advance_status))
    assert await rows(db, DeliveryReceipt.MessageIdentifier) == []


async def test_a_reply_given_up_on_reads_failed_and_the_feed_says_why(db: Database) -> None:
    service = await seed(db)
    case_id = await open_case(service, sms("Hi"))
    entry_id = await db.transaction(lambda c: queue_conversation_reply(c, case_id, text="Hello", actor_id=AGENT,
                                                                       now=T0))
    [reply] = await db.transaction(lambda c: claim_due_replies(c, T0, timedelta(seconds=30)))
    await db.transaction(lambda c: mark_reply_failed(c, reply, "[21610] Attempt to send to unsubscribed recipient",
                                                     T0))
    assert await rows(db, ReplyOutbox.Status, ReplyOutbox.LastError) == [
        ("failed", "[21610] Attempt to send to unsubscribed recipient")]
    assert await rows(db, ConversationEntry.Status, where=ConversationEntry.Id == entry_id) == [("failed",)]
    feed = [r[0] for r in await rows(db, CaseFeed.Body, where=CaseFeed.RelatedRecordId == entry_id)]
    assert feed[-1] == f"SMS reply to {CUSTOMER} failed after 1 attempt: [21610] Attempt to send to unsubscribed " \
                       "recipient"
    assert await db.transaction(lambda c: claim_due_replies(c, T0 + timedelta(days=1), timedelta(seconds=30))) == []


# -- migration 0010 ----------------------------------------------------------------------------------
def on(url: str, fn: Callable[[Connection], T]) -> T:
    async def go() -> T:
        db = Database(url)
        try:
            return await db.transaction(fn)
        finally:
            await db.dispose()

    return asyncio.run(go())


def test_0010_gives_older_entries_the_source_their_channel_and_details_say(store_url: str) -> None:
    upgrade(store_url)
    downgrade(store_url, "0009")

    def older(c: Connection) -> None:
        c.execute(text("""INSERT INTO "case" ("Id", "CaseNumber", "Status", "Priority", "IsClosed", "IsClosedOnCreate",
                          "IsEscalated", "OwnerId", "IsStopped", "CreatedDate", "LastModifiedDate")
                          VALUES ('500000000000001AAA', '00000001', 'New', 'Medium', false, false, false, 'x', false,
                          :t, :t)"""), {"t": T0})
        for i, (channel, details) in enumerate([("sms", None), ("whatsapp", '{"phone_number_id": "2097"}'),
                                                ("whatsapp", '{"account_sid": "AC1"}'), ("telegram", None),
                                                ("phone", '{"call_sid": "CA1"}'), ("phone", '{"agent": "7"}')]):
            c.execute(text("""INSERT INTO conversation_entry ("Id", "ParentId", "Channel", "EntryType", "ActorType",
                              "MessageIdentifier", "Details", "EntryTime", "CreatedDate")
                              VALUES (:id, '500000000000001AAA', :ch, 'Text', 'EndUser', :id, :d, :t, :t)"""),
                      {"id": f"0Mw00000000000{i}AAA", "ch": channel, "d": details, "t": T0})

    on(store_url, older)
    upgrade(store_url)
    got = on(store_url, lambda c: [tuple(r) for r in c.execute(
        select(ConversationEntry.Channel, ConversationEntry.Source, ConversationEntry.Status)
        .order_by(ConversationEntry.Id))])
    assert got == [("sms", "twilio", None), ("whatsapp", "meta", None), ("whatsapp", "twilio", None),
                   ("telegram", "telegram", None), ("phone", "twilio", None), ("phone", "cti", None)]
