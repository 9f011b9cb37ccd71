"""Replies over Twilio's Messages API to a fake Twilio on loopback that checks each call as Twilio does:
HTTP Basic auth (AccountSid:AuthToken or an API key), the account's Messages.json path, the form fields
(To, From or MessagingServiceSid, Body or ContentSid) — and answers with Twilio's resource and errors."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from casegate.ingest.replies.delivery_status import DeliveryStatus
from casegate.ingest.replies.reply import Template
from casegate.ingest.replies.result import Outcome
from casegate.ingest.replies.twilio import TwilioSender

from tests.ingest.test_replies import Loopback, reply

ACCOUNT = "AC" + "3" * 32
TOKEN = "0123456789abcdef0123456789abcdef"
API_KEY, API_SECRET = "SK" + "5" * 32, "api-key-secret-7f00"
SERVICE = "MG" + "9" * 32
OURS, OURS_WHATSAPP = "+14155550100", "+14155550111"
CUSTOMER = "+447700900123"
CALLBACK = "https://hooks.example.com/hooks/twilio/messaging"
PATH = f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
FIELDS = {"To", "From", "MessagingServiceSid", "Body", "ContentSid", "ContentVariables", "StatusCallback"}


def twilio_error(status: int, code: int, message: str) -> web.Response:
    return web.json_response({"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}",
                              "status": status}, status=status)


class FakeTwilio:
    """Twilio's Messages API for one account: what it checks, what it answers."""

    def __init__(self) -> None:
        self.server = Loopback(self.handle)
        self.messages: list[dict[str, str]] = []
        self.unsubscribed: set[str] = set()
        self.rate_limited = 0
        """Answer this many calls with 429 (Twilio's 20429) first."""

    @property
    def base_url(self) -> str:
        return self.server.url("/2010-04-01")

    async def handle(self, request: web.Request) -> web.StreamResponse:
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        user, _, password = base64.b64decode(encoded or "").decode().partition(":")
        if scheme != "Basic" or (user, password) not in {(ACCOUNT, TOKEN), (API_KEY, API_SECRET)}:
            return twilio_error(401, 20003, "Authenticate")
        if request.method != "POST" or request.path != PATH or request.query_string:
            return twilio_error(404, 20404, f"The requested resource {request.path} was not found")
        if request.content_type != "application/x-www-form-urlencoded":
            return twilio_error(400, 0, f"fake Twilio: a form is expected, not {request.content_type}")
        posted = await request.post()
        if len(posted) != len(set(posted)) or not set(posted) <= FIELDS:
            return twilio_error(400, 0, f"fake Twilio: unexpected fields {sorted(posted)}")
        fields = {name: str(value) for name, value in posted.items()}
        if self.rate_limited:
            self.rate_limited -= 1
            return web.json_response({"code": 20429, "message": "Too Many Requests", "status": 429},
                                     status=429, headers={"Retry-After": "3"})
        if "To" not in fields:
            return twilio_error(400, 21604, "A 'To' phone number is required.")
        if ("From" in fields) == ("MessagingServiceSid" in fields):
            return twilio_error(400, 21603, "A 'From' phone number is required.")
        variables_alone = "ContentVariables" in fields and "ContentSid" not in fields
        if ("Body" in fields) == ("ContentSid" in fields) or variables_alone:
            return twilio_error(400, 21602, "Message body is required.")
        if len(fields.get("Body", "")) > 1600:
            return twilio_error(400, 21617, "The concatenated message body exceeds the 1600 character limit.")
        if "From" in fields and fields["To"].startswith("whatsapp:") != fields["From"].startswith("whatsapp:"):
            return twilio_error(400, 63007, "Twilio could not find a Channel with the specified From address")
        if fields["To"].removeprefix("whatsapp:") in self.unsubscribed:
            return twilio_error(400, 21610, "Attempt to send to unsubscribed recipient")
        self.messages.append(fields)
        sid = "SM" + uuid.uuid4().hex
        return web.json_response(status=201, data={
            "account_sid": ACCOUNT, "api_version": "2010-04-01", "body": fields.get("Body", ""),
            "date_created": "Tue, 02 Jun 2026 14:00:00 +0000", "direction": "outbound-api", "error_code": None,
            "error_message": None, "from": fields.get("From"),
            "messaging_service_sid": fields.get("MessagingServiceSid"),
            "num_media": "0", "num_segments": "1", "price": None, "sid": sid,
            "status": "queued" if "From" in fields else "accepted", "to": fields["To"],
            "uri": f"/2010-04-01/Accounts/{ACCOUNT}/Messages/{sid}.json"})


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


@pytest.fixture
async def twilio() -> AsyncIterator[FakeTwilio]:
    fake = FakeTwilio()
    await fake.server.start()
    yield fake
    await fake.server.close()


def sender(session: aiohttp.ClientSession, fake: FakeTwilio, **more: Any) -> TwilioSender:
    settings: dict[str, Any] = {"account_sid": ACCOUNT, "auth_token": TOKEN, "sms_from": OURS,
                                "whatsapp_from": OURS_WHATSAPP, "status_callback": CALLBACK, **more}
    return TwilioSender(session, base_url=fake.base_url, **settings)


def now() -> datetime:
    return datetime.now(UTC)


async def test_an_sms_reply_arrives_with_twilios_sid(session: aiohttp.ClientSession, twilio: FakeTwilio) -> None:
    result = await sender(session, twilio).send(reply("Your refund is on its way", to=CUSTOMER, now=now()), now())
    assert (result.outcome, result.status, result.http_status) == (Outcome.SENT, DeliveryStatus.QUEUED, 201)
    assert result.message_id is not None and result.message_id.startswith("SM")
    assert twilio.messages == [{"To": CUSTOMER, "From": OURS, "Body": "Your refund is on its way",
                                "StatusCallback": CALLBACK}]


async def test_a_whatsapp_reply_goes_from_the_number_the_customer_wrote_to(
        session: aiohttp.ClientSession, twilio: FakeTwilio) -> None:
    text = "Olá Priya — the courier collects it tomorrow 📦"
    result = await sender(session, twilio).send(
        reply(text, channel="whatsapp", to=CUSTOMER, from_id="+14155550122", now=now()), now())
    assert result.outcome is Outcome.SENT
    assert twilio.messages == [{"To": f"whatsapp:{CUSTOMER}", "From": "whatsapp:+14155550122", "Body": text,
                                "StatusCallback": CALLBACK}]


async def test_an_api_key_authenticates_and_a_messaging_service_picks_the_number(
        session: aiohttp.ClientSession, twilio: FakeTwilio) -> None:
    keyed = sender(session, twilio, auth_token="", api_key_sid=API_KEY, api_key_secret=API_SECRET, sms_from="",
                   messaging_service_sid=SERVICE, status_callback="")
    result = await keyed.send(reply(to=CUSTOMER, now=now()), now())
    assert (result.outcome, result.status) == (Outcome.SENT, DeliveryStatus.QUEUED)
    assert twilio.messages == [{"To": CUSTOMER, "MessagingServiceSid": SERVICE, "Body": "Your refund is on its way"}]


async def test_wrong_credentials_fail_with_twilios_code(session: aiohttp.ClientSession, twilio: FakeTwilio) -> None:
    result = await sender(session, twilio, auth_token="f" * 32).send(reply(to=CUSTOMER, now=now()), now())
    assert (result.outcome, result.error_code, result.error, result.http_status) == (
        Outcome.FAILED, "20003", "Authenticate", 401)
    assert twilio.messages == []


async def test_twilio_down_then_overloaded_is_retry_later_and_once_back_the_reply_arrives_once(
        session: aiohttp.ClientSession) -> None:
    fake = FakeTwilio()
    try:
        send = sender(session, fake)
        refused = await send.send(reply(to=CUSTOMER, now=now()), now())  # nothing listens: connection refused
        assert (refused.outcome, refused.http_status, refused.status) == (Outcome.RETRY, None, None)
        assert refused.error is not None and TOKEN not in refused.error

        await fake.server.start()
        fake.server.outage = True
        overloaded = await send.send(reply(to=CUSTOMER, now=now()), now())
        assert (overloaded.outcome, overloaded.http_status) == (Outcome.RETRY, 503)

        fake.server.outage = False
        fake.rate_limited = 1
        limited = await send.send(reply(to=CUSTOMER, now=now()), now())
        assert (limited.outcome, limited.error_code, limited.retry_after) == (Outcome.RETRY, "20429", 3.0)

        back = await send.send(reply(to=CUSTOMER, now=now()), now())
        assert back.outcome is Outcome.SENT
        assert [m["Body"] for m in fake.messages] == ["Your refund is on its way"]
        assert fake.server.hits == 3
    finally:
        await fake.server.close()


async def test_an_unsubscribed_customer_fails_for_good_with_21610(
        session: aiohttp.ClientSession, twilio: FakeTwilio) -> None:
    twilio.unsubscribed.add(CUSTOMER)
    result = await sender(session, twilio).send(reply(to=CUSTOMER, now=now()), now())
    assert (result.outcome, result.status, result.error_code, result.error, result.http_status) == (
        Outcome.FAILED, DeliveryStatus.FAILED, "21610", "Attempt to send to unsubscribed recipient", 400)


async def test_whatsapp_free_text_outside_24_hours_is_refused_and_a_template_goes_with_its_variables(
        session: aiohttp.ClientSession, twilio: FakeTwilio) -> None:
    send = sender(session, twilio)
    late = reply(channel="whatsapp", to=CUSTOMER, ago=timedelta(hours=25), now=now())
    refused = await send.send(late, now())
    assert (refused.outcome, refused.error_code) == (Outcome.FAILED, "outside_window")
    assert refused.error is not None and "send an approved template instead" in refused.error
    assert twilio.server.hits == 0

    content = Template("HX" + "b" * 32, parameters=("Priya", "B-2210"))
    result = await send.send(reply(None, channel="whatsapp", to=CUSTOMER, ago=timedelta(days=3), template=content,
                                   now=now()), now())
    assert result.outcome is Outcome.SENT
    [message] = twilio.messages
    assert message == {"To": f"whatsapp:{CUSTOMER}", "From": f"whatsapp:{OURS_WHATSAPP}", "ContentSid": content.name,
                       "ContentVariables": message["ContentVariables"], "StatusCallback": CALLBACK}
    assert json.loads(message["ContentVariables"]) == {"1": "Priya", "2": "B-2210"}
    # an SMS has no window
    assert (await send.send(reply(to=CUSTOMER, ago=timedelta(days=30), now=now()), now())).outcome is Outcome.SENT


async def test_a_body_over_1600_characters_is_refused_before_twilio_sees_it(
        session: aiohttp.ClientSession, twilio: FakeTwilio) -> None:
    send = sender(session, twilio)
    result = await send.send(reply("a" * 1601, to=CUSTOMER, now=now()), now())
    assert (result.outcome, result.error_code) == (Outcome.FAILED, "text_too_long")
    assert (await send.send(reply("a" * 1600, to=CUSTOMER, now=now()), now())).outcome is Outcome.SENT
    assert twilio.server.hits == 1


async def test_without_a_number_or_service_for_the_channel_the_reply_is_refused(
        session: aiohttp.ClientSession, twilio: FakeTwilio) -> None:
    result = await sender(session, twilio, whatsapp_from="").send(
        reply(channel="whatsapp", to=CUSTOMER, now=now()), now())
    assert (result.outcome, result.error_code) == (Outcome.FAILED, "no_sender")
    with pytest.raises(ValueError, match="auth_token"):
        TwilioSender(session, account_sid=ACCOUNT)
