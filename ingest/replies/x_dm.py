"""Replies as X Direct Messages (https://docs.x.com/x-api/direct-messages/send-a-new-message-to-a-user).

POST {base}/dm_conversations/with/{participant_id}/messages with JSON {"text"}, authenticated as the
account the customer wrote to: OAuth 1.0a user context (oauth1.py: consumer key and secret, access token
and secret) or an OAuth 2.0 user access token (Bearer; scopes dm.write, dm.read, tweet.read, users.read;
it expires, refreshing it is the caller's). X answers 201 {"data": {"dm_conversation_id", "dm_event_id"}};
errors are problem details {"title", "detail", "type", "status"} (or {"errors": [{"message", "code"}]}):
429 (wait until x-rate-limit-reset) and 5xx are "retry later", 400/401/403 permanent (e.g. the user does
not accept DMs from us). At most 10,000 characters. Public replies to mentions are not sent here.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Protocol
from urllib.parse import quote

import aiohttp
from casegate.ingest.replies._http import Answer, HttpSender, Request, failure, retry_after
from casegate.ingest.replies.limits import TextLimit, as_utc, check_content
from casegate.ingest.replies.oauth1 import OAuth1Credentials
from casegate.ingest.replies.reply import Reply
from casegate.ingest.replies.result import SendResult

API_BASE = "https://api.x.com/2"
TEXT_LIMIT = TextLimit(10_000)


class XAuth(Protocol):
    def authorization(self, method: str, url: str, now: datetime) -> str:
        """The Authorization header value of this request."""
        ...

    @property
    def secrets(self) -> tuple[str, ...]: ...


class OAuth1UserContext:
    def __init__(self, credentials: OAuth1Credentials):
        self.credentials = credentials

    def authorization(self, method: str, url: str, now: datetime) -> str:
        return self.credentials.authorization(method, url, timestamp=int(as_utc(now).timestamp()))

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.credentials.consumer_secret, self.credentials.token_secret)


class UserBearerToken:
    """An OAuth 2.0 user-context access token (Authorization Code with PKCE)."""

    def __init__(self, token: str):
        self.token = token

    def authorization(self, method: str, url: str, now: datetime) -> str:
        return f"Bearer {self.token}"

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.token,)


class XDirectMessageSender(HttpSender):
    routes = (("x", "x"),)

    def __init__(self, session: aiohttp.ClientSession, *, auth: XAuth, base_url: str = API_BASE,
                 timeout: float = 10.0):
        super().__init__(session, timeout=timeout)
        self.auth = auth
        self.base_url = base_url.rstrip("/")

    @property
    def secrets(self) -> tuple[str, ...]:
        return self.auth.secrets

    def check(self, reply: Reply, now: datetime) -> None:
        check_content(reply, TEXT_LIMIT, "X")

    def request(self, reply: Reply, now: datetime) -> Request:
        url = f"{self.base_url}/dm_conversations/with/{quote(reply.to, safe='')}/messages"
        body = json.dumps({"text": reply.text}, ensure_ascii=False).encode()
        return Request(url, body, {"Authorization": self.auth.authorization("POST", url, now),
                                   "Content-Type": "application/json"})

    def interpret(self, answer: Answer, now: datetime) -> SendResult:
        body = answer.json_object()
        data = body.get("data")
        if answer.ok and isinstance(data, dict):
            event_id = data.get("dm_event_id")
            return SendResult.sent(str(event_id) if event_id else None, http_status=answer.status)
        errors = body.get("errors")
        first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else {}
        code = str(first.get("code") or body.get("status") or answer.status)
        texts = [str(t) for t in (body.get("title"), body.get("detail"), first.get("message")) if t]
        message = ": ".join(dict.fromkeys(texts)) or f"HTTP {answer.status} from X"
        wait = retry_after(answer.headers.get("Retry-After"), now)
        reset = answer.headers.get("x-rate-limit-reset", "")
        if wait is None and reset.strip().isdigit():  # unix seconds when the rate-limit window resets
            wait = max(int(reset) - as_utc(now).timestamp(), 0.0)
        return failure(answer, code, message, retry_after=wait)
