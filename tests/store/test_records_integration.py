"""The record layer and what was built beside it, on SQLite and PostgreSQL: an outgoing EmailMessage is an
agent's reply sent through the outbox (an incoming one is only recorded); a ConversationEntry is a messaging
reply, checked before it is queued; knowledge articles (Knowledge__kav) only admins change, attached to
cases (CaseArticle); and deleting or merging cases takes their attached articles and queued replies along."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from email import message_from_bytes
from email.policy import default as default_policy
from typing import Any

import pytest
from casegate.config import RoutingAddress, RulesSettings
from casegate.store import records
from casegate.store.agent_replies import OutgoingReply, ReplyPolicy, ReplyRefusedError
from casegate.store.case_policy import CasePolicy
from casegate.store.case_service import CaseService
from casegate.store.channel_policy import ChannelPolicy
from casegate.store.database import Database
from casegate.store.inbound import InboundMessage
from casegate.store.knowledge import suggest
from casegate.store.models import CaseArticle, ConversationEntry, EmailMessage, KnowledgeArticle, Outbox, ReplyOutbox
from casegate.store.records import RecordPolicy
from casegate.store.thread_token import make_token
from sqlalchemy import select

from tests.store.test_case_service import msg
from tests.store.test_records import NOW, Team, count, feed, feed_bodies, make_team, refused

SECRET = b"records-integration-secret"
SUPPORT = "support@localhost"
REPLIES = ReplyPolicy(SECRET, "cases.example.net", (SUPPORT,))


def refuse_forbidden(reply: OutgoingReply, now: datetime) -> None:
    """A provider check for the tests: a reply saying "forbidden" is refused, as a window would refuse it."""
    if "forbidden" in (reply.text or ""):
        raise ReplyRefusedError("outside_window", "the customer wrote more than 24 hours ago: send a template",
                                ["Message"])


POLICY = RecordPolicy(replies=REPLIES, conversation_check=refuse_forbidden)


@dataclass
class World:
    db: Database
    team: Team
    service: CaseService

    async def mail_case(self, subject: str = "Printer on fire", sender: str = "ada@example.org") -> tuple[str, str]:
        """A case the worker opened for a mail (owned by the Billing queue, whose member Ann is); its Id and
        the mail's Message-ID."""
        m = msg(subject, sender=sender)
        [out] = await self.service.record_messages([m], now=NOW)
        assert out.case_id is not None and m.message_id is not None
        return out.case_id, m.message_id

    async def sms_case(self, phone: str = "+15551230000") -> str:
        """A case the worker opened for a text message via Twilio (owned by the Billing queue)."""
        text = InboundMessage(channel="sms", external_id=f"SM{uuid.uuid4().hex}", envelope_id=str(uuid.uuid4()),
                              received_at=NOW, conversation_key=f"sms:{phone}", sender_email=None, sender_phone=phone,
                              recipients=("+15550009999",), text="Where is my refund?", source="twilio")
        [out] = await self.service.record_messages([text], now=NOW)
        assert out.case_id is not None
        return out.case_id

    async def rows(self, *columns: Any, where: Any = True) -> list[tuple[Any, ...]]:
        async with self.db.engine.connect() as conn:
            return [tuple(r) for r in await conn.execute(select(*columns).where(where))]


@pytest.fixture
async def world(db: Database) -> World:
    team = await make_team(db)
    owners = {"queue:Billing": team.billing, "queue:Support": team.support}
    routing = {SUPPORT: RoutingAddress(address=SUPPORT, auto_acknowledge=False, owner="queue:Billing")}
    policy = CasePolicy(routing, RulesSettings(), owners, SECRET,
                        channels={"twilio": ChannelPolicy(owner="queue:Billing")})
    return World(db, team, CaseService(db, policy))


# -- EmailMessage ---------------------------------------------------------------------------------------
async def test_an_outgoing_email_message_is_sent_through_the_outbox_as_a_reply(world: World) -> None:
    db, ann = world.db, world.team.ann
    case_id, first = await world.mail_case()
    email_id = await records.create(db, "EmailMessage", {
        "ParentId": case_id, "TextBody": "A technician is on the way.", "CcAddress": "Boss <boss@example.org>"},
        ann, now=NOW, policy=POLICY)
    got = await records.read(db, "EmailMessage", email_id)
    token = make_token(SECRET, case_id)
    assert (got["Incoming"], got["Status"], got["FromAddress"], got["ToAddress"], got["CcAddress"]) == (
        False, "Q", SUPPORT, "ada@example.org", "boss@example.org")
    assert got["Subject"] == f"Re: Printer on fire {token}" and got["InReplyTo"] == first
    outbox = await world.rows(Outbox.Kind, Outbox.ToAddress, Outbox.Raw, where=Outbox.EmailMessageId == email_id)
    assert sorted((kind, to) for kind, to, _ in outbox) == [("reply", "ada@example.org"), ("reply", "boss@example.org")]
    sent = message_from_bytes(outbox[0][2], policy=default_policy)
    assert (sent["From"], sent["In-Reply-To"], sent["Subject"]) == (SUPPORT, first, f"Re: Printer on fire {token}")
    assert sent.get_content().strip() == "A technician is on the way."
    assert (f"Reply by Ann ({ann.user_id}) queued to ada@example.org: Re: Printer on fire {token}"
            in await feed_bodies(db, case_id))

    # an incoming one (a mail taken by phone, say) is recorded, and sent nowhere
    logged = await records.create(db, "EmailMessage", {
        "ParentId": case_id, "Incoming": True, "FromAddress": "ada@example.org", "Subject": "As said on the phone"},
        ann, now=NOW, policy=POLICY)
    assert (await records.read(db, "EmailMessage", logged, ["Status"]))["Status"] == "0"
    assert await count(db, Outbox) == 2


async def test_an_outgoing_email_message_that_cannot_be_sent_is_refused_and_nothing_is_written(
        world: World) -> None:
    db, ann = world.db, world.team.ann
    case_id, _ = await world.mail_case()
    reply = {"ParentId": case_id, "TextBody": "Hello"}
    cases: list[tuple[dict[str, object], RecordPolicy, Any, tuple[int, str, list[str]]]] = [
        ({**reply, "Status": "3"}, POLICY, ann, (400, "INVALID_FIELD_FOR_INSERT_UPDATE", ["Status"])),
        ({"ParentId": case_id}, POLICY, ann, (400, "REQUIRED_FIELD_MISSING", ["TextBody", "HtmlBody"])),
        ({**reply, "FromAddress": "ann@example.org"}, POLICY, ann, (400, "FIELD_INTEGRITY_EXCEPTION", ["FromAddress"])),
        ({**reply, "ToAddress": "not an address"}, POLICY, ann, (400, "FIELD_INTEGRITY_EXCEPTION", ["ToAddress"])),
        (reply, RecordPolicy(), ann, (400, "FIELD_INTEGRITY_EXCEPTION", ["Incoming"])),  # no reply settings
        (reply, RecordPolicy(replies=ReplyPolicy(SECRET, routing=(SUPPORT,), relay=False)), ann,
         (400, "FIELD_INTEGRITY_EXCEPTION", [])),  # no relay
        (reply, POLICY, world.team.bob, (403, "INSUFFICIENT_ACCESS_OR_READONLY", [])),  # not Bob's case
    ]
    for body, policy, actor, expected in cases:
        e = await refused(records.create(db, "EmailMessage", body, actor, now=NOW, policy=policy))
        assert (e.status, e.code, e.fields) == expected, (body, e)
    assert await count(db, Outbox) == 0
    assert await count(db, EmailMessage) == 1  # the customer's mail alone


# -- ConversationEntry ----------------------------------------------------------------------------------
async def test_a_conversation_entry_is_a_messaging_reply_checked_before_it_is_queued(world: World) -> None:
    db, ann = world.db, world.team.ann
    case_id = await world.sms_case()
    entry_id = await records.create(db, "ConversationEntry", {"ParentId": case_id, "Message": "Refund sent."},
                                    ann, now=NOW, policy=POLICY)
    got = await records.read(db, "ConversationEntry", entry_id)
    assert (got["ActorType"], got["ActorName"], got["Status"], got["Channel"], got["Source"], got["Recipient"]) == (
        "Agent", "Ann", "queued", "sms", "twilio", "+15551230000")
    assert await world.rows(ReplyOutbox.CaseId, ReplyOutbox.Provider, ReplyOutbox.Status) == [
        (case_id, "twilio", "queued")]

    e = await refused(records.create(db, "ConversationEntry", {"ParentId": case_id, "Message": "forbidden words"},
                                     ann, now=NOW, policy=POLICY))
    assert (e.status, e.code, e.fields) == (400, "FIELD_INTEGRITY_EXCEPTION", ["Message"])
    assert "24 hours" in e.message
    e = await refused(records.create(db, "ConversationEntry", {"ParentId": case_id}, ann, now=NOW, policy=POLICY))
    assert (e.code, e.fields) == ("REQUIRED_FIELD_MISSING", ["Message"])
    e = await refused(records.create(db, "ConversationEntry", {"ParentId": case_id, "Message": "x", "Status": "read"},
                                     ann, now=NOW, policy=POLICY))
    assert (e.code, e.fields) == ("INVALID_FIELD_FOR_INSERT_UPDATE", ["Status"])
    e = await refused(records.create(db, "ConversationEntry", {"ParentId": case_id, "Message": "x"},
                                     world.team.bob, now=NOW, policy=POLICY))
    assert e.status == 403
    mail_case, _ = await world.mail_case()
    e = await refused(records.create(db, "ConversationEntry", {"ParentId": mail_case, "Message": "x"},
                                     ann, now=NOW, policy=POLICY))
    assert (e.status, e.code, e.fields) == (400, "FIELD_INTEGRITY_EXCEPTION", ["ParentId"])
    assert "reply by email" in e.message
    e = await refused(records.update(db, "ConversationEntry", entry_id, {"Message": "edited"}, ann, policy=POLICY))
    assert e.code == "INVALID_TYPE_FOR_OPERATION"
    e = await refused(records.delete(db, "ConversationEntry", entry_id, world.team.admin, policy=POLICY))
    assert e.code == "INVALID_TYPE_FOR_OPERATION"
    assert await count(db, ConversationEntry) == 2 and await count(db, ReplyOutbox) == 1  # the text, the reply


# -- Knowledge ------------------------------------------------------------------------------------------
async def test_admins_write_articles_everyone_reads_them_and_agents_attach_them_to_cases(world: World) -> None:
    db, admin, ann = world.db, world.team.admin, world.team.ann
    article = {"Title": "Printer on fire: what to do", "Summary": "Unplug it first.", "Body__c": "<p>Unplug.</p>"}
    e = await refused(records.create(db, "Knowledge__kav", article, ann, now=NOW))
    assert (e.status, e.code) == (403, "INSUFFICIENT_ACCESS_OR_READONLY")
    article_id = await records.create(db, "Knowledge__kav", article, admin, now=NOW)
    got = await records.read(db, "Knowledge__kav", article_id)
    assert article_id.startswith("ka0") and got["KnowledgeArticleId"].startswith("kA0")
    assert (got["PublishStatus"], got["UrlName"], got["Language"], got["VersionNumber"], got["LastPublishedDate"]) == (
        "Draft", "Printer-on-fire-what-to-do", "en_US", 1, None)
    assert await suggest(db, "printer", None) == []  # a draft is not suggested
    later = NOW + timedelta(hours=1)
    await records.update(db, "Knowledge__kav", article_id, {"PublishStatus": "online"}, admin, now=later)
    got = await records.read(db, "Knowledge__kav", article_id, ["PublishStatus", "LastPublishedDate"])
    assert (got["PublishStatus"], got["LastPublishedDate"]) == ("Online", "2026-12-02T13:00:00.000+0000")
    assert [a["Id"] for a in await suggest(db, "My printer is on fire", None)] == [article_id]
    for body, code, fields in (({"Summary": "no title"}, "REQUIRED_FIELD_MISSING", ["Title"]),
                               ({"Title": "Other", "UrlName": "printer-ON-fire-what-to-do"}, "DUPLICATE_VALUE",
                                ["UrlName"]),
                               ({"Title": "x", "VersionNumber": 3}, "INVALID_FIELD_FOR_INSERT_UPDATE",
                                ["VersionNumber"])):
        e = await refused(records.create(db, "Knowledge__kav", body, admin))
        assert (e.code, e.fields) == (code, fields)
    e = await refused(records.update(db, "Knowledge__kav", article_id, {"Title": "Mine now"}, ann))
    assert e.status == 403

    case_id, _ = await world.mail_case()
    knowledge_article_id = (await records.read(db, "Knowledge__kav", article_id))["KnowledgeArticleId"]
    link = await records.create(db, "CaseArticle", {"CaseId": case_id, "KnowledgeArticleId": knowledge_article_id},
                                ann, now=later)
    again = await records.create(db, "CaseArticle", {"CaseId": case_id, "KnowledgeArticleId": article_id}, ann)
    assert link.startswith("0BA") and again == link  # by the article's id or its version's: the same attachment
    attached = await records.read(db, "CaseArticle", link)
    assert (attached["CaseId"], attached["KnowledgeArticleVersionId"], attached["ArticleVersionNumber"]) == (
        case_id, article_id, 1)
    assert ("AttachArticleEvent", None, None, None, ann.user_id, None) in await feed(db, case_id)
    e = await refused(records.update(db, "CaseArticle", link, {"IsSharedByEmail": True}, ann))
    assert e.code == "INVALID_TYPE_FOR_OPERATION"
    e = await refused(records.create(db, "CaseArticle", {"CaseId": case_id, "KnowledgeArticleId": article_id},
                                     world.team.bob))
    assert e.status == 403
    e = await refused(records.create(db, "CaseArticle", {"CaseId": case_id}, ann))
    assert (e.code, e.fields) == ("REQUIRED_FIELD_MISSING", ["KnowledgeArticleId"])

    t1, t2, t3 = (later + timedelta(minutes=m) for m in (1, 2, 3))
    await records.delete(db, "CaseArticle", link, ann, now=t1)
    assert await count(db, CaseArticle) == 0
    assert (await feed(db, case_id))[-1][:3] == ("TrackedChange", "CaseArticle", "000001000")
    await records.create(db, "CaseArticle", {"CaseId": case_id, "KnowledgeArticleId": article_id}, ann, now=t2)
    await records.delete(db, "Knowledge__kav", article_id, admin, now=t3)
    assert await count(db, KnowledgeArticle) == 0 and await count(db, CaseArticle) == 0
    assert (await feed(db, case_id))[-1][:3] == ("TrackedChange", "CaseArticle", "000001000")


def test_the_new_objects_are_described() -> None:
    entry = {f["name"]: f for f in records.describe("ConversationEntry")["fields"]}
    assert [n for n, f in entry.items() if f["createable"]] == ["ParentId", "Message"]
    assert not records.describe("ConversationEntry")["updateable"]
    article = records.describe("Knowledge__kav")
    assert (article["keyPrefix"], article["label"]) == ("ka0", "Knowledge")
    fields = {f["name"]: f for f in article["fields"]}
    assert [p["value"] for p in fields["PublishStatus"]["picklistValues"]] == ["Draft", "Online", "Archived"]
    assert not fields["ArticleNumber"]["createable"] and fields["Title"]["createable"]
    assert {c["childSObject"] for c in article["childRelationships"]} == {"CaseArticle"}
    links = records.describe("CaseArticle")
    assert (links["keyPrefix"], links["updateable"]) == ("0BA", False)
    case_children = {c["relationshipName"]: c for c in records.describe("Case")["childRelationships"]}
    assert case_children["CaseArticles"]["cascadeDelete"] and case_children["ConversationEntries"]["cascadeDelete"]


# -- deleting and merging cases -------------------------------------------------------------------------
async def attached_case(world: World) -> tuple[str, str]:
    """A text message's case with an agent's queued reply and an attached article; (case Id, article Id)."""
    case_id = await world.sms_case()
    await records.create(world.db, "ConversationEntry", {"ParentId": case_id, "Message": "On it."}, world.team.ann,
                         policy=POLICY)
    article_id = await records.create(world.db, "Knowledge__kav", {"Title": "Refunds"}, world.team.admin)
    await records.create(world.db, "CaseArticle", {"CaseId": case_id, "KnowledgeArticleId": article_id},
                         world.team.ann)
    return case_id, article_id


async def test_deleting_a_case_takes_its_attached_articles_and_queued_replies(world: World) -> None:
    case_id, article_id = await attached_case(world)
    await records.delete(world.db, "Case", case_id, world.team.ann)
    for model in (CaseArticle, ReplyOutbox, ConversationEntry):
        assert await count(world.db, model) == 0, model
    assert (await records.read(world.db, "Knowledge__kav", article_id, ["Title"]))["Title"] == "Refunds"


async def test_merging_moves_attached_articles_and_queued_replies_to_the_master(world: World) -> None:
    db, ann = world.db, world.team.ann
    duplicate, shared = await attached_case(world)
    master = await world.sms_case("+15557770000")
    own = await records.create(db, "Knowledge__kav", {"Title": "Printers"}, world.team.admin)
    for article in (shared, own):
        await records.create(db, "CaseArticle", {"CaseId": master, "KnowledgeArticleId": article}, ann)
    other = await records.create(db, "Knowledge__kav", {"Title": "Shipping"}, world.team.admin)
    await records.create(db, "CaseArticle", {"CaseId": duplicate, "KnowledgeArticleId": other}, ann)

    await records.merge(db, master, [duplicate], ann, now=NOW + timedelta(hours=1))
    assert await world.rows(ReplyOutbox.CaseId) == [(master,)]
    linked = await world.rows(CaseArticle.CaseId, CaseArticle.KnowledgeArticleVersionId)
    assert sorted(linked) == sorted([(master, shared), (master, own), (master, other)])  # the shared one once
    [moved] = [b for b in await feed_bodies(db, duplicate) if b.startswith("Merged into case ")]
    assert "1 outgoing message" in moved and "1 attached article" in moved  # the shared one was the master's
