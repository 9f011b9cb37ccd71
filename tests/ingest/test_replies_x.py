"""Replies as X Direct Messages to a fake X API v2 on loopback that checks each call as X does: the
OAuth 1.0a signature recomputed here from the request as received (RFC 5849, written independently of
the sender's signer), or an OAuth 2.0 user token; the dm_conversations path and the JSON body. It answers
201 {"data": {"dm_conversation_id", "dm_event_id"}} or X's problem details, with rate-limit headers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import aiohttp
import pytest
from aiohttp import web
from casegate.ingest.replies.oauth1 import OAuth1Credentials
from casegate.ingest.replies.result import Outcome
from casegate.ingest.replies.x_dm import OAuth1UserContext, UserBearerToken, XDirectMessageSender

from tests.ingest.test_replies import Loopback, reply

CONSUMER_KEY, CONSUMER_SECRET = "xvz1evFS4wEEPTGEFPHBog", "kAcSOqF21Fu85e7zjz7ZN2U4ZRhfV3WpwPAoE3Z7kBw"
ACCESS_TOKEN, TOKEN_SECRET = "1533772000000000001-GmHxMAgYyLbNEtIKZeRNFsMKPR9", "LswwdoUaIvS8ltyTt5jkRh4J50vUPVV"
USER_TOKEN = "bWRjZ2xOUmFQZ0FUZ0p0eGltS3ZSZ3:1:1:at:1"
US, LEE, CLOSED = "1533772000000000001", "98765432", "11111111"
UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
HEADER = re.compile(r'OAuth ((?:[A-Za-z0-9_]+="[^"]*"(?:, )?)+)')


def pct(value: str) -> str:
    """RFC 3986 percent-encoding of every octet outside the unreserved set."""
    return "".join(chr(octet) if octet in UNRESERVED else f"%{octet:02X}" for octet in value.encode())


def problem(status: int, title: str, detail: str, **headers: str) -> web.Response:
    return web.json_response({"title": title, "detail": detail, "type": "about:blank", "status": status},
                             status=status, headers=headers)


class FakeXApi:
    def __init__(self) -> None:
        self.server = Loopback(self.handle)
        self.nonces: set[str] = set()
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.rate_limited = 0

    @property
    def base_url(self) -> str:
        return self.server.url("/2")

    def oauth1_problem(self, request: web.Request) -> str | None:
        """Why this request's OAuth 1.0a authorization is not valid, or None when it is."""
        match = HEADER.fullmatch(request.headers.get("Authorization", ""))
        if match is None:
            return "not an OAuth Authorization header"
        params = {name: unquote(value) for name, value in re.findall(r'([A-Za-z0-9_]+)="([^"]*)"', match.group(1))}
        if params.get("oauth_consumer_key") != CONSUMER_KEY or params.get("oauth_token") != ACCESS_TOKEN:
            return "unknown consumer key or token"
        if params.get("oauth_signature_method") != "HMAC-SHA1" or params.get("oauth_version", "1.0") != "1.0":
            return "unsupported signature method or version"
        if not params.get("oauth_timestamp", "").isdigit() or abs(int(params["oauth_timestamp"]) - time.time()) > 300:
            return "timestamp out of bounds"
        nonce = params.get("oauth_nonce", "")
        if not nonce or nonce in self.nonces:
            return "nonce missing or used before"
        self.nonces.add(nonce)
        signed = [(k, v) for k, v in params.items() if k != "oauth_signature"] + list(request.query.items())
        normalised = "&".join(f"{k}={v}" for k, v in sorted((pct(k), pct(v)) for k, v in signed))
        uri = f"{request.scheme}://{request.host.lower()}{request.raw_path.split('?', 1)[0]}"
        base = f"{request.method}&{pct(uri)}&{pct(normalised)}"
        digest = hmac.new(f"{pct(CONSUMER_SECRET)}&{pct(TOKEN_SECRET)}".encode(), base.encode(), hashlib.sha1)
        if not hmac.compare_digest(base64.b64encode(digest.digest()).decode(), params.get("oauth_signature", "")):
            return "signature does not match"
        return None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        authorization = request.headers.get("Authorization", "")
        if authorization != f"Bearer {USER_TOKEN}" and self.oauth1_problem(request) is not None:
            return problem(401, "Unauthorized", "Unauthorized")
        path = re.fullmatch(r"/2/dm_conversations/with/([0-9]{1,19})/messages", request.path)
        if request.method != "POST" or path is None:
            return problem(404, "Not Found Error", f"Could not find {request.path}")
        if request.content_type != "application/json":
            return problem(415, "Unsupported Media Type", "Content-Type must be application/json")
        payload = json.loads(await request.read())
        if set(payload) != {"text"} or not isinstance(payload["text"], str) or not 1 <= len(payload["text"]) <= 10_000:
            return problem(400, "Invalid Request", "One or more parameters to your request was invalid.")
        if self.rate_limited:
            self.rate_limited -= 1
            return problem(429, "Too Many Requests", "Too Many Requests", **{
                "x-rate-limit-limit": "200", "x-rate-limit-remaining": "0",
                "x-rate-limit-reset": str(int(time.time()) + 900)})
        participant = path.group(1)
        if participant == CLOSED:
            return problem(403, "Forbidden", "You are not permitted to send Direct Messages to this user.")
        self.sent.append((participant, payload))
        return web.json_response({"data": {"dm_conversation_id": f"{min(US, participant)}-{max(US, participant)}",
                                           "dm_event_id": str(1799000000000000000 + len(self.sent))}}, status=201)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


@pytest.fixture
async def x_api() -> AsyncIterator[FakeXApi]:
    fake = FakeXApi()
    await fake.server.start()
    yield fake
    await fake.server.close()


def now() -> datetime:
    return datetime.now(UTC)


def oauth1(session: aiohttp.ClientSession, fake: FakeXApi, consumer_secret: str = CONSUMER_SECRET
           ) -> XDirectMessageSender:
    credentials = OAuth1Credentials(CONSUMER_KEY, consumer_secret, ACCESS_TOKEN, TOKEN_SECRET)
    return XDirectMessageSender(session, auth=OAuth1UserContext(credentials), base_url=fake.base_url)


def dm(text: str = "Your refund for order 5520 went out today", to: str = LEE) -> Any:
    return reply(text, channel="x", provider="x", to=to, now=now())


async def test_a_dm_signed_with_oauth1_arrives(session: aiohttp.ClientSession, x_api: FakeXApi) -> None:
    send = oauth1(session, x_api)
    result = await send.send(dm("Refund sent — 20 € & a voucher 🎁 (50% off, ~1 week)"), now())
    assert (result.outcome, result.message_id, result.http_status) == (Outcome.SENT, "1799000000000000001", 201)
    assert (await send.send(dm("Anything else?"), now())).outcome is Outcome.SENT  # a fresh nonce each time
    assert x_api.sent == [(LEE, {"text": "Refund sent — 20 € & a voucher 🎁 (50% off, ~1 week)"}),
                          (LEE, {"text": "Anything else?"})]


async def test_a_wrong_secret_is_refused_by_the_signature_check(session: aiohttp.ClientSession,
                                                                x_api: FakeXApi) -> None:
    result = await oauth1(session, x_api, consumer_secret="not-the-secret").send(dm(), now())
    assert (result.outcome, result.error_code, result.error) == (Outcome.FAILED, "401", "Unauthorized")
    assert x_api.sent == []


async def test_an_oauth2_user_token_authenticates(session: aiohttp.ClientSession, x_api: FakeXApi) -> None:
    send = XDirectMessageSender(session, auth=UserBearerToken(USER_TOKEN), base_url=x_api.base_url)
    assert (await send.send(dm(), now())).outcome is Outcome.SENT
    revoked = XDirectMessageSender(session, auth=UserBearerToken("revoked"), base_url=x_api.base_url)
    assert (await revoked.send(dm(), now())).error_code == "401"


async def test_x_down_then_rate_limited_is_retry_later_and_once_back_the_dm_arrives_once(
        session: aiohttp.ClientSession) -> None:
    fake = FakeXApi()
    try:
        send = oauth1(session, fake)
        down = await send.send(dm(), now())
        assert down.outcome is Outcome.RETRY and down.error is not None and TOKEN_SECRET not in down.error
        await fake.server.start()
        fake.server.outage = True
        assert (await send.send(dm(), now())).http_status == 503
        fake.server.outage = False
        fake.rate_limited = 1
        limited = await send.send(dm(), now())
        assert (limited.outcome, limited.error_code, limited.error) == (
            Outcome.RETRY, "429", "Too Many Requests")
        assert limited.retry_after is not None and 899 <= limited.retry_after <= 900  # until x-rate-limit-reset
        assert (await send.send(dm(), now())).outcome is Outcome.SENT
        assert len(fake.sent) == 1
    finally:
        await fake.server.close()


async def test_a_user_who_does_not_take_our_dms_fails_for_good(session: aiohttp.ClientSession,
                                                               x_api: FakeXApi) -> None:
    result = await oauth1(session, x_api).send(dm(to=CLOSED), now())
    assert (result.outcome, result.error_code, result.error, result.http_status) == (
        Outcome.FAILED, "403", "Forbidden: You are not permitted to send Direct Messages to this user.", 403)


async def test_text_over_10000_characters_is_refused(session: aiohttp.ClientSession, x_api: FakeXApi) -> None:
    send = oauth1(session, x_api)
    assert (await send.send(dm("d" * 10_001), now())).error_code == "text_too_long"
    assert (await send.send(dm("d" * 10_000), now())).outcome is Outcome.SENT
    assert x_api.server.hits == 1
