"""Replies over the Telegram Bot API (https://core.telegram.org/bots/api#sendmessage).

POST {base}/bot{token}/sendMessage with JSON {"chat_id", "text"} (and "message_thread_id" in a forum
topic); the token in the path is the authentication. Telegram answers {"ok": true, "result":
{"message_id", ...}}, or {"ok": false, "error_code", "description", "parameters": {"retry_after"}}: 429
and 5xx are "retry later" (after retry_after seconds), 400/403 permanent ("chat not found", "bot was
blocked by the user"). At most 4,096 characters. Telegram reports no delivery statuses for bots: a
message it accepted is `sent`.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import aiohttp
from casegate.ingest.replies._http import Answer, HttpSender, Request, failure, retry_after
from casegate.ingest.replies.limits import TextLimit, check_content
from casegate.ingest.replies.reply import Reply
from casegate.ingest.replies.result import SendResult

API_BASE = "https://api.telegram.org"
TEXT_LIMIT = TextLimit(4096)


def chat_id(value: str) -> int | str:
    """Telegram's chat ids are integers (negative for groups); @channelusername stays a string."""
    try:
        return int(value)
    except ValueError:
        return value


class TelegramSender(HttpSender):
    routes = (("telegram", "telegram"),)

    def __init__(self, session: aiohttp.ClientSession, *, bot_token: str, base_url: str = API_BASE,
                 timeout: float = 10.0):
        super().__init__(session, timeout=timeout)
        if not bot_token:
            raise ValueError("Telegram replies need the bot token")
        self._token = bot_token
        self.url = f"{base_url.rstrip('/')}/bot{bot_token}/sendMessage"

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self._token,)

    def check(self, reply: Reply, now: datetime) -> None:
        check_content(reply, TEXT_LIMIT, "Telegram")

    def request(self, reply: Reply, now: datetime) -> Request:
        payload: dict[str, Any] = {"chat_id": chat_id(reply.to), "text": reply.text}
        if reply.thread:
            payload["message_thread_id"] = chat_id(reply.thread)
        return Request(self.url, json.dumps(payload, ensure_ascii=False).encode(),
                       {"Content-Type": "application/json"})

    def interpret(self, answer: Answer, now: datetime) -> SendResult:
        body = answer.json_object()
        result = body.get("result")
        if answer.ok and body.get("ok") is True and isinstance(result, dict):
            message_id = result.get("message_id")
            return SendResult.sent(str(message_id) if message_id is not None else None, http_status=answer.status)
        parameters = body.get("parameters")
        wait = parameters.get("retry_after") if isinstance(parameters, dict) else None
        code = body.get("error_code", answer.status)
        return failure(answer, str(code), str(body.get("description") or f"HTTP {answer.status} from Telegram"),
                       retry_after=float(wait) if isinstance(wait, int | float) else
                       retry_after(answer.headers.get("Retry-After"), now))
