"""What the HTTP reply senders share: one POST over the caller's aiohttp session (connection refused,
reset or timed out is "retry later"), the provider's answer read within a bound, Retry-After read, and a
small base class that runs check → request → post → interpret, so each provider module holds only its
wire format."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
from casegate.ingest.replies.errors import ProviderUnreachable, ReplyRefused
from casegate.ingest.replies.limits import as_utc
from casegate.ingest.replies.reply import Reply
from casegate.ingest.replies.result import SendResult
from casegate.ingest.replies.sender import Route
from yarl import URL

MAX_ANSWER = 1024 * 1024
"""Bytes of a provider's answer read: theirs are a few hundred; more is not a provider talking."""
CHUNK = 65536
RETRY_STATUSES = frozenset({408, 425, 429})
"""4xx statuses that mean "not now" rather than "never"; every 5xx does too."""


@dataclass(frozen=True)
class Request:
    url: str
    """Already percent-encoded where it needs to be: sent exactly as written (signatures cover it)."""
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        """The body as JSON, or None when it is not JSON."""
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return None

    def json_object(self) -> dict[str, Any]:
        """The body as a JSON object, or {} when it is not one."""
        value = self.json()
        return value if isinstance(value, dict) else {}

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def scrub(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


async def post(session: aiohttp.ClientSession, request: Request, timeout: float) -> Answer:
    """POST `request` and read the answer (no redirects followed: an API does not redirect a send)."""
    try:
        async with session.post(URL(request.url, encoded=True), data=request.body, headers=dict(request.headers),
                                timeout=aiohttp.ClientTimeout(total=timeout), allow_redirects=False) as resp:
            body = bytearray()
            async for chunk in resp.content.iter_chunked(CHUNK):
                body += chunk[: MAX_ANSWER - len(body)]
                if len(body) >= MAX_ANSWER:
                    break
            return Answer(resp.status, resp.headers.copy(), bytes(body))  # names case-insensitive
    except (aiohttp.ClientError, TimeoutError, OSError) as e:
        raise ProviderUnreachable(f"{type(e).__name__}: {e}" if str(e) else type(e).__name__) from None


def retry_after(value: str | None, now: datetime) -> float | None:
    """A Retry-After header's seconds (delta-seconds or an HTTP date); None when absent or unreadable."""
    if not value or not value.strip():
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max((as_utc(when) - as_utc(now)).total_seconds(), 0.0)


def failure(answer: Answer, code: str | None, error: str, *, retry_after: float | None = None,
            transient: bool = False) -> SendResult:
    """A provider's refusal: retry later when it is transient (as the provider marks it, or by status:
    408, 425, 429, 5xx), failed for good otherwise."""
    if transient or answer.status in RETRY_STATUSES or answer.status >= 500:
        return SendResult.retry_later(error, code=code, retry_after=retry_after, http_status=answer.status)
    return SendResult.failed(code, error, http_status=answer.status)


class HttpSender(ABC):
    """A reply sender that makes one HTTP POST per reply over the caller's session (shared, owned by the
    process: the senders never close it)."""

    routes: tuple[Route, ...]

    def __init__(self, session: aiohttp.ClientSession, *, timeout: float = 10.0):
        self.session = session
        self.timeout = timeout

    @property
    def secrets(self) -> tuple[str, ...]:
        """Credentials that must not appear in an error text (e.g. a bot token inside the URL)."""
        return ()

    @abstractmethod
    def check(self, reply: Reply, now: datetime) -> None:
        """Raise ReplyRefused when the provider would not take this reply."""

    @abstractmethod
    def request(self, reply: Reply, now: datetime) -> Request:
        """The provider's request for this (checked) reply, authenticated."""

    @abstractmethod
    def interpret(self, answer: Answer, now: datetime) -> SendResult:
        """The provider's answer as a result."""

    async def send(self, reply: Reply, now: datetime) -> SendResult:
        try:
            self.check(reply, now)
        except ReplyRefused as refusal:
            return SendResult.refused(refusal)
        try:
            answer = await post(self.session, self.request(reply, now), self.timeout)
        except ProviderUnreachable as e:
            return SendResult.retry_later(scrub(str(e), self.secrets))
        result = self.interpret(answer, now)
        return result if result.error is None else replace(result, error=scrub(result.error, self.secrets))
