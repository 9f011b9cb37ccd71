"""Replies over the Telegram Bot API to a fake Bot API on loopback that checks each call as Telegram
does — the bot token in the path, sendMessage's JSON (chat_id, text, message_thread_id) — and answers
{"ok": true, "result": Message} or {"ok": false, "error_code", "description", "parameters"}."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from casegate.ingest.replies.delivery_status import DeliveryStatus
from casegate.ingest.replies.result import Outcome
from casegate.ingest.replies.telegram import TelegramSender

from tests.ingest.test_replies import Loopback, reply

TOKEN = "7012345678:AAHk3rBqZ_e9V-tM0Xw2PqLs8dYcNfGhJkL"
ANA = 7012345678
GROUP = -1001234567890


def telegram_error(status: int, description: str, **parameters: Any) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return web.json_response(body, status=status)


class FakeBotApi:
    def __init__(self) -> None:
        self.server = Loopback(self.handle)
        self.chats = {ANA: "private", GROUP: "supergroup"}
        self.blocked: set[int] = set()
        self.flood = 0
        self.sent: list[dict[str, Any]] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        prefix, _, method = request.path.removeprefix("/").partition("/")
        if not prefix.startswith("bot") or method != "sendMessage":
            return telegram_error(404, "Not Found")
        if prefix != f"bot{TOKEN}":
            return telegram_error(401, "Unauthorized")
        if request.method != "POST" or request.content_type != "application/json":
            return telegram_error(400, "Bad Request: fake Bot API expects a JSON POST")
        payload = json.loads(await request.read())
        if not set(payload) <= {"chat_id", "text", "message_thread_id"} or not isinstance(payload.get("chat_id"), int):
            return telegram_error(400, f"Bad Request: fake Bot API got {sorted(payload)}")
        text, chat = payload.get("text"), payload["chat_id"]
        if not isinstance(text, str) or not text:
            return telegram_error(400, "Bad Request: message text is empty")
        if len(text) > 4096:
            return telegram_error(400, "Bad Request: message is too long")
        if chat not in self.chats:
            return telegram_error(400, "Bad Request: chat not found")
        if chat in self.blocked:
            return telegram_error(403, "Forbidden: bot was blocked by the user")
        if self.flood:
            self.flood -= 1
            return telegram_error(429, "Too Many Requests: retry after 7", retry_after=7)
        self.sent.append(payload)
        message: dict[str, Any] = {
            "message_id": 880 + len(self.sent), "date": int(time.time()), "text": text,
            "from": {"id": 6000000001, "is_bot": True, "first_name": "Acme Support", "username": "acme_support_bot"},
            "chat": {"id": chat, "type": self.chats[chat]}}
        if "message_thread_id" in payload:
            message |= {"message_thread_id": payload["message_thread_id"], "is_topic_message": True}
        return web.json_response({"ok": True, "result": message})


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


@pytest.fixture
async def bot_api() -> AsyncIterator[FakeBotApi]:
    fake = FakeBotApi()
    await fake.server.start()
    yield fake
    await fake.server.close()


def now() -> datetime:
    return datetime.now(UTC)


def tg(text: str = "Your parcel B-2210 was found", chat: int = ANA, **more: Any) -> Any:
    return reply(text, channel="telegram", provider="telegram", to=str(chat), now=now(), **more)


def bot(session: aiohttp.ClientSession, fake: FakeBotApi, token: str = TOKEN) -> TelegramSender:
    return TelegramSender(session, bot_token=token, base_url=fake.server.url())


async def test_a_reply_arrives_in_the_chat_and_a_forum_topic(session: aiohttp.ClientSession,
                                                             bot_api: FakeBotApi) -> None:
    send = bot(session, bot_api)
    result = await send.send(tg("Olá Ana — found it 📦"), now())
    assert (result.outcome, result.message_id, result.status) == (Outcome.SENT, "881", DeliveryStatus.SENT)
    topic = await send.send(tg("On it", chat=GROUP, thread="42"), now())
    assert (topic.outcome, topic.message_id) == (Outcome.SENT, "882")
    assert bot_api.sent == [{"chat_id": ANA, "text": "Olá Ana — found it 📦"},
                            {"chat_id": GROUP, "text": "On it", "message_thread_id": 42}]


async def test_a_wrong_token_fails_and_never_shows_in_the_error(session: aiohttp.ClientSession,
                                                                bot_api: FakeBotApi) -> None:
    result = await bot(session, bot_api, token="7012345678:wrong").send(tg(), now())
    assert (result.outcome, result.error_code, result.error, result.http_status) == (
        Outcome.FAILED, "401", "Unauthorized", 401)


async def test_telegram_down_then_flooded_is_retry_later_and_once_back_the_reply_arrives_once(
        session: aiohttp.ClientSession) -> None:
    fake = FakeBotApi()
    try:
        send = bot(session, fake)
        down = await send.send(tg(), now())
        assert down.outcome is Outcome.RETRY and down.error is not None and TOKEN not in down.error
        await fake.server.start()
        fake.server.outage = True
        assert (await send.send(tg(), now())).http_status == 503
        fake.server.outage = False
        fake.flood = 1
        flooded = await send.send(tg(), now())
        assert (flooded.outcome, flooded.error_code, flooded.retry_after) == (Outcome.RETRY, "429", 7.0)
        assert (await send.send(tg(), now())).outcome is Outcome.SENT
        assert len(fake.sent) == 1
    finally:
        await fake.server.close()


async def test_a_blocked_bot_or_unknown_chat_fails_for_good(session: aiohttp.ClientSession,
                                                            bot_api: FakeBotApi) -> None:
    bot_api.blocked.add(ANA)
    blocked = await bot(session, bot_api).send(tg(), now())
    assert (blocked.outcome, blocked.error_code, blocked.error) == (
        Outcome.FAILED, "403", "Forbidden: bot was blocked by the user")
    unknown = await bot(session, bot_api).send(tg(chat=42), now())
    assert (unknown.outcome, unknown.error_code, unknown.error) == (
        Outcome.FAILED, "400", "Bad Request: chat not found")


async def test_text_over_4096_characters_is_refused(session: aiohttp.ClientSession, bot_api: FakeBotApi) -> None:
    send = bot(session, bot_api)
    assert (await send.send(tg("c" * 4097), now())).error_code == "text_too_long"
    assert (await send.send(tg("c" * 4096), now())).outcome is Outcome.SENT
    assert bot_api.server.hits == 1
