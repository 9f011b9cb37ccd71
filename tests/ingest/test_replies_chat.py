"""Replies to the chat widget's callback URL, to a fake widget on loopback that verifies each call with
the inbound chat webhook's own check (ingest.channels.chat_webhook.authenticate: X-Casegate-Timestamp and
X-Casegate-Signature over timestamp + "." + body, with the channel's secret) and checks the body's shape."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from casegate.config.channels import ChatChannel
from casegate.ingest.channels.chat_webhook import authenticate
from casegate.ingest.channels.webhook import Rejected, json_error
from casegate.ingest.replies.chat import ChatSender, chat_signature
from casegate.ingest.replies.result import Outcome

from tests.ingest.test_replies import Loopback, reply

SECRET = "chat-widget-shared-secret-9c1d"
PATH = "/widget/casegate-replies"
VISITOR = "visitor-42"


class FakeWidget:
    def __init__(self) -> None:
        self.server = Loopback(self.handle)
        self.section = ChatChannel(enabled=True, secret=SECRET)
        self.messages: dict[str, dict[str, Any]] = {}
        """By id: a message delivered twice is one message."""
        self.closed: set[str] = set()
        self.stall = False
        self.release = asyncio.Event()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if self.stall:
            await self.release.wait()
            return web.json_response({"error": "too late"}, status=504)
        body = await request.read()
        try:
            authenticate(request, body, self.section, time.time())
        except Rejected as e:
            return json_error(e.status, e.error, e.field)
        if request.method != "POST" or request.path != PATH or request.content_type != "application/json":
            return json_error(404, "not the reply callback")
        message = json.loads(body)
        keys = {"id", "visitor", "text", "sent_at"} | ({"conversation_id"} if "conversation_id" in message else set())
        if set(message) != keys or set(message["visitor"]) != {"id"} or not isinstance(message["text"], str):
            return json_error(400, f"unexpected message {sorted(message)}")
        datetime.fromisoformat(message["sent_at"])
        if message["visitor"]["id"] in self.closed:
            return json_error(410, "the visitor's conversation has ended")
        self.messages[message["id"]] = message
        return web.json_response({"id": "w-" + message["id"]}, status=202)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


@pytest.fixture
async def widget() -> AsyncIterator[FakeWidget]:
    fake = FakeWidget()
    await fake.server.start()
    yield fake
    fake.release.set()
    await fake.server.close()


def now() -> datetime:
    return datetime.now(UTC)


def chat(fake: FakeWidget, session: aiohttp.ClientSession, **more: Any) -> ChatSender:
    settings: dict[str, Any] = {"callback_url": fake.server.url(PATH), "secret": SECRET, **more}
    return ChatSender(session, **settings)


def answer(text: str = "The invoice is corrected", **more: Any) -> Any:
    return reply(text, channel="chat", provider="chat", to=VISITOR, now=now(), **more)


def test_the_signature_is_the_inbound_webhooks() -> None:
    # hex(HMAC-SHA256("secret", "1780402500." + body)), as
    # `printf '1780402500.{"a":1}' | openssl dgst -sha256 -hmac secret` computes it
    assert chat_signature("secret", "1780402500", b'{"a":1}') == (
        "sha256=a62cdc1bffbf0ff7906942bc087a3444c800a8044f562290fcf9645ed224d4f0")


async def test_a_reply_arrives_signed_as_the_inbound_webhook_verifies(session: aiohttp.ClientSession,
                                                                      widget: FakeWidget) -> None:
    at = now()
    result = await chat(widget, session).send(answer("Corrected — a new PDF is in your inbox ✉️", thread="conv-77"), at)
    assert (result.outcome, result.message_id, result.http_status) == (Outcome.SENT, "w-0Ew000000000001", 202)
    assert widget.messages == {"0Ew000000000001": {
        "id": "0Ew000000000001", "visitor": {"id": VISITOR}, "conversation_id": "conv-77",
        "text": "Corrected — a new PDF is in your inbox ✉️", "sent_at": at.isoformat().replace("+00:00", "Z")}}


async def test_a_wrong_secret_is_refused_by_the_widget(session: aiohttp.ClientSession, widget: FakeWidget) -> None:
    result = await chat(widget, session, secret="not-ours").send(answer(), now())
    assert (result.outcome, result.error_code, result.error) == (Outcome.FAILED, "403", "signature does not match")
    assert widget.messages == {}


async def test_widget_down_overloaded_or_hanging_is_retry_later_and_once_back_the_reply_arrives_once(
        session: aiohttp.ClientSession) -> None:
    fake = FakeWidget()
    try:
        send = chat(fake, session, timeout=0.5)
        down = await send.send(answer(), now())
        assert down.outcome is Outcome.RETRY and down.error is not None and SECRET not in down.error
        await fake.server.start()
        fake.server.outage = True
        assert (await send.send(answer(), now())).http_status == 503
        fake.server.outage = False
        fake.stall = True  # accepts the connection, never answers in time
        hung = await send.send(answer(), now())
        assert (hung.outcome, hung.http_status) == (Outcome.RETRY, None)
        fake.stall = False
        fake.release.set()
        assert (await send.send(answer(), now())).outcome is Outcome.SENT
        assert list(fake.messages) == ["0Ew000000000001"]
    finally:
        fake.release.set()
        await fake.server.close()


async def test_a_refusal_of_the_widget_fails_for_good_with_its_error(session: aiohttp.ClientSession,
                                                                     widget: FakeWidget) -> None:
    widget.closed.add(VISITOR)
    result = await chat(widget, session).send(answer(), now())
    assert (result.outcome, result.error_code, result.error) == (
        Outcome.FAILED, "410", "the visitor's conversation has ended")


async def test_text_over_the_configured_cap_is_refused(session: aiohttp.ClientSession, widget: FakeWidget) -> None:
    send = chat(widget, session, max_text=500)
    assert (await send.send(answer("e" * 501), now())).error_code == "text_too_long"
    assert (await send.send(answer("e" * 500), now())).outcome is Outcome.SENT
    assert widget.server.hits == 1
    with pytest.raises(ValueError, match="callback URL"):
        ChatSender(session, callback_url="", secret=SECRET)
