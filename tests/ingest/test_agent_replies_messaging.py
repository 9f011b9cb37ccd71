"""Agents' replies on messaging channels end to end, against the loopback providers of
test_replies_<provider>.py: the customer writes to the running daemon (signed as the provider signs), an
agent's reply is queued on the case (store.agent_replies, checked by the daemon's own sender table) and the
daemon's reply sender delivers it to the provider — once it is back, when it was down — and the provider's
delivery statuses, posted to the daemon's webhook signed as the provider signs them, move the entry's
Status forward only. Twilio SMS (on each deployment), WhatsApp Cloud (with its 24-hour window) and Telegram in depth;
Messenger, X and the chat widget: a reply arrives."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from casegate.config import Settings
from casegate.config.channels import ChatChannel
from casegate.ingest.bus.dead_letters import list_dead_letters
from casegate.ingest.replies.configured import reply_check
from casegate.store.access import add_user
from casegate.store.agent_replies import ReplyRefusedError, ReplyTemplate, queue_conversation_reply
from casegate.store.models import CaseFeed, ConversationEntry, ReplyOutbox
from sqlalchemy import update

from tests.ingest import (
    test_chat,
    test_meta,
    test_replies_chat,
    test_replies_meta,
    test_replies_telegram,
    test_replies_twilio,
    test_replies_x,
    test_telegram,
    test_x,
)
from tests.ingest.test_acknowledgement import wait_until
from tests.ingest.test_twilio import MESSAGING, OURS, TWIML, Twilio, sms
from tests.pipeline import Pipeline, settings_for, start_pipeline

RETRY = {"retry_initial": 0.2, "retry_max": 0.5, "poll_interval": 0.05}
"""[outbound]'s retry settings, which the reply sender uses: quick, for tests."""
CALLBACK = "https://hooks.example.com/hooks/twilio/messaging"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def daemon(tmp_path: Path, channels: dict[str, Any]) -> Pipeline:
    return await start_pipeline(settings_for("local-sqlite", tmp_path, channels=channels, outbound=RETRY))


async def only_case(p: Pipeline) -> dict[str, Any]:
    [case] = await p.wait_for(lambda cs: len(cs) == 1)
    return case


async def reply(p: Pipeline, case_id: str, text: str | None = None, *, template: ReplyTemplate | None = None) -> str:
    """Queue an agent's reply as the REST API does: checked by the daemon's sender table first."""
    assert p.daemon.db is not None and p.daemon.replies is not None
    db, check = p.daemon.db, reply_check(p.daemon.replies.table)
    agent = await add_user(db, f"agent-{uuid.uuid4().hex[:8]}@example.com", "agent", "Ann Agent")
    return await db.transaction(lambda c: queue_conversation_reply(
        c, case_id, text=text, template=template, actor_id=agent.id, now=datetime.now(UTC), check=check))


def entry_is(p: Pipeline, entry_id: str, status: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return (await entry(p, entry_id))[0] == status

    return check


async def entry(p: Pipeline, entry_id: str) -> tuple[str, str, str]:
    """(Status, MessageIdentifier, Recipient) of an entry."""
    [found] = [(s, m, r) for i, s, m, r in await p.rows(ConversationEntry.Id, ConversationEntry.Status,
                                                         ConversationEntry.MessageIdentifier,
                                                         ConversationEntry.Recipient) if i == entry_id]
    return found


async def outbox(p: Pipeline) -> list[tuple[str, int, str | None]]:
    return [(s, a, e) for s, a, e in await p.rows(ReplyOutbox.Status, ReplyOutbox.Attempts, ReplyOutbox.LastError)]


# -- Twilio SMS ----------------------------------------------------------------------------------------
async def test_an_sms_reply_waits_out_twilio_being_down_arrives_once_and_its_status_callbacks_move_it(
        deployment_settings: Callable[..., Settings], http: aiohttp.ClientSession) -> None:
    fake = test_replies_twilio.FakeTwilio()  # its port is held but not listening: Twilio is down
    p = await start_pipeline(deployment_settings(outbound=RETRY, channels={"twilio": {
        "enabled": True, "auth_token": test_replies_twilio.TOKEN, "account_sid": test_replies_twilio.ACCOUNT,
        "api_base_url": fake.base_url, "status_callback_url": CALLBACK}}))
    try:
        twilio = Twilio(p, http)
        customer = test_replies_twilio.CUSTOMER
        inbound = sms("My router blinks red", sender=customer, AccountSid=test_replies_twilio.ACCOUNT)
        assert (await twilio.post(MESSAGING, inbound))[0] == 200
        case = await only_case(p)
        entry_id = await reply(p, case["Id"], "A technician comes tomorrow between 9 and 12.")

        async def tried_twice() -> bool:
            [(status, attempts, error)] = await outbox(p)
            return status == "queued" and attempts >= 2 and bool(error)

        assert await wait_until(tried_twice)  # connection refused: kept, tried again with back-off
        assert (await entry(p, entry_id))[0] == "queued"
        await fake.server.start()
        assert await wait_until(lambda: len(fake.messages) == 1)
        assert fake.messages == [{"To": customer, "From": OURS, "Body": "A technician comes tomorrow between 9 and 12.",
                                  "StatusCallback": CALLBACK}]  # from the number the customer wrote to
        assert await wait_until(lambda: outbox_sent(p))
        status, sid, recipient = await entry(p, entry_id)
        assert (status, recipient) == ("queued", customer) and sid.startswith("SM")  # Twilio's id names it now

        def callback(state: str, **more: str) -> dict[str, str]:
            return {"SmsSid": sid, "SmsStatus": state, "MessageStatus": state, "To": customer, "MessageSid": sid,
                    "AccountSid": test_replies_twilio.ACCOUNT, "From": OURS, "ApiVersion": "2010-04-01", **more}

        assert await twilio.post(MESSAGING, callback("delivered")) == (200, TWIML, "text/xml")
        assert await wait_until(entry_is(p, entry_id, "delivered"))
        assert (await twilio.post(MESSAGING, callback("sent")))[0] == 200  # late and out of order
        forged = callback("failed", ErrorCode="30003")
        assert (await twilio.post(MESSAGING, forged, token="f" * 32))[0] == 403  # not signed by our account
        await p.wait_idle()
        assert (await entry(p, entry_id))[0] == "delivered"
        assert len(fake.messages) == 1 and len(await p.cases()) == 1
        assert await list_dead_letters(p.settings) == []
    finally:
        await p.daemon.stop()
        await fake.server.close()


async def outbox_sent(p: Pipeline) -> bool:
    return [s for s, _, _ in await outbox(p)] == ["sent"]


# -- WhatsApp Cloud API --------------------------------------------------------------------------------
def meta_channel(fake: test_replies_meta.FakeGraph) -> dict[str, Any]:
    return {"meta": {"enabled": True, "app_secret": test_replies_meta.APP_SECRET, "verify_token": "let-me-in",
                     "whatsapp_access_token": test_replies_meta.WA_TOKEN, "graph_api_base_url": fake.base_url}}


async def post_meta(p: Pipeline, payload: dict[str, Any]) -> tuple[int, Any]:
    return await test_meta.post(p, payload, secret=test_replies_meta.APP_SECRET)


async def test_a_whatsapp_reply_arrives_after_an_outage_and_metas_statuses_move_it_forward(tmp_path: Path) -> None:
    fake = test_replies_meta.FakeGraph()
    await fake.server.start()
    fake.server.outage = True  # 503 from Meta's load balancer
    p = await daemon(tmp_path, meta_channel(fake))
    try:
        customer = test_replies_meta.CUSTOMER
        assert await post_meta(p, test_meta.whatsapp(test_meta.wa_text("wamid.IN1", "Invoice 7731 twice?",
                                                                        sender=customer))) == (200, {"accepted": 1})
        case = await only_case(p)
        entry_id = await reply(p, case["Id"], "Refunded — sorry ✨")

        async def tried_twice() -> bool:
            return [(s, a >= 2, e) for s, a, e in await outbox(p)] == [
                ("queued", True, "HTTP 503 from the Graph API")]

        assert await wait_until(tried_twice)
        fake.server.outage = False
        assert await wait_until(lambda: len(fake.sent) == 1)
        assert fake.sent == [(f"/{test_replies_meta.PHONE_ID}/messages", {
            "messaging_product": "whatsapp", "to": customer, "type": "text", "text": {"body": "Refunded — sorry ✨"}})]
        assert await wait_until(lambda: outbox_sent(p))
        status, wamid, _ = await entry(p, entry_id)
        assert status == "queued" and wamid.startswith("wamid.")

        def statuses(*states: str) -> dict[str, Any]:
            return test_meta.whatsapp(statuses=[{"id": wamid, "status": state, "timestamp": "1780402300",
                                                 "recipient_id": customer} for state in states])

        assert await post_meta(p, statuses("sent", "read")) == (200, {"accepted": 2})
        assert await wait_until(entry_is(p, entry_id, "read"))
        assert (await post_meta(p, statuses("delivered")))[0] == 200  # Meta delivers out of order
        await p.wait_idle()
        assert (await entry(p, entry_id))[0] == "read" and len(fake.sent) == 1
        assert await list_dead_letters(p.settings) == []
    finally:
        await p.daemon.stop()
        await fake.server.close()


async def test_free_text_after_24_hours_is_refused_up_front_and_a_template_goes(tmp_path: Path) -> None:
    fake = test_replies_meta.FakeGraph()
    await fake.server.start()
    p = await daemon(tmp_path, meta_channel(fake))
    try:
        assert (await post_meta(p, test_meta.whatsapp(test_meta.wa_text(
            "wamid.IN2", "Hello?", sender=test_replies_meta.CUSTOMER))))[0] == 200
        case = await only_case(p)
        await p.wait_idle()
        assert p.daemon.db is not None
        yesterday = datetime.now(UTC) - timedelta(hours=24, minutes=1)  # the customer wrote a day ago
        await p.daemon.db.transaction(lambda c: c.execute(update(ConversationEntry).values(EntryTime=yesterday)))
        with pytest.raises(ReplyRefusedError) as refused:
            await reply(p, case["Id"], "Sorry for the wait")
        assert (refused.value.reason, refused.value.code, refused.value.fields) == (
            "outside_window", "FIELD_INTEGRITY_EXCEPTION", ["Message"])
        assert "within 24 hours" in refused.value.message and "template" in refused.value.message
        assert await p.rows(ConversationEntry.ActorType) == [("EndUser",)] and await outbox(p) == []

        entry_id = await reply(p, case["Id"], template=ReplyTemplate("order_update", "en_US", ("B-2210",)))
        assert await wait_until(lambda: len(fake.sent) == 1)
        assert fake.sent[0][1] == {"messaging_product": "whatsapp", "to": test_replies_meta.CUSTOMER,
                                   "type": "template", "template": {
                                       "name": "order_update", "language": {"code": "en_US"},
                                       "components": [{"type": "body",
                                                       "parameters": [{"type": "text", "text": "B-2210"}]}]}}
        assert await wait_until(lambda: outbox_sent(p))
        assert (await entry(p, entry_id))[0] == "queued"  # until Meta's statuses say more
    finally:
        await p.daemon.stop()
        await fake.server.close()


# -- Telegram ----------------------------------------------------------------------------------------
async def test_a_telegram_reply_arrives_in_the_chat_and_a_blocked_bot_fails_it_on_the_feed(tmp_path: Path) -> None:
    fake = test_replies_telegram.FakeBotApi()
    await fake.server.start()
    p = await daemon(tmp_path, {"telegram": {"enabled": True, "secret_token": test_telegram.SECRET,
                                             "bot_token": test_replies_telegram.TOKEN,
                                             "api_base_url": fake.server.url()}})
    try:
        assert await test_telegram.post(p, test_telegram.update(731904455, "Where is parcel B-2210?")) == (200, "")
        case = await only_case(p)
        first = await reply(p, case["Id"], "Found it, Ana 📦")
        assert await wait_until(lambda: len(fake.sent) == 1)
        assert fake.sent == [{"chat_id": test_replies_telegram.ANA, "text": "Found it, Ana 📦"}]
        assert await wait_until(entry_is(p, first, "sent"))  # Telegram reports nothing further for bots
        assert (await entry(p, first))[1] == "881"

        fake.blocked.add(test_replies_telegram.ANA)
        second = await reply(p, case["Id"], "Anything else?")
        assert await wait_until(entry_is(p, second, "failed"))  # refused for good: not retried
        assert [(s, a, e) for s, a, e in await outbox(p)] == [
            ("sent", 1, None), ("failed", 1, "[403] Forbidden: bot was blocked by the user")]
        feed = [b for b, r in await p.rows(CaseFeed.Body, CaseFeed.RelatedRecordId) if r == second]
        assert feed[-1] == ("Telegram reply to 7012345678 failed after 1 attempt: "
                            "[403] Forbidden: bot was blocked by the user")
        assert len(fake.sent) == 1
    finally:
        await p.daemon.stop()
        await fake.server.close()


# -- Messenger, X, chat ----------------------------------------------------------------------------------
async def test_a_messenger_reply_goes_to_the_psid_through_the_pages_send_api(tmp_path: Path) -> None:
    fake = test_replies_meta.FakeGraph()
    fake.last_message[test_replies_meta.PSID] = time.time()
    await fake.server.start()
    meta = {**meta_channel(fake)["meta"], "page_access_token": test_replies_meta.PAGE_TOKEN}
    p = await daemon(tmp_path, {"meta": meta})
    try:
        assert await post_meta(p, test_meta.MESSENGER_EXAMPLE) == (200, {"accepted": 1})
        entry_id = await reply(p, (await only_case(p))["Id"], "Try holding the power button for 10 s.")
        assert await wait_until(entry_is(p, entry_id, "sent"))
        assert fake.sent == [("/me/messages", {"recipient": {"id": test_replies_meta.PSID},
                                               "messaging_type": "RESPONSE",
                                               "message": {"text": "Try holding the power button for 10 s."}})]
        assert (await entry(p, entry_id))[1].startswith("m_")
    finally:
        await p.daemon.stop()
        await fake.server.close()


async def test_an_x_reply_is_a_direct_message_as_the_support_account(tmp_path: Path) -> None:
    fake = test_replies_x.FakeXApi()
    await fake.server.start()
    p = await daemon(tmp_path, {"x": {**test_x.channels()["x"], "oauth2_user_token": test_replies_x.USER_TOKEN,
                                      "api_base_url": fake.base_url}})
    try:
        assert (await test_x.post(p, test_x.delivery(dms=[test_x.dm("1799", "My order is late")])))[0] == 200
        entry_id = await reply(p, (await only_case(p))["Id"], "It ships today, Lee.")
        assert await wait_until(entry_is(p, entry_id, "sent"))
        assert fake.sent == [(test_x.LEE["id"], {"text": "It ships today, Lee."})]
    finally:
        await p.daemon.stop()
        await fake.server.close()


async def test_a_chat_reply_is_posted_to_the_widget_signed_as_the_widget_signs_its_messages(tmp_path: Path) -> None:
    fake = test_replies_chat.FakeWidget()
    fake.section = ChatChannel(enabled=True, secret=test_chat.SECRET)  # one secret, both ways
    await fake.server.start()
    p = await daemon(tmp_path, test_chat.channels(reply_url=fake.server.url(test_replies_chat.PATH)))
    try:
        assert (await test_chat.post(p, test_chat.message("m1")))[0] == 200
        entry_id = await reply(p, (await only_case(p))["Id"], "The invoice is corrected.")
        assert await wait_until(entry_is(p, entry_id, "sent"))
        [sent] = fake.messages.values()
        assert (sent["id"], sent["visitor"], sent["conversation_id"], sent["text"]) == (
            entry_id, {"id": test_chat.ADA["id"]}, "conv-77", "The invoice is corrected.")
        assert (await entry(p, entry_id))[1] == f"w-{entry_id}"
    finally:
        await p.daemon.stop()
        fake.release.set()
        await fake.server.close()
