"""Replies over Meta's Graph API — WhatsApp Cloud, Messenger and Instagram — to a fake Graph API on
loopback that checks each call as Meta does: the bearer token, `appsecret_proof` (HMAC-SHA256 of the token
with the app secret) when the app requires it, the versioned path, the JSON payload; it answers with
Meta's results and error objects (HTTP 400 also for rate limits, told apart by their codes)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from casegate.ingest.replies._graph import appsecret_proof
from casegate.ingest.replies.delivery_status import DeliveryStatus
from casegate.ingest.replies.errors import ReplyRefused
from casegate.ingest.replies.meta_messenger import MessengerSender
from casegate.ingest.replies.meta_whatsapp import WhatsAppCloudSender
from casegate.ingest.replies.reply import Template
from casegate.ingest.replies.result import Outcome

from tests.ingest.test_replies import Loopback, reply

VERSION = "v23.0"
APP_SECRET = "meta-app-secret-1f2e3d"
WA_TOKEN = "EAAGwhatsappSystemUserToken0123"
PAGE_TOKEN = "EAAGpageToken4567"
IG_TOKEN = "EAAGinstagramPageToken89"
PHONE_ID = "209715200000002"
PAGE_ID = "311112222233333"
CUSTOMER = "4915112345678"
PSID, IGSID = "6021948837712345", "17841400000000001"


def graph_error(status: int, code: int, message: str, *, kind: str = "OAuthException", subcode: int | None = None,
                details: str | None = None) -> web.Response:
    error: dict[str, Any] = {"message": message, "type": kind, "code": code, "fbtrace_id": "AbCdEf123"}
    if subcode is not None:
        error["error_subcode"] = subcode
    if details is not None:
        error["error_data"] = {"messaging_product": "whatsapp", "details": details}
    return web.json_response({"error": error}, status=status)


class FakeGraph:
    """The Graph API of one app that requires appsecret_proof: a WhatsApp phone number and a Page
    (Messenger, and its Instagram account), with what Meta knows about each customer."""

    def __init__(self) -> None:
        self.server = Loopback(self.handle)
        self.sent: list[tuple[str, dict[str, Any]]] = []
        """(path, payload) of every message Meta accepted."""
        self.allowed_recipients = {CUSTOMER}
        """A WhatsApp number in development mode only sends to numbers on its list (else 131030)."""
        self.last_message: dict[str, float] = {}
        """Messenger/Instagram: when each user last wrote (the window Meta enforces itself)."""
        self.throttled = 0

    @property
    def base_url(self) -> str:
        return self.server.url(f"/{VERSION}")

    async def handle(self, request: web.Request) -> web.StreamResponse:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Bearer" or token not in (WA_TOKEN, PAGE_TOKEN, IG_TOKEN):
            return graph_error(401, 190, "Invalid OAuth access token - Cannot parse access token")
        proof = request.query.get("appsecret_proof")
        if proof is None:
            return graph_error(400, 100, "API calls from the server require an appsecret_proof argument",
                               kind="GraphMethodException")
        if not hmac.compare_digest(proof, hmac.new(APP_SECRET.encode(), token.encode(), hashlib.sha256).hexdigest()):
            return graph_error(400, 100, "Invalid appsecret_proof provided in the API argument",
                               kind="GraphMethodException")
        if request.method != "POST" or request.content_type != "application/json" or set(request.query) != {
                "appsecret_proof"}:
            return graph_error(400, 100, "fake Graph: a JSON POST with only appsecret_proof in the query is expected")
        payload = json.loads(await request.read())
        if request.path == f"/{VERSION}/{PHONE_ID}/messages" and token == WA_TOKEN:
            return self.whatsapp(payload)
        if request.path in (f"/{VERSION}/me/messages", f"/{VERSION}/{PAGE_ID}/messages") and token != WA_TOKEN:
            return self.messenger(payload, instagram=token == IG_TOKEN)
        return graph_error(400, 100, f"Unsupported post request. Object with ID '{request.path}' does not exist",
                           kind="GraphMethodException", subcode=33)

    def whatsapp(self, payload: dict[str, Any]) -> web.Response:
        if self.throttled:
            self.throttled -= 1
            return graph_error(400, 130429, "(#130429) Rate limit hit",
                               details="Cloud API message throughput has been reached.")
        kind = payload.get("type")
        if payload.get("messaging_product") != "whatsapp" or set(payload) != {"messaging_product", "to", "type", kind}:
            return graph_error(400, 100, f"fake Graph: unexpected WhatsApp payload {payload}")
        if kind == "text":
            body = payload["text"].get("body") if set(payload["text"]) == {"body"} else None
            if not isinstance(body, str) or len(body) > 4096:
                return graph_error(400, 100, "(#100) Invalid parameter",
                                   details="text['body'] must be 1-4096 characters")
        elif kind == "template":
            template = payload["template"]
            if not (set(template) <= {"name", "language", "components"} and isinstance(template.get("name"), str)
                    and set(template.get("language", {})) == {"code"}):
                return graph_error(400, 100, "(#100) Invalid parameter", details=f"template {template}")
        else:
            return graph_error(400, 131051, "Unsupported message type")
        if payload["to"] not in self.allowed_recipients:
            return graph_error(400, 131030, "(#131030) Recipient phone number not in allowed list",
                               details="Recipient phone number not in allowed list: Add recipient phone number to "
                                       "recipient list and try again.")
        self.sent.append((f"/{PHONE_ID}/messages", payload))
        return web.json_response({"messaging_product": "whatsapp",
                                  "contacts": [{"input": payload["to"], "wa_id": payload["to"]}],
                                  "messages": [{"id": "wamid." + uuid.uuid4().hex, "message_status": "accepted"}]})

    def messenger(self, payload: dict[str, Any], *, instagram: bool) -> web.Response:
        kind = payload.get("messaging_type")
        expected = {"recipient", "messaging_type", "message"} | ({"tag"} if kind == "MESSAGE_TAG" else set())
        if set(payload) != expected or set(payload["recipient"]) != {"id"} or set(payload["message"]) != {"text"}:
            return graph_error(400, 100, f"fake Graph: unexpected Send API payload {payload}")
        user, text = payload["recipient"]["id"], payload["message"]["text"]
        if user not in self.last_message:
            return graph_error(400, 100, "(#100) No matching user found", subcode=2018001)
        if (len(text.encode()) > 1000) if instagram else (len(text) > 2000):
            return graph_error(400, 100, "(#100) Length of param message[text] must be less than or equal to "
                                         f"{1000 if instagram else 2000}")
        age = time.time() - self.last_message[user]
        allowed = 24 * 3600 if kind == "RESPONSE" else 7 * 24 * 3600 if payload.get("tag") == "HUMAN_AGENT" else 0
        if age >= allowed:
            return graph_error(400, 10, "(#10) This message is sent outside of allowed window.", subcode=2018278)
        self.sent.append(("/me/messages", payload))
        return web.json_response({"recipient_id": user, "message_id": "m_" + uuid.uuid4().hex})


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


@pytest.fixture
async def graph() -> AsyncIterator[FakeGraph]:
    fake = FakeGraph()
    await fake.server.start()
    yield fake
    await fake.server.close()


def now() -> datetime:
    return datetime.now(UTC)


def whatsapp(session: aiohttp.ClientSession, fake: FakeGraph, **more: Any) -> WhatsAppCloudSender:
    settings: dict[str, Any] = {"access_token": WA_TOKEN, "phone_number_id": PHONE_ID, "app_secret": APP_SECRET,
                                **more}
    return WhatsAppCloudSender(session, base_url=fake.base_url, **settings)


def messenger(session: aiohttp.ClientSession, fake: FakeGraph, channel: str = "messenger",
              **more: Any) -> MessengerSender:
    token = IG_TOKEN if channel == "instagram" else PAGE_TOKEN
    settings: dict[str, Any] = {"access_token": token, "app_secret": APP_SECRET, **more}
    return MessengerSender(session, channel=channel, base_url=fake.base_url, **settings)  # type: ignore[arg-type]


def wa_reply(text: str | None = "Invoice 7731 is refunded", **more: Any) -> Any:
    return reply(text, channel="whatsapp", provider="meta", to=CUSTOMER, now=now(), **more)


def test_appsecret_proof_is_the_hmac_sha256_of_the_token_with_the_app_secret() -> None:
    # the key is the app secret, the message the token (`openssl dgst -sha256 -hmac secret` of "token")
    assert appsecret_proof("token", "secret") == "e941110e3d2bfe82621f0e3e1434730d7305d106c5f68c87165d0b27a4611a4a"


async def test_a_whatsapp_reply_arrives_with_its_wamid(session: aiohttp.ClientSession, graph: FakeGraph) -> None:
    result = await whatsapp(session, graph).send(wa_reply("Invoice 7731 is refunded — sorry ✨"), now())
    assert (result.outcome, result.status, result.http_status) == (Outcome.SENT, DeliveryStatus.QUEUED, 200)
    assert result.message_id is not None and result.message_id.startswith("wamid.")
    assert graph.sent == [(f"/{PHONE_ID}/messages", {"messaging_product": "whatsapp", "to": CUSTOMER, "type": "text",
                                                     "text": {"body": "Invoice 7731 is refunded — sorry ✨"}})]


async def test_graph_checks_the_token_and_the_proof(session: aiohttp.ClientSession, graph: FakeGraph) -> None:
    wrong_token = await whatsapp(session, graph, access_token="EAAGrevoked").send(wa_reply(), now())
    assert (wrong_token.outcome, wrong_token.error_code, wrong_token.http_status) == (Outcome.FAILED, "190", 401)
    assert wrong_token.error is not None and "EAAGrevoked" not in wrong_token.error
    no_proof = await whatsapp(session, graph, app_secret="").send(wa_reply(), now())
    assert (no_proof.outcome, no_proof.error_code, no_proof.error) == (
        Outcome.FAILED, "100", "API calls from the server require an appsecret_proof argument")
    wrong_proof = await whatsapp(session, graph, app_secret="another-apps-secret").send(wa_reply(), now())
    assert (wrong_proof.outcome, wrong_proof.error) == (
        Outcome.FAILED, "Invalid appsecret_proof provided in the API argument")
    assert graph.sent == []


async def test_graph_down_then_throttling_is_retry_later_and_once_back_the_reply_arrives_once(
        session: aiohttp.ClientSession) -> None:
    fake = FakeGraph()
    try:
        send = whatsapp(session, fake)
        assert (await send.send(wa_reply(), now())).outcome is Outcome.RETRY  # connection refused
        await fake.server.start()
        fake.server.outage = True
        outage = await send.send(wa_reply(), now())
        assert (outage.outcome, outage.http_status, outage.error) == (
            Outcome.RETRY, 503, "HTTP 503 from the Graph API")
        fake.server.outage = False
        fake.throttled = 1
        throttled = await send.send(wa_reply(), now())  # HTTP 400, but a rate limit: not a refusal
        assert (throttled.outcome, throttled.error_code, throttled.http_status) == (Outcome.RETRY, "130429", 400)
        assert throttled.error == "(#130429) Rate limit hit — Cloud API message throughput has been reached."
        back = await send.send(wa_reply(), now())
        assert back.outcome is Outcome.SENT
        assert len(fake.sent) == 1
    finally:
        await fake.server.close()


async def test_a_recipient_meta_refuses_fails_for_good_with_its_code(
        session: aiohttp.ClientSession, graph: FakeGraph) -> None:
    result = await whatsapp(session, graph).send(
        reply(channel="whatsapp", provider="meta", to="15550001111", now=now()), now())
    assert (result.outcome, result.status, result.error_code, result.http_status) == (
        Outcome.FAILED, DeliveryStatus.FAILED, "131030", 400)
    assert result.error == ("(#131030) Recipient phone number not in allowed list — Recipient phone number not in "
                            "allowed list: Add recipient phone number to recipient list and try again.")


async def test_whatsapp_outside_24_hours_free_text_is_refused_and_a_template_is_sent(
        session: aiohttp.ClientSession, graph: FakeGraph) -> None:
    send = whatsapp(session, graph)
    refused = await send.send(wa_reply(ago=timedelta(hours=24, seconds=1)), now())
    assert (refused.outcome, refused.error_code) == (Outcome.FAILED, "outside_window")
    assert graph.server.hits == 0
    with pytest.raises(ReplyRefused, match="within 24 hours"):
        send.check(wa_reply(ago=timedelta(days=2)), now())

    template = Template("order_update", "de", ("Jonas", "7731"))
    sent = await send.send(wa_reply(None, ago=timedelta(days=2), template=template), now())
    assert sent.outcome is Outcome.SENT
    assert graph.sent[-1][1] == {
        "messaging_product": "whatsapp", "to": CUSTOMER, "type": "template",
        "template": {"name": "order_update", "language": {"code": "de"}, "components": [
            {"type": "body", "parameters": [{"type": "text", "text": "Jonas"}, {"type": "text", "text": "7731"}]}]}}
    bare = await send.send(wa_reply(None, ago=None, template=Template("hello_world")), now())
    assert bare.outcome is Outcome.SENT
    assert graph.sent[-1][1]["template"] == {"name": "hello_world", "language": {"code": "en_US"}}


async def test_whatsapp_text_over_4096_characters_is_refused(session: aiohttp.ClientSession, graph: FakeGraph) -> None:
    send = whatsapp(session, graph)
    assert (await send.send(wa_reply("b" * 4097), now())).error_code == "text_too_long"
    assert (await send.send(wa_reply("b" * 4096), now())).outcome is Outcome.SENT
    assert graph.server.hits == 1


async def test_a_messenger_reply_arrives_as_a_response_within_24_hours(
        session: aiohttp.ClientSession, graph: FakeGraph) -> None:
    graph.last_message[PSID] = time.time() - 3600
    result = await messenger(session, graph).send(
        reply("Screen stays black? Hold the power button 10 s", channel="messenger", provider="meta", to=PSID,
              now=now()), now())
    assert (result.outcome, result.status) == (Outcome.SENT, DeliveryStatus.SENT)
    assert result.message_id is not None and result.message_id.startswith("m_")
    assert graph.sent == [("/me/messages", {"recipient": {"id": PSID}, "messaging_type": "RESPONSE",
                                            "message": {"text": "Screen stays black? Hold the power button 10 s"}})]


async def test_messenger_refuses_a_late_reply_and_the_human_agent_tag_extends_it_to_7_days(
        session: aiohttp.ClientSession, graph: FakeGraph) -> None:
    graph.last_message[PSID] = time.time() - 3 * 86400
    late = reply(channel="messenger", provider="meta", to=PSID, ago=timedelta(days=3), now=now())
    refused = await messenger(session, graph).send(late, now())
    assert (refused.outcome, refused.error_code) == (Outcome.FAILED, "outside_window")
    assert graph.server.hits == 0

    agent = messenger(session, graph, human_agent=True, page_id=PAGE_ID)
    assert (await agent.send(late, now())).outcome is Outcome.SENT
    assert graph.sent[-1][1]["messaging_type"] == "MESSAGE_TAG" and graph.sent[-1][1]["tag"] == "HUMAN_AGENT"
    older = reply(channel="messenger", provider="meta", to=PSID, ago=timedelta(days=8), now=now())
    assert (await agent.send(older, now())).error_code == "outside_window"


async def test_when_meta_knows_the_window_is_closed_the_reply_fails_with_its_code(
        session: aiohttp.ClientSession, graph: FakeGraph) -> None:
    """Our record says the customer wrote an hour ago; Meta's says two days: Meta's refusal is final."""
    graph.last_message[PSID] = time.time() - 2 * 86400
    result = await messenger(session, graph).send(
        reply(channel="messenger", provider="meta", to=PSID, now=now()), now())
    assert (result.outcome, result.error_code, result.error) == (
        Outcome.FAILED, "10/2018278", "(#10) This message is sent outside of allowed window.")


async def test_instagram_counts_utf8_bytes_and_messenger_characters(
        session: aiohttp.ClientSession, graph: FakeGraph) -> None:
    graph.last_message[IGSID] = graph.last_message[PSID] = time.time() - 60
    ig, fb = messenger(session, graph, "instagram"), messenger(session, graph)

    def to(user: str, channel: str, text: str) -> Any:
        return reply(text, channel=channel, provider="meta", to=user, now=now())

    assert (await ig.send(to(IGSID, "instagram", "ü" * 501), now())).error_code == "text_too_long"
    assert (await ig.send(to(IGSID, "instagram", "ü" * 500), now())).outcome is Outcome.SENT
    assert (await fb.send(to(PSID, "messenger", "ü" * 2001), now())).error_code == "text_too_long"
    assert (await fb.send(to(PSID, "messenger", "ü" * 2000), now())).outcome is Outcome.SENT
    assert graph.server.hits == 2
    assert ig.routes == (("instagram", "meta"),) and fb.routes == (("messenger", "meta"),)
