"""Reply senders (ingest.replies), what every provider shares: the loopback provider the per-provider
tests (test_replies_<provider>.py) serve their fake API on, and the pure parts — the messaging window,
text limits, delivery statuses from Twilio's and Meta's real-shaped payloads, status ordering, back-off,
the sender table and OAuth 1.0a signing against RFC 5849's and X's published vectors."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

import aiohttp
import pytest
from aiohttp import web
from casegate.ingest.backoff import Backoff
from casegate.ingest.replies._http import retry_after
from casegate.ingest.replies.delivery_status import (
    DeliveryStatus,
    StatusUpdate,
    meta_statuses,
    next_status,
    twilio_status,
)
from casegate.ingest.replies.errors import ReplyRefused, UnknownRoute
from casegate.ingest.replies.limits import TextLimit, check_content, check_window, window_open
from casegate.ingest.replies.oauth1 import OAuth1Credentials, base_string, base_uri, hmac_sha1_signature
from casegate.ingest.replies.reply import Reply, Template
from casegate.ingest.replies.result import Outcome, SendResult, retry_delay
from casegate.ingest.replies.sender import SenderTable
from casegate.ingest.replies.telegram import TelegramSender
from casegate.ingest.replies.twilio import TwilioSender

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
NOW = datetime(2026, 6, 2, 14, 0, tzinfo=UTC)


class Loopback:
    """A provider's API on 127.0.0.1. Its port is held from the start, bound but not listening, so a
    connection is refused (the provider is down) until `start()` serves `handler` on that same port.
    While `outage` is set it answers 503 as the load balancer in front of a provider does."""

    def __init__(self, handler: Handler):
        self.handler = handler
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.outage = False
        self.hits = 0
        self.runner: web.AppRunner | None = None

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        self.hits += 1
        if self.outage:
            return web.Response(status=503, text="<html><body>503 Service Unavailable</body></html>",
                                content_type="text/html")
        return await self.handler(request)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._serve)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.SockSite(self.runner, self.sock).start()

    async def close(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
        self.sock.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


def reply(text: str | None = "Your refund is on its way", *, channel: str = "sms", provider: str = "twilio",
          to: str = "+447700900123", ago: timedelta | None = timedelta(hours=1), now: datetime = NOW,
          **more: Any) -> Reply:
    """An agent's reply; the customer last wrote `ago` before `now` (None: never)."""
    return Reply(entry_id="0Ew000000000001", channel=channel, provider=provider, to=to, text=text,
                 last_inbound_at=None if ago is None else now - ago, **more)


# -- the messaging window -------------------------------------------------------------------------
def test_the_whatsapp_window_is_open_for_24_hours_after_the_customers_last_message() -> None:
    assert window_open(NOW - timedelta(hours=23, minutes=59, seconds=59), NOW)
    assert not window_open(NOW - timedelta(hours=24), NOW)
    assert not window_open(NOW - timedelta(days=3), NOW)
    assert not window_open(None, NOW)
    assert window_open((NOW - timedelta(hours=2)).replace(tzinfo=None), NOW)  # the store's naive UTC


def test_free_text_outside_the_window_is_refused_with_a_clear_error_and_a_template_is_allowed() -> None:
    late = reply(channel="whatsapp", ago=timedelta(hours=30))
    with pytest.raises(ReplyRefused) as refused:
        check_window(late, NOW, "WhatsApp")
    assert refused.value.code == "outside_window"
    assert refused.value.message == (
        "WhatsApp accepts a free-text reply only within 24 hours of the customer's last message, and the "
        "customer's last message was 30 hours ago: send an approved template instead")
    with pytest.raises(ReplyRefused, match="no message from the customer on record"):
        check_window(reply(channel="whatsapp", ago=None), NOW, "WhatsApp")
    check_window(reply(None, channel="whatsapp", ago=timedelta(hours=30), template=Template("order_update")),
                 NOW, "WhatsApp")
    check_window(reply(channel="whatsapp", ago=timedelta(hours=23)), NOW, "WhatsApp")


def test_text_over_the_providers_limit_is_refused_not_cut_and_at_the_limit_it_passes() -> None:
    check_content(reply("x" * 1600), TextLimit(1600), "Twilio")
    with pytest.raises(ReplyRefused) as refused:
        check_content(reply("x" * 1601), TextLimit(1600), "Twilio")
    assert (refused.value.code, refused.value.message) == (
        "text_too_long", "the reply is 1,601 characters; Twilio accepts at most 1,600: shorten it or send it as "
                         "several replies")
    check_content(reply("é" * 500), TextLimit(1000, "bytes"), "Instagram")
    with pytest.raises(ReplyRefused, match="1,002 bytes; Instagram accepts at most 1,000"):
        check_content(reply("é" * 501), TextLimit(1000, "bytes"), "Instagram")
    for empty in (None, "", "  \n"):
        with pytest.raises(ReplyRefused, match="no text"):
            check_content(reply(empty), TextLimit(1600), "Twilio")
    with pytest.raises(ReplyRefused, match="Telegram has no message templates"):
        check_content(reply(None, template=Template("x")), TextLimit(4096), "Telegram")


async def test_a_refused_reply_is_failed_without_calling_the_provider(session: aiohttp.ClientSession) -> None:
    """The base URL is a port nothing listens on: a call would be "retry later", not "failed"."""
    async def never(request: web.Request) -> web.StreamResponse:
        raise AssertionError("the provider was called")

    nothing = Loopback(never)  # never started
    try:
        sender = TelegramSender(session, bot_token="1:x", base_url=nothing.url())
        result = await sender.send(reply("x" * 4097, channel="telegram", provider="telegram", to="1"), NOW)
        assert (result.outcome, result.status, result.error_code) == (Outcome.FAILED, DeliveryStatus.FAILED,
                                                                      "text_too_long")
        assert (await sender.send(reply("hi", channel="telegram", provider="telegram", to="1"), NOW)).outcome \
            is Outcome.RETRY
        assert nothing.hits == 0
    finally:
        await nothing.close()


# -- delivery statuses ----------------------------------------------------------------------------
def form(raw: str) -> dict[str, list[str]]:
    return parse_qs(raw, keep_blank_values=True)


def test_twilio_status_callbacks_become_updates_and_inbound_or_unknown_ones_do_not() -> None:
    sid = "SM0f3a1c9e2b7d4a5c6e8f9a0b1c2d3e4f"
    delivered = form(f"SmsSid={sid}&SmsStatus=delivered&MessageStatus=delivered&To=whatsapp%3A%2B447700900123"
                     f"&MessageSid={sid}&AccountSid=AC11112222333344445555666677778888"
                     "&From=whatsapp%3A%2B14155550100&ApiVersion=2010-04-01&ChannelPrefix=whatsapp&EventType=DELIVERED")
    assert twilio_status(delivered) == StatusUpdate(sid, DeliveryStatus.DELIVERED, recipient="whatsapp:+447700900123")
    undelivered = form(f"ErrorCode=30003&SmsSid={sid}&SmsStatus=undelivered&MessageStatus=undelivered"
                       f"&To=%2B447700900123&MessageSid={sid}&AccountSid=AC1&From=%2B14155550100&ApiVersion=2010-04-01")
    assert twilio_status(undelivered) == StatusUpdate(sid, DeliveryStatus.FAILED, "30003", "Twilio error 30003",
                                                      recipient="+447700900123")
    for status, ours in (("accepted", "queued"), ("queued", "queued"), ("sending", "queued"), ("sent", "sent"),
                         ("read", "read"), ("failed", "failed"), ("canceled", "failed")):
        update = twilio_status(form(f"MessageSid={sid}&MessageStatus={status}"))
        assert update is not None and update.status == ours
    assert twilio_status(form(f"MessageSid={sid}&SmsStatus=received&Body=hi")) is None
    assert twilio_status(form("MessageStatus=delivered")) is None


STATUSES: dict[str, Any] = {
    "object": "whatsapp_business_account",
    "entry": [{"id": "104857600000001", "changes": [
        {"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550100", "phone_number_id": "209715200000002"},
            "statuses": [
                {"id": "wamid.HBgNNDkxNTExMjM0NTY3OBUCABEYEjA", "status": "delivered", "timestamp": "1780402300",
                 "recipient_id": "4915112345678",
                 "conversation": {"id": "7a1c3b5e9d2f", "origin": {"type": "service"}},
                 "pricing": {"billable": True, "pricing_model": "PMP", "category": "service"}},
                {"id": "wamid.HBgNNDkxNTExMjM0NTY3OBUCABEYEjA", "status": "read", "timestamp": "1780402310",
                 "recipient_id": "4915112345678"},
                {"id": "wamid.HBgNNDkxNTExMjM0NTY3OBUCABEYEjE", "status": "failed", "timestamp": "1780402400",
                 "recipient_id": "4915112345678",
                 "errors": [{"code": 131047, "title": "Re-engagement message", "message": "Re-engagement message",
                             "error_data": {"details": "Message failed to send because more than 24 hours have "
                                                       "passed since the customer last replied to this number."},
                             "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"}]},
                {"id": "wamid.HBgNNDkxNTExMjM0NTY3OBUCABEYEjI", "status": "deleted", "timestamp": "1780402500",
                 "recipient_id": "4915112345678"},
            ]}},
        {"field": "account_update", "value": {"event": "VERIFIED_ACCOUNT"}},
    ]}],
}


def test_meta_statuses_become_updates_in_order_with_the_error_of_a_failure() -> None:
    at = datetime.fromtimestamp
    assert meta_statuses(STATUSES) == [
        StatusUpdate("wamid.HBgNNDkxNTExMjM0NTY3OBUCABEYEjA", DeliveryStatus.DELIVERED, at=at(1780402300, UTC),
                     recipient="4915112345678"),
        StatusUpdate("wamid.HBgNNDkxNTExMjM0NTY3OBUCABEYEjA", DeliveryStatus.READ, at=at(1780402310, UTC),
                     recipient="4915112345678"),
        StatusUpdate("wamid.HBgNNDkxNTExMjM0NTY3OBUCABEYEjE", DeliveryStatus.FAILED, "131047",
                     "Re-engagement message: Message failed to send because more than 24 hours have passed since "
                     "the customer last replied to this number.", at(1780402400, UTC), "4915112345678"),
    ]
    inbound_only = {"entry": [{"changes": [{"field": "messages", "value": {"messages": [{"id": "wamid.in"}]}}]}]}
    assert meta_statuses(inbound_only) == []


@pytest.mark.parametrize(("item", "field"), [
    ({"status": "sent"}, "entry[0].changes[0].value.statuses[0].id"),
    ({"id": "wamid.1", "status": 3}, "entry[0].changes[0].value.statuses[0].status"),
    ({"id": "wamid.1", "status": "sent", "timestamp": "yesterday"}, "entry[0].changes[0].value.statuses[0].timestamp"),
])
def test_a_malformed_meta_status_is_an_error_naming_the_field(item: dict[str, Any], field: str) -> None:
    payload = {"entry": [{"changes": [{"field": "messages", "value": {"statuses": [item]}}]}]}
    with pytest.raises(ValueError, match=field.replace("[", r"\[").replace("]", r"\]")):
        meta_statuses(payload)


def test_a_status_only_moves_forward_and_failure_ends_an_undelivered_message() -> None:
    q, s, d, r, f = (DeliveryStatus.QUEUED, DeliveryStatus.SENT, DeliveryStatus.DELIVERED, DeliveryStatus.READ,
                     DeliveryStatus.FAILED)
    assert [next_status(None, s), next_status(q, s), next_status(s, d), next_status(d, r)] == [s, s, d, r]
    assert [next_status(r, d), next_status(d, s), next_status(r, q)] == [r, d, r]  # read arrived first
    assert [next_status(q, f), next_status(s, f), next_status(d, f), next_status(f, d)] == [f, f, d, f]


# -- back-off and Retry-After ---------------------------------------------------------------------
def test_retry_delay_backs_off_exponentially_to_the_maximum_but_never_before_the_provider_asked() -> None:
    busy = SendResult.retry_later("HTTP 503")
    backoff = Backoff(30, 600)
    assert [retry_delay(n, busy, backoff) for n in (1, 2, 3, 5, 9)] == [30, 60, 120, 480, 600]
    asked = SendResult.retry_later("Too Many Requests", retry_after=900)
    assert retry_delay(1, asked, backoff) == 900
    assert retry_after("120", NOW) == 120
    assert retry_after("Tue, 02 Jun 2026 14:05:00 GMT", NOW) == 300
    assert retry_after("soon", NOW) is None
    assert retry_after(None, NOW) is None


# -- the sender table -----------------------------------------------------------------------------
async def test_the_table_picks_a_sender_by_channel_and_provider_and_refuses_unknown_or_duplicate_routes(
        session: aiohttp.ClientSession) -> None:
    twilio = TwilioSender(session, account_sid="AC1", auth_token="t", sms_from="+15550100")
    telegram = TelegramSender(session, bot_token="1:x")
    table = SenderTable([twilio, telegram])
    assert table.routes == [("sms", "twilio"), ("telegram", "telegram"), ("whatsapp", "twilio")]
    assert table.sender_for(reply(channel="whatsapp")) is twilio
    assert table.sender_for(reply(channel="telegram", provider="telegram")) is telegram
    with pytest.raises(UnknownRoute, match="no reply sender for channel 'whatsapp' via 'meta'"):
        table.sender_for(reply(channel="whatsapp", provider="meta"))
    with pytest.raises(ValueError, match="two reply senders for channel 'sms' via 'twilio'"):
        SenderTable([twilio, TwilioSender(session, account_sid="AC2", auth_token="u", sms_from="+15550101")])


# -- OAuth 1.0a (RFC 5849) --------------------------------------------------------------------------
def test_oauth1_matches_x_documented_example() -> None:
    """docs.x.com "Creating a signature": its base string, and the signature of that base string with its
    keys (the page's own header shows a different value that its inputs do not produce)."""
    creds = OAuth1Credentials("xvz1evFS4wEEPTGEFPHBog", "kAcSOqF21Fu85e7zjz7ZN2U4ZRhfV3WpwPAoE3Z7kBw",
                              "370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb",
                              "LswwdoUaIvS8ltyTt5jkRh4J50vUPVVHtR2YPi5kE")
    oauth = [("oauth_consumer_key", creds.consumer_key), ("oauth_nonce", "kYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg"),
             ("oauth_signature_method", "HMAC-SHA1"), ("oauth_timestamp", "1318622958"),
             ("oauth_token", creds.token), ("oauth_version", "1.0")]
    body = [("status", "Hello Ladies + Gentlemen, a signed OAuth request!")]
    url = "https://api.twitter.com/1.1/statuses/update.json?include_entities=true"
    base = base_string("POST", url, [*oauth, *body])
    assert base == (
        "POST&https%3A%2F%2Fapi.twitter.com%2F1.1%2Fstatuses%2Fupdate.json&include_entities%3Dtrue%26"
        "oauth_consumer_key%3Dxvz1evFS4wEEPTGEFPHBog%26oauth_nonce%3DkYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg%26"
        "oauth_signature_method%3DHMAC-SHA1%26oauth_timestamp%3D1318622958%26"
        "oauth_token%3D370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb%26oauth_version%3D1.0%26"
        "status%3DHello%2520Ladies%2520%252B%2520Gentlemen%252C%2520a%2520signed%2520OAuth%2520request%2521")
    assert hmac_sha1_signature(base, creds.consumer_secret, creds.token_secret) == "hCtSmYh+iHYCEqBWrE7C7hYmtUk="
    header = creds.authorization("POST", url, timestamp=1318622958, nonce="kYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg",
                                 form=body)
    assert header == (
        'OAuth oauth_consumer_key="xvz1evFS4wEEPTGEFPHBog", oauth_nonce="kYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg", '
        'oauth_signature="hCtSmYh%2BiHYCEqBWrE7C7hYmtUk%3D", oauth_signature_method="HMAC-SHA1", '
        'oauth_timestamp="1318622958", oauth_token="370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb", '
        'oauth_version="1.0"')


def test_oauth1_matches_rfc_5849_examples() -> None:
    # §3.4.1.1: query with encoded and repeated names, a form body, oauth_* parameters (realm left out)
    assert base_string("POST", "http://example.com/request?b5=%3D%253D&a3=a&c%40=&a2=r%20b", [
        ("c2", ""), ("a3", "2 q"), ("oauth_consumer_key", "9djdj82h48djs9d2"), ("oauth_token", "kkk9d7dh3k39sjv7"),
        ("oauth_signature_method", "HMAC-SHA1"), ("oauth_timestamp", "137131201"), ("oauth_nonce", "7d8f3e4a"),
    ]) == ("POST&http%3A%2F%2Fexample.com%2Frequest&a2%3Dr%2520b%26a3%3D2%2520q%26a3%3Da%26b5%3D%253D%25253D%26"
           "c%2540%3D%26c2%3D%26oauth_consumer_key%3D9djdj82h48djs9d2%26oauth_nonce%3D7d8f3e4a%26"
           "oauth_signature_method%3DHMAC-SHA1%26oauth_timestamp%3D137131201%26oauth_token%3Dkkk9d7dh3k39sjv7")
    # §3.4.1.2: the base string URI
    assert base_uri("HTTP://EXAMPLE.com:80/r%20v/X?id=123") == "http://example.com/r%20v/X"
    assert base_uri("https://www.example.net:8080/?q=1") == "https://www.example.net:8080/"
    # §1.2: the photos example's signature
    base = base_string("GET", "http://photos.example.net/photos?file=vacation.jpg&size=original", [
        ("oauth_consumer_key", "dpf43f3p2l4k3l03"), ("oauth_token", "nnch734d00sl2jdk"),
        ("oauth_signature_method", "HMAC-SHA1"), ("oauth_timestamp", "137131202"), ("oauth_nonce", "chapoH")])
    assert hmac_sha1_signature(base, "kd94hf93k423kf44", "pfkkdhi9sl3r4s00") == "MdpQcU8iPSUjWoN/UDMsK2sui9I="
