"""Messages that are not emails, in the case service on real databases: conversations threading onto
one case within the channel's window, closed-case policies, one Contact per phone number across SMS and
calls, handles, web form fields and the daily cap with its pending queue, and the `messages` list."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from casegate.config import RulesSettings
from casegate.store.case_policy import CasePolicy
from casegate.store.case_service import CaseService
from casegate.store.channel_policy import ChannelPolicy
from casegate.store.database import Database
from casegate.store.inbound import InboundMessage
from casegate.store.models import Contact, ContactHandle, PendingMessage, ProcessedMessage
from casegate.store.owners import ensure_owners
from sqlalchemy import func, select

from tests.store.test_case_service import OWNER_REFS, SECRET, T0, Store

SQLITE_ONLY = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
POLICIES = {
    "twilio": ChannelPolicy(window_hours=24, closed_case_policy="reopen_within_days", reopen_within_days=7,
                            owner="queue:VIP"),
    "telegram": ChannelPolicy(window_hours=2, closed_case_policy="new_case"),
    "cti": ChannelPolicy(),
    "web_form": ChannelPolicy(daily_cap=2),
}


@pytest.fixture
async def hub(db: Database) -> Store:
    owners = await ensure_owners(db, OWNER_REFS)
    policy = CasePolicy({}, RulesSettings(), owners, SECRET, channels=POLICIES)
    return Store(db, CaseService(db, policy), owners)


def text(body: str, *, channel: str = "sms", phone: str | None = "+15551230000", handle: str | None = None,
         name: str | None = None, source: str | None = "twilio", at: datetime = T0, **more: Any) -> InboundMessage:
    ident = phone or handle or "?"
    return InboundMessage(
        channel=channel, external_id=f"SM{uuid.uuid4().hex}", envelope_id=str(uuid.uuid4()), received_at=at,
        conversation_key=f"{channel}:{ident}", sender_email=more.pop("email", None), sender_name=name,
        sender_phone=phone, sender_handle=handle, recipients=("+15550009999",), text=body, source=source, **more)


async def count(store: Store, model: Any) -> int:
    return int(await store.scalar(select(func.count()).select_from(model)))


async def test_a_conversation_stays_on_one_case_within_the_window(hub: Store) -> None:
    first = text("My order #123 never arrived and I have been waiting for three weeks now, what is going on?\n"
                 "Second line")
    out = await hub.record(first, now=T0)
    out += await hub.record(text("Hello?", at=T0 + timedelta(hours=1)), now=T0 + timedelta(hours=1))
    out += await hub.record(text("Photo of the label", entry_type="Media", media=("https://api.twilio.com/m/1",)),
                            now=T0 + timedelta(hours=2))
    assert [(o.outcome, o.case_number, o.rule) for o in out] == [
        ("created", "00001000", "new"), ("threaded", "00001000", "conversation"),
        ("threaded", "00001000", "conversation")]
    case = await hub.case("00001000")
    assert case["Subject"] == "My order #123 never arrived and I have been waiting for three weeks now, what is"
    assert (case["Origin"], case["SuppliedPhone"], case["OwnerId"]) == ("SMS", "+15551230000", hub.owners["queue:VIP"])
    assert [(e["Channel"], e["EntryType"], e["ActorIdentifier"]) for e in case["ConversationEntries"]] == [
        ("sms", "Text", "+15551230000"), ("sms", "Text", "+15551230000"), ("sms", "Media", "+15551230000")]
    assert case["ConversationEntries"][2]["MediaUrls"] == '["https://api.twilio.com/m/1"]'
    assert [m["attributes"]["type"] for m in case["messages"]] == ["ConversationEntry"] * 3
    contacts = await hub.rows(select(Contact.LastName, Contact.Phone, Contact.PhoneKey))
    assert [tuple(c) for c in contacts] == [("+15551230000", "+15551230000", "+15551230000")]
    # a day and more later the window has passed: a new case
    [later] = await hub.record(text("New problem", at=T0 + timedelta(hours=30)), now=T0 + timedelta(hours=30))
    assert (later.outcome, later.case_number) == ("created", "00001001")
    assert (await hub.case("00001001"))["ParentId"] is None


async def test_after_close_the_channel_policy_decides(hub: Store) -> None:
    await hub.record(text("Broken again"))
    await hub.service.change_status("00001000", "Closed", now=T0 + timedelta(hours=1))
    [reopened] = await hub.record(text("Still broken"), now=T0 + timedelta(days=2))
    assert (reopened.outcome, reopened.case_number) == ("threaded", "00001000")
    case = await hub.case("00001000")
    assert case["Status"] == "Working"
    change, _message, threaded = case["Feed"][-3:]
    assert (change["Type"], change["Body"]) == ("TrackedChange",
                                                "customer wrote again (sms); policy reopen_within_days")
    assert (threaded["Type"], threaded["Body"]) == (
        "ThreadingRule", "sms message threaded by conversation; closed-case policy reopen_within_days: reopened")
    assert change["Rule"] == threaded["Rule"] == "closed_case.reopen_within_days"
    await hub.service.change_status("00001000", "Closed", now=T0 + timedelta(days=3))
    [new] = await hub.record(text("Months later"), now=T0 + timedelta(days=60))
    assert (new.outcome, new.case_number) == ("created", "00001001")
    follow_up = await hub.case("00001001")
    assert follow_up["ParentId"] == (await hub.case("00001000"))["Id"]
    created = follow_up["Feed"][0]
    assert (created["Type"], created["Rule"]) == ("CaseCreated", "closed_case.reopen_within_days")
    assert created["Body"] == ("Case opened from SMS; follow-up of closed case 00001000: "
                               "closed 57 days ago, more than 7 days [closed_case.reopen_within_days]")


@SQLITE_ONLY
async def test_texting_and_calling_is_one_contact_and_the_call_goes_on_the_open_case(hub: Store) -> None:
    await hub.record(text("Can you call me?"))
    call = text("", channel="phone", source="cti", entry_type="Call",
                details={"call_id": "CA1", "duration": "95", "disposition": "answered", "agent": "sam"})
    [out] = await hub.record(call, now=T0 + timedelta(minutes=5))
    assert (out.outcome, out.case_number, out.rule) == ("threaded", "00001000", "caller's open case")
    assert await count(hub, Contact) == 1
    case = await hub.case("00001000")
    assert [e["EntryType"] for e in case["ConversationEntries"]] == ["Text", "Call"]
    assert '"disposition": "answered"' in case["ConversationEntries"][1]["Details"]
    assert case["Feed"][-2]["Type"] == "CallEvent"
    # a disposition rule may ask for a case of its own, or for nothing but a record
    [own] = await hub.record(dataclasses.replace(call, external_id="CA2", action="new_case"))
    [none] = await hub.record(dataclasses.replace(call, external_id="CA3", action="ignore",
                                                  details={"reason": "disposition abandoned: ignore"}))
    assert (own.outcome, own.case_number) == ("created", "00001001")
    assert (await hub.case("00001001"))["Origin"] == "Phone"
    assert (none.outcome, none.rule) == ("suppressed", "ignored")


@SQLITE_ONLY
async def test_a_handle_finds_its_contact_and_a_new_case_follows_a_closed_one(hub: Store) -> None:
    tg = dict(channel="telegram", phone=None, handle="987654321", name="Ada Lovelace", source="telegram")
    await hub.record(text("hi", **tg))  # type: ignore[arg-type]
    await hub.service.change_status("00001000", "Closed", now=T0 + timedelta(minutes=5))
    [out] = await hub.record(text("one more thing", **tg), now=T0 + timedelta(minutes=10))  # type: ignore[arg-type]
    assert (out.outcome, out.case_number) == ("created", "00001001")  # telegram's policy: new_case
    assert await count(hub, Contact) == 1
    assert [tuple(r) for r in await hub.rows(select(ContactHandle.Channel, ContactHandle.Handle))] == [
        ("telegram", "987654321")]
    case = await hub.case("00001001")
    assert (case["Origin"], case["SuppliedName"]) == ("Telegram", "Ada Lovelace")


@SQLITE_ONLY
async def test_web_form_fields_and_the_daily_cap_keep_extra_submissions_pending(hub: Store) -> None:
    def form(n: int) -> InboundMessage:
        return text(f"Form body {n}", channel="web", phone="+442071234567", source="web_form", entry_type="Form",
                    email="ada@example.org", subject=f"Form {n}", name="Ada Customer",
                    case_fields={"Type": "Problem", "Reason": "Breakdown", "Priority": "High",
                                 "SuppliedCompany": "Acme", "Unknown": "x"})

    out = await hub.record(form(1), form(2), form(3))
    assert [o.outcome for o in out] == ["created", "created", "pending"]
    case = await hub.case("00001000")
    assert (case["Origin"], case["Subject"], case["Type"], case["Reason"], case["Priority"], case["SuppliedCompany"],
            case["SuppliedEmail"]) == ("Web", "Form 1", "Problem", "Breakdown", "High", "Acme", "ada@example.org")
    assert await count(hub, PendingMessage) == 1
    assert await hub.service.release_pending(now=T0 + timedelta(hours=1)) == []  # still over the cap
    [released] = await hub.service.release_pending(now=T0 + timedelta(days=1, minutes=1))
    assert (released.outcome, released.case_number) == ("created", "00001002")
    assert (await hub.case("00001002"))["Subject"] == "Form 3"
    assert await count(hub, PendingMessage) == 0
    outcomes = [r[0] for r in await hub.rows(select(ProcessedMessage.Outcome).order_by(ProcessedMessage.Subject))]
    assert outcomes == ["created", "created", "created"]
