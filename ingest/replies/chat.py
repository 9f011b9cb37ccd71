"""Replies to the generic chat webhook's widget: POSTed to its configured callback URL, signed the way
the inbound webhook verifies requests (ingest.channels.chat_webhook), so the widget checks ours with the
same code and secret: `X-Casegate-Timestamp: <unix seconds>` and `X-Casegate-Signature: sha256=<hex>`,
the hex being HMAC-SHA256(secret, timestamp + "." + raw body).

Body (JSON, UTF-8), the inbound message's shape seen from our side:

    {"id": "<our entry id: unique, the widget's dedupe key>",
     "visitor": {"id": "<the visitor's id>"},
     "conversation_id": "<the widget's conversation id, when known>",
     "text": "<the agent's reply>",
     "sent_at": "<RFC 3339, UTC>"}

Any 2xx is delivered (a JSON {"id"} in the answer is the widget's message id; our entry id names it anyway);
408, 429 and 5xx are "retry later"; other 4xx permanent (a JSON {"error"} is the message).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime
from typing import Any

import aiohttp
from casegate.ingest.channels.chat_webhook import SIGNATURE, TIMESTAMP
from casegate.ingest.replies._http import Answer, HttpSender, Request, failure, retry_after
from casegate.ingest.replies.limits import TextLimit, as_utc, check_content
from casegate.ingest.replies.reply import Reply
from casegate.ingest.replies.result import SendResult

DEFAULT_MAX_TEXT = 10_000
"""Ours: the widget is our own contract, so the cap is a setting."""


def chat_signature(secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=` + hex(HMAC-SHA256(secret, timestamp + "." + body)): what chat_webhook verifies."""
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


class ChatSender(HttpSender):
    routes = (("chat", "chat"),)

    def __init__(self, session: aiohttp.ClientSession, *, callback_url: str, secret: str,
                 max_text: int = DEFAULT_MAX_TEXT, timeout: float = 10.0):
        super().__init__(session, timeout=timeout)
        if not callback_url.lower().startswith(("https://", "http://")):
            raise ValueError("chat replies need the widget's callback URL (http or https)")
        if not secret:
            raise ValueError("chat replies need the chat channel's secret")
        self.callback_url = callback_url
        self._secret = secret
        self.limit = TextLimit(max_text)

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self._secret,)

    def check(self, reply: Reply, now: datetime) -> None:
        check_content(reply, self.limit, "The chat widget")

    def request(self, reply: Reply, now: datetime) -> Request:
        at = as_utc(now)
        payload: dict[str, Any] = {"id": reply.entry_id, "visitor": {"id": reply.to}}
        if reply.thread:
            payload["conversation_id"] = reply.thread
        payload |= {"text": reply.text, "sent_at": at.isoformat().replace("+00:00", "Z")}
        body = json.dumps(payload, ensure_ascii=False).encode()
        stamp = str(int(at.timestamp()))
        return Request(self.callback_url, body, {"Content-Type": "application/json", TIMESTAMP: stamp,
                                                 SIGNATURE: chat_signature(self._secret, stamp, body)})

    def interpret(self, answer: Answer, now: datetime) -> SendResult:
        body = answer.json_object()
        if answer.ok:
            given = body.get("id")
            return SendResult.sent(given if isinstance(given, str) and given else None, http_status=answer.status)
        error = body.get("error")
        return failure(answer, str(answer.status), str(error) if error else f"HTTP {answer.status} from the widget",
                       retry_after=retry_after(answer.headers.get("Retry-After"), now))
