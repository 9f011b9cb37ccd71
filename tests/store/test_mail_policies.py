"""Email-to-Case policies in the case service, on real databases: replies to closed cases under each
routing address's policy, Outlook Thread-Index threading, automatic mail (auto-replies, lists,
bounces), the loop breaker, acknowledgements written to the outbox with their rate limit, and a
dead-lettered message whose replay replaces its ledger row."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime, timedelta
from email import message_from_bytes
from email.policy import default as default_policy
from typing import Any

import pytest
from casegate.config import LoopSettings, OutboundSettings, RoutingAddress, RulesSettings
from casegate.store.case_policy import CasePolicy
from casegate.store.case_service import CaseService
from casegate.store.database import Database
from casegate.store.inbound import InboundMessage
from casegate.store.models import EmailMessage, Outbox, ProcessedMessage
from casegate.store.owners import ensure_owners
from sqlalchemy import select

from tests.store.test_case_service import OWNER_REFS, SECRET, T0, Store, msg

SQLITE_ONLY = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
ROUTES = {r.address: r for r in [
    RoutingAddress(address="support@localhost", closed_case_policy="reopen_within_days", reopen_within_days=14),
    RoutingAddress(address="always@localhost", closed_case_policy="reopen"),
    RoutingAddress(address="fresh@localhost", closed_case_policy="new_case"),
    RoutingAddress(address="strict@localhost", closed_case_policy="reject"),
    RoutingAddress(address="robots@localhost", automatic_opens_case=True),
    RoutingAddress(address="quiet@localhost", auto_acknowledge=False),
]}


@pytest.fixture
async def mail(db: Database) -> Store:
    owners = await ensure_owners(db, OWNER_REFS)
    policy = CasePolicy(ROUTES, RulesSettings(), owners, SECRET, LoopSettings(),
                        OutboundSettings(enabled=True, hostname="cases.example.net"))
    return Store(db, CaseService(db, policy), owners)


def auto(m: InboundMessage, kind: str, reason: str, bounced: tuple[str, ...] = ()) -> InboundMessage:
    return dataclasses.replace(m, auto=kind, auto_reason=reason, bounced_message_ids=bounced)


async def close(store: Store, number: str, at: datetime) -> None:
    await store.service.change_status(number, "Closed", now=at)


async def outbox(store: Store) -> list[Any]:
    return await store.rows(select(Outbox).order_by(Outbox.CreatedDate, Outbox.Id))


async def ledger(store: Store, m: InboundMessage) -> Any:
    [row] = await store.rows(select(ProcessedMessage).where(ProcessedMessage.ExternalId == m.external_id))
    return row[0]


# -- replies to closed cases --------------------------------------------------------------------
@pytest.mark.parametrize(("to", "days", "expect", "rule"), [
    ("always@localhost", 400, "reopened", "closed_case.reopen"),
    ("support@localhost", 3, "reopened", "closed_case.reopen_within_days"),
    ("support@localhost", 30, "new case", "closed_case.reopen_within_days"),
    ("fresh@localhost", 0, "new case", "closed_case.new_case"),
])
async def test_closed_case_policy(mail: Store, to: str, days: int, expect: str, rule: str) -> None:
    first = msg("Printer on fire", to=[to])
    await mail.record(first)
    closed_at = T0 + timedelta(hours=1)
    await close(mail, "00001000", closed_at)
    reply = msg("Re: Printer on fire", "Again.", to=[to], in_reply_to=[first.message_id or ""])
    [out] = await mail.record(reply, now=closed_at + timedelta(days=days))
    old = await mail.case("00001000")
    if expect == "reopened":
        assert (out.outcome, out.case_number, out.rule) == ("threaded", "00001000", "in-reply-to")
        assert (old["Status"], old["IsClosed"]) == ("Working", False)
        assert "reopened" in old["Feed"][-1]["Body"]
        [reopening] = [f for f in old["Feed"] if f["Type"] == "TrackedChange" and f["NewValue"] == "Working"]
        assert old["Feed"][-1]["Rule"] == reopening["Rule"] == rule
    else:
        assert (out.outcome, out.case_number) == ("created", "00001001")
        assert (old["Status"], old["IsClosed"]) == ("Closed", True)
        new = await mail.case("00001001")
        assert new["ParentId"] == old["Id"]
        assert "follow-up of closed case 00001000" in new["Feed"][0]["Body"]
        assert (new["Feed"][0]["Type"], new["Feed"][0]["Rule"]) == ("CaseCreated", rule)
        assert new["Feed"][0]["Body"].endswith(f" [{rule}]")
        assert all(f["Rule"] is None for f in old["Feed"] if f["Type"] in ("ThreadingRule", "TrackedChange"))
        assert "ParentId 00001000" in (await ledger(mail, reply)).Reason
        # the next reply (to the new case's mail) lands on the new case, not the closed one
        [again] = await mail.record(msg("Re: Re: Printer", to=[to], in_reply_to=[reply.message_id or ""]),
                                    now=closed_at + timedelta(days=days, minutes=1))
        assert (again.outcome, again.case_number) == ("threaded", "00001001")


async def test_reject_policy_keeps_the_mail_on_the_closed_case_and_notifies_the_sender(mail: Store) -> None:
    first = msg("Printer on fire", to=["strict@localhost"])
    await mail.record(first)
    await close(mail, "00001000", T0 + timedelta(hours=1))
    reply = msg("Re: Printer on fire", "Again.", to=["strict@localhost"], in_reply_to=[first.message_id or ""])
    [out] = await mail.record(reply, now=T0 + timedelta(hours=2))
    case = await mail.case("00001000")
    assert (out.outcome, out.case_number) == ("threaded", "00001000")
    assert (case["Status"], case["IsClosed"]) == ("Closed", True)
    assert reply.message_id in [e["MessageIdentifier"] for e in case["EmailMessages"]]
    kinds = [row[0].Kind for row in await outbox(mail)]
    assert kinds == ["acknowledgement", "notice"]
    kept, notice_queued = case["Feed"][-2:]
    assert (kept["Type"], kept["Rule"]) == ("ThreadingRule", "closed_case.reject")
    assert kept["Body"].endswith("closed-case policy reject: not reopened, sender notified; policy reject "
                                 "[closed_case.reject]")
    assert (notice_queued["Type"], notice_queued["Rule"]) == ("EmailMessageEvent", "acknowledgement.send")
    assert notice_queued["Body"].startswith("Notice queued to ada@example.org")
    notice = message_from_bytes((await outbox(mail))[1][0].Raw, policy=default_policy)
    assert "is closed" in notice.get_content() and "00001000" in notice.get_content()


# -- Outlook Thread-Index ----------------------------------------------------------------------
@SQLITE_ONLY
async def test_outlook_thread_index_threads_only_for_the_same_sender(mail: Store) -> None:
    conversation = "AdnHG4mOxRfZk2A6TqyVjC2+lw4XwA=="  # 22 bytes: FILETIME + GUID
    reply_index = "AdnHG4mOxRfZk2A6TqyVjC2+lw4XwAABCDEF"  # the same conversation, one reply block on
    first = dataclasses.replace(msg("Quarterly numbers"), thread_index=conversation)
    await mail.record(first)
    # Outlook reply that lost In-Reply-To/References (as some gateways strip them), same sender
    same = dataclasses.replace(msg("RE: Quarterly numbers"), thread_index=reply_index)
    stranger = dataclasses.replace(msg("RE: Quarterly numbers", sender="eve@example.net"), thread_index=reply_index)
    out = await mail.record(same, stranger, now=T0 + timedelta(minutes=1))
    assert [(o.outcome, o.case_number, o.rule) for o in out] == [
        ("threaded", "00001000", "thread-index"), ("created", "00001001", "new")]
    case = await mail.case("00001000")
    assert case["Feed"][-1]["Body"] == "email message threaded by thread-index"


# -- automatic mail ---------------------------------------------------------------------------
async def test_auto_reply_never_opens_a_case_and_is_kept_as_suppressed(mail: Store) -> None:
    ooo = auto(msg("Out of office", sender="bob@example.org"), "auto-reply", "Auto-Submitted: auto-replied")
    [out] = await mail.record(ooo)
    assert (out.outcome, out.case_id, out.rule) == ("suppressed", None, "auto-reply")
    row = await ledger(mail, ooo)
    assert (row.Outcome, row.Rule, row.Reason) == ("suppressed", "auto-reply",
                                                   "auto-reply: Auto-Submitted: auto-replied")
    assert (row.Sender, row.Subject, row.MessageIdentifier) == ("bob@example.org", "Out of office", ooo.message_id)
    assert await outbox(mail) == []


@SQLITE_ONLY
async def test_auto_reply_to_a_case_threads_without_reopening_or_acknowledging(mail: Store) -> None:
    first = msg("Printer on fire")
    await mail.record(first)
    [ack] = await outbox(mail)
    ooo = auto(msg("Automatic reply: [Case 00001000]", in_reply_to=[ack[0].MessageIdentifier]),
               "auto-reply", "X-Autoreply: yes")
    [out] = await mail.record(ooo)
    assert (out.outcome, out.case_number) == ("threaded", "00001000")
    await close(mail, "00001000", T0 + timedelta(hours=1))
    ooo2 = auto(msg("Automatic reply", in_reply_to=[first.message_id or ""]), "auto-reply", "Precedence: junk")
    [out2] = await mail.record(ooo2, now=T0 + timedelta(hours=2))
    case = await mail.case("00001000")
    assert (out2.outcome, case["Status"], case["IsClosed"]) == ("threaded", "Closed", True)
    assert "not reopened" in case["Feed"][-1]["Body"]
    assert case["Feed"][-1]["Rule"] == "closed_case.automatic_mail"
    assert len(await outbox(mail)) == 1  # only the first mail's acknowledgement


@SQLITE_ONLY
async def test_a_routing_address_may_let_automatic_mail_open_cases_but_never_acknowledges_it(mail: Store) -> None:
    post = auto(msg("[announce] new release", to=["robots@localhost"]), "list", "List-Id: <announce.example.org>")
    [out] = await mail.record(post)
    assert (out.outcome, out.case_number) == ("created", "00001000")
    assert await outbox(mail) == []


async def test_bounce_of_our_acknowledgement_lands_on_its_case_and_marks_it_undelivered(mail: Store) -> None:
    await mail.record(msg("Printer on fire", sender="typo@example.invalid"))
    [ack] = await outbox(mail)
    bounce = auto(msg("Undelivered Mail Returned to Sender", sender="mailer-daemon@mx.example.net", name=None),
                  "bounce", "delivery-status: 5.1.1", bounced=(ack[0].MessageIdentifier,))
    [out] = await mail.record(bounce)
    assert (out.outcome, out.case_number, out.rule) == ("threaded", "00001000", "bounce")
    bounced = await mail.rows(select(EmailMessage.Incoming, EmailMessage.IsBounced)
                              .where(EmailMessage.Id == ack[0].EmailMessageId))
    assert [tuple(r) for r in bounced] == [(False, True)]
    assert len(await outbox(mail)) == 1  # a bounce is never acknowledged

    stray = auto(msg("Delivery Status Notification (Failure)", sender="postmaster@example.com"), "bounce",
                 "delivery-status: 5.0.0", bounced=("<not-ours@elsewhere.example>",))
    [out] = await mail.record(stray)
    assert (out.outcome, out.rule) == ("suppressed", "bounce")


# -- loops -----------------------------------------------------------------------------------
@SQLITE_ONLY
async def test_loop_breaker_stops_opening_cases_past_the_threshold_and_keeps_the_rest(mail: Store) -> None:
    prefixes = ["", "Re: ", "RE: Re: ", "AW: ", "Fwd: "]
    storm = [dataclasses.replace(msg(f"{prefixes[i % 5]}Ticket received", sender="robot@example.org"),
                                 received_at=T0 + timedelta(seconds=i)) for i in range(20)]
    out = await mail.record(*storm[:8])
    out += await mail.record(*storm[8:], now=T0 + timedelta(seconds=20))
    assert [o.outcome for o in out] == ["created"] * 15 + ["suppressed"] * 5
    assert {o.rule for o in out[15:]} == {"loop"}
    assert "more than 15 mails" in (await ledger(mail, storm[19])).Reason
    # another subject from the same sender, and the same subject after the window, open cases again
    other = dataclasses.replace(msg("Invoice question", sender="robot@example.org"),
                                received_at=T0 + timedelta(seconds=21))
    later = dataclasses.replace(msg("Ticket received", sender="robot@example.org"),
                                received_at=T0 + timedelta(seconds=200))
    assert [o.outcome for o in await mail.record(other, later, now=T0 + timedelta(seconds=200))] == [
        "created", "created"]
    # and the acknowledgements to that address were rate-limited to 3 in the hour, the feed says why
    assert len(await outbox(mail)) == 3
    withheld = await mail.case("00001003")
    [said] = [f for f in withheld["Feed"] if f["Type"] == "OutboundMail"]
    assert said["Body"].startswith("acknowledgement to robot@example.org not sent: ")
    assert said["Body"].endswith(" [loops.acknowledgement_limit]")
    assert said["Rule"] == "loops.acknowledgement_limit"


# -- acknowledgements ------------------------------------------------------------------------
async def test_acknowledgement_is_queued_with_the_case_number_token_and_headers(mail: Store) -> None:
    first = msg("Printer on fire", name="Ada Customer")
    [out] = await mail.record(first)
    [row] = await outbox(mail)
    ack = row[0]
    assert (ack.Kind, ack.Status, ack.FromAddress, ack.ToAddress) == (
        "acknowledgement", "queued", "support@localhost", "ada@example.org")
    sent = message_from_bytes(ack.Raw, policy=default_policy)
    assert sent["Subject"].startswith("[Case 00001000] Printer on fire thread::")
    assert sent["Auto-Submitted"] == "auto-replied"
    assert sent["In-Reply-To"] == first.message_id
    assert sent["Message-ID"] == ack.MessageIdentifier and sent["Message-ID"].endswith("@cases.example.net>")
    assert "00001000" in sent.get_content() and "thread::500" in sent.get_content()
    case = await mail.case("00001000")
    [queued] = [f for f in case["Feed"] if f["Body"].startswith("Acknowledgement queued")]
    assert (queued["Type"], queued["Rule"]) == ("EmailMessageEvent", "acknowledgement.send")
    outgoing = [e for e in case["EmailMessages"] if not e["Incoming"]]
    assert [e["MessageIdentifier"] for e in outgoing] == [ack.MessageIdentifier]
    # the customer's reply to the acknowledgement threads by its headers, and by the token alone
    by_header = msg("Re: [Case 00001000] Printer on fire", in_reply_to=[ack.MessageIdentifier])
    by_token = msg(f"Re: {sent['Subject']}", sender="ada.private@example.net")
    outs = await mail.record(by_header, by_token)
    assert [(o.case_number, o.rule) for o in outs] == [("00001000", "in-reply-to"), ("00001000", "token")]
    assert len(await outbox(mail)) == 1
    assert out.case_id == ack.CaseId


@SQLITE_ONLY
async def test_no_acknowledgement_when_the_address_says_so_or_to_ourselves(mail: Store) -> None:
    await mail.record(msg("Quiet one", to=["quiet@localhost"]),
                      msg("From our own address", sender="support@localhost"))
    assert await outbox(mail) == []


# -- dead letters on the ledger --------------------------------------------------------------
@SQLITE_ONLY
async def test_a_replayed_dead_letter_replaces_its_ledger_row(mail: Store) -> None:
    m = msg("Blob was missing")
    await mail.service.record_dead_letter(m, "BlobMissing: raw original not found", now=T0)
    row = await ledger(mail, m)
    assert (row.Outcome, row.Reason, row.CaseId) == ("dead-lettered", "BlobMissing: raw original not found", None)
    [out] = await mail.record(m, now=T0 + timedelta(minutes=5))
    assert out.outcome == "created"
    row = await ledger(mail, m)
    assert (row.Outcome, row.CaseId) == ("created", out.case_id)
    [again] = await mail.record(dataclasses.replace(m, envelope_id=str(uuid.uuid4())))
    assert again.outcome == "duplicate"
