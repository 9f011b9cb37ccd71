"""Meta webhooks (WhatsApp Cloud API, Messenger, Instagram) end to end: real HTTP over loopback into the
in-process pipeline, every POST signed as Meta signs it (HMAC-SHA256 with the app secret over the raw
bytes, serialised as Meta does: non-ASCII as \\uXXXX, `/` as `\\/`)."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from casegate.config import Settings
from casegate.store.models import Contact, ConversationEntry, ProcessedMessage
from sqlalchemy import func, select

from tests.pipeline import Pipeline, settings_for, start_pipeline

SECRET = "test_app_secret"
VERIFY_TOKEN = "let-me-in"
PATH = "/hooks/meta"

# WhatsApp Cloud API's documented shapes: one text message and one document in the same delivery
WHATSAPP_EXAMPLE: dict[str, Any] = {
    "object": "whatsapp_business_account",
    "entry": [{
        "id": "104857600000001",
        "changes": [{
            "field": "messages",
            "value": {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "15550100", "phone_number_id": "209715200000002"},
                "contacts": [{"profile": {"name": "Jonas"}, "wa_id": "4915112345678", "user_id": "DE.88211907345566"}],
                "messages": [
                    {"from": "4915112345678", "id": "wamid.HBgNNDkxNTExMjM0NTY3OBUCABIYFkE1RTkw",
                     "timestamp": "1780402200", "type": "text",
                     "text": {"body": "Invoice 7731 is charged twice"}},
                    {"from": "4915112345678", "id": "wamid.HBgNNDkxNTExMjM0NTY3OBUCABIYFkE1RTkx",
                     "timestamp": "1780402207", "type": "document",
                     "context": {"from": "15550100", "id": "wamid.HBgNMTU1NTAxMDAVAgARGBJBQkNE"},
                     "document": {"id": "1230009876543", "mime_type": "application/pdf",
                                  "sha256": "k2pQ1…=", "filename": "statement.pdf", "caption": "bank statement"}},
                ],
            },
        }],
    }],
}

# Messenger's documented shapes: a Messenger text and an image attachment
MESSENGER_EXAMPLE: dict[str, Any] = {
    "object": "page",
    "entry": [{
        "id": "311112222233333", "time": 1780402210123,
        "messaging": [{
            "sender": {"id": "6021948837712345"}, "recipient": {"id": "311112222233333"},
            "timestamp": 1780402209876,
            "message": {"mid": "m_Qx8rT2u4AbCdEfGhIjKlMnOp", "text": "Screen stays black after update",
                        "attachments": [{"type": "image", "payload": {
                            "url": "https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=1&signature=abc"}}]},
        }],
    }],
}


VECTOR_BODY = (rb'{"object":"page","entry":[{"id":"1","time":1,"messaging":'
               rb'[{"message":{"text":"\u00e4\u00f6\u00e5"}}]}]}')
"""A body with escaped unicode as Meta sends it; signed with SECRET it is sha256=e57fe0e2..."""


def meta_bytes(payload: Any) -> bytes:
    """The body as Meta serialises it: compact, non-ASCII as \\uXXXX (lowercase hex), `/` as `\\/`."""
    return json.dumps(payload, separators=(",", ":")).replace("/", "\\/").encode()


def signature(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def whatsapp(*messages: dict[str, Any], contacts: list[dict[str, Any]] | None = None,
             statuses: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    value: dict[str, Any] = {"messaging_product": "whatsapp",
                             "metadata": {"display_phone_number": "15550100", "phone_number_id": "209715200000002"}}
    if messages:
        value["messages"] = list(messages)
        value["contacts"] = contacts if contacts is not None else [{"profile": {"name": "Jonas"},
                                                                     "wa_id": "4915112345678"}]
    if statuses:
        value["statuses"] = statuses
    return {"object": "whatsapp_business_account",
            "entry": [{"id": "104857600000001", "changes": [{"field": "messages", "value": value}]}]}


def wa_text(wamid: str, body: str, sender: str = "4915112345678") -> dict[str, Any]:
    return {"from": sender, "id": wamid, "timestamp": "1780402200", "type": "text", "text": {"body": body}}


def meta_settings(tmp_path: Path, **meta: Any) -> Settings:
    return settings_for("local-sqlite", tmp_path, channels={"meta": channel(**meta)})


def channel(**meta: Any) -> dict[str, Any]:
    return {"enabled": True, "app_secret": SECRET, "verify_token": VERIFY_TOKEN, **meta}


@pytest.fixture
async def meta(tmp_path: Path) -> AsyncIterator[Pipeline]:
    p = await start_pipeline(meta_settings(tmp_path))
    try:
        yield p
    finally:
        await p.daemon.stop()


async def post(p: Pipeline, payload: Any, *, sig: str | None = "sign", secret: str = SECRET,
               body: bytes | None = None) -> tuple[int, Any]:
    """POST a delivery; `sig="sign"` signs the body as Meta does, None sends no signature header."""
    raw = body if body is not None else meta_bytes(payload)
    headers = {"Content-Type": "application/json"}
    if sig is not None:
        headers["X-Hub-Signature-256"] = signature(raw, secret) if sig == "sign" else sig
    async with aiohttp.ClientSession() as http, http.post(
            f"http://127.0.0.1:{p.daemon.http_port}{PATH}", data=raw, headers=headers) as r:
        return r.status, await r.json()


async def entries(p: Pipeline) -> list[tuple[str, str | None]]:
    assert p.daemon.db is not None
    async with p.daemon.db.session() as s:
        rows = await s.execute(select(ConversationEntry.MessageIdentifier, ConversationEntry.Message)
                               .order_by(ConversationEntry.CreatedDate, ConversationEntry.MessageIdentifier))
        return [(r[0], r[1]) for r in rows]


async def processed(p: Pipeline) -> int:
    assert p.daemon.db is not None
    async with p.daemon.db.session() as s:
        return int((await s.execute(select(func.count()).select_from(ProcessedMessage))).scalar_one())


async def nothing_published(p: Pipeline) -> None:
    await p.wait_idle()
    assert p.daemon.worker is not None and p.daemon.worker.processed == 0
    assert await p.cases() == []


def test_the_test_signs_as_meta_does() -> None:
    """GitHub's published vector of the same construction (X-Hub-Signature-256), and the escaped-unicode body."""
    assert signature(b"Hello, World!", "It's a Secret to Everybody") == (
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17")
    body = meta_bytes({"object": "page", "entry": [{"id": "1", "time": 1, "messaging": [
        {"message": {"text": "äöå"}}]}]})
    assert body == VECTOR_BODY
    assert signature(body) == "sha256=e57fe0e254957c4a60e7706ce5347df1d2a169d4b67f1263f9eaa80760933951"


async def test_hub_challenge_answers_the_challenge_only_to_our_verify_token(meta: Pipeline) -> None:
    url = f"http://127.0.0.1:{meta.daemon.http_port}{PATH}"
    async with aiohttp.ClientSession() as http:
        async with http.get(url, params={"hub.mode": "subscribe", "hub.challenge": "1158201444",
                                         "hub.verify_token": VERIFY_TOKEN}) as r:
            assert (r.status, r.content_type, await r.text()) == (200, "text/plain", "1158201444")
        for wrong in ({"hub.mode": "subscribe", "hub.challenge": "1", "hub.verify_token": "guess"},
                      {"hub.mode": "unsubscribe", "hub.challenge": "1", "hub.verify_token": VERIFY_TOKEN},
                      {"hub.mode": "subscribe", "hub.challenge": "1"}):
            async with http.get(url, params=wrong) as r:
                assert r.status == 403
                assert "1" not in await r.text()


async def test_text_and_document_in_one_delivery_make_one_case_with_two_entries(
        deployment_settings: Callable[..., Settings]) -> None:
    p = await start_pipeline(deployment_settings(channels={"meta": channel()}))
    try:
        assert await post(p, WHATSAPP_EXAMPLE) == (200, {"accepted": 2})
        [row] = await p.wait_for(lambda cs: len(cs) == 1)
        await p.wait_idle()
        case = await p.case(row["CaseNumber"])
        assert (case["Origin"], case["Subject"], case["SuppliedPhone"], case["SuppliedName"]) == (
            "WhatsApp", "Invoice 7731 is charged twice", "+4915112345678", "Jonas")
        text, document = case["ConversationEntries"]
        assert (text["Channel"], text["EntryType"], text["Message"], text["MessageIdentifier"], text["Recipient"]) == (
            "whatsapp", "Text", "Invoice 7731 is charged twice", "wamid.HBgNNDkxNTExMjM0NTY3OBUCABIYFkE1RTkw",
            "+15550100")  # our business number, in E.164 like every other channel's
        assert (text["ActorIdentifier"], text["ActorName"]) == ("+4915112345678", "Jonas")
        assert (document["EntryType"], document["Message"]) == ("Media", "bank statement")
        assert json.loads(document["MediaUrls"]) == ["https://graph.facebook.com/1230009876543"]
        details = json.loads(document["Details"])
        assert {k: details[k] for k in ("media_id", "mime_type", "filename", "caption", "type", "reply_to")} == {
            "media_id": "1230009876543", "mime_type": "application/pdf", "filename": "statement.pdf",
            "caption": "bank statement", "type": "document", "reply_to": "wamid.HBgNMTU1NTAxMDAVAgARGBJBQkNE"}
        assert p.daemon.db is not None
        async with p.daemon.db.session() as s:
            contact = (await s.execute(select(Contact).where(Contact.Id == case["ContactId"]))).scalar_one()
        assert (contact.LastName, contact.Phone, contact.PhoneKey) == ("Jonas", "+4915112345678", "+4915112345678")
    finally:
        await p.daemon.stop()


async def test_statuses_are_kept_as_delivery_reports_and_open_no_case(meta: Pipeline) -> None:
    statuses = [{"id": "wamid.OUT1", "status": "delivered", "timestamp": "1780402300", "recipient_id": "4915112345678"},
                {"id": "wamid.OUT1", "status": "read", "timestamp": "1780402310", "recipient_id": "4915112345678"}]
    assert await post(meta, whatsapp(statuses=statuses)) == (200, {"accepted": 2})
    other_field = {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [
        {"field": "account_update", "value": {"event": "VERIFIED_ACCOUNT"}}]}]}
    assert await post(meta, other_field) == (200, {"accepted": 0})
    assert await meta.published() == 2  # durable before the 200, as every inbound message
    await meta.wait_idle()
    assert await meta.cases() == []


async def test_every_whatsapp_message_type_is_recorded_never_dropped(meta: Pipeline) -> None:
    messages: list[dict[str, Any]] = [
        {"from": "4915112345678", "id": "wamid.I1", "timestamp": "1", "type": "interactive",
         "interactive": {"type": "button_reply", "button_reply": {"id": "refund_yes", "title": "Yes, refund"}}},
        {"from": "4915112345678", "id": "wamid.I2", "timestamp": "2", "type": "interactive",
         "interactive": {"type": "list_reply", "list_reply": {"id": "slot_3", "title": "Tuesday",
                                                              "description": "9-12"}}},
        {"from": "4915112345678", "id": "wamid.L1", "timestamp": "3", "type": "location",
         "location": {"latitude": 52.52, "longitude": 13.405, "name": "Shop", "address": "Main St 1"}},
        {"from": "4915112345678", "id": "wamid.C1", "timestamp": "4", "type": "contacts",
         "contacts": [{"name": {"formatted_name": "Ada Lovelace"}, "phones": [{"phone": "+44 20 7123 4567"}]}]},
        {"from": "4915112345678", "id": "wamid.R1", "timestamp": "5", "type": "reaction",
         "reaction": {"message_id": "wamid.I1", "emoji": "👍"}},
        {"from": "4915112345678", "id": "wamid.A1", "timestamp": "6", "type": "audio",
         "audio": {"id": "555", "mime_type": "audio/ogg; codecs=opus", "sha256": "x", "voice": True}},
        {"from": "4915112345678", "id": "wamid.U1", "timestamp": "7", "type": "unsupported",
         "errors": [{"code": 131051, "title": "Message type unknown"}]},
        {"from": "4915112345678", "id": "wamid.N1", "timestamp": "8", "type": "hologram", "hologram": {"id": "9"}},
    ]
    assert await post(meta, whatsapp(*messages)) == (200, {"accepted": 8})
    [row] = await meta.wait_for(lambda cs: len(cs) == 1)
    await meta.wait_idle()
    case = await meta.case(row["CaseNumber"])
    got = {e["MessageIdentifier"]: (e["EntryType"], e["Message"]) for e in case["ConversationEntries"]}
    assert got == {
        "wamid.I1": ("Text", "Yes, refund [refund_yes]"),
        "wamid.I2": ("Text", "Tuesday [slot_3]"),
        "wamid.L1": ("Text", "[location: Shop, Main St 1 (52.52, 13.405)]"),
        "wamid.C1": ("Text", "[contact card: Ada Lovelace +44 20 7123 4567]"),
        "wamid.R1": ("Text", "[reaction 👍 to wamid.I1]"),
        "wamid.A1": ("Media", "[audio]"),
        "wamid.U1": ("Text", "[unsupported message: Message type unknown]"),
        "wamid.N1": ("Text", "[hologram message]"),
    }
    details = {e["MessageIdentifier"]: json.loads(e["Details"]) for e in case["ConversationEntries"]}
    assert details["wamid.I2"]["reply_description"] == "9-12"
    assert (details["wamid.A1"]["voice"], details["wamid.A1"]["mime_type"]) == ("true", "audio/ogg; codecs=opus")
    assert details["wamid.N1"] == {"type": "hologram", "payload": '{"id": "9"}',
                                   "phone_number_id": "209715200000002", "sent_at": "1970-01-01T00:00:08+00:00"}


async def test_messenger_text_with_an_image_makes_a_case_with_media(
        deployment_settings: Callable[..., Settings]) -> None:
    p = await start_pipeline(deployment_settings(channels={"meta": channel()}))
    try:
        assert await post(p, MESSENGER_EXAMPLE) == (200, {"accepted": 1})
        [row] = await p.wait_for(lambda cs: len(cs) == 1)
        await p.wait_idle()
        case = await p.case(row["CaseNumber"])
        assert (case["Origin"], case["Subject"]) == ("Messenger", "Screen stays black after update")
        [entry] = case["ConversationEntries"]
        assert (entry["Channel"], entry["EntryType"], entry["Message"], entry["MessageIdentifier"],
                entry["ActorIdentifier"], entry["Recipient"]) == (
            "messenger", "Media", "Screen stays black after update", "m_Qx8rT2u4AbCdEfGhIjKlMnOp",
            "6021948837712345", "311112222233333")
        assert json.loads(entry["MediaUrls"]) == [
            "https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=1&signature=abc"]
        assert json.loads(entry["Details"])["attachments"] == "image"
    finally:
        await p.daemon.stop()


async def test_instagram_message_makes_an_instagram_case(meta: Pipeline) -> None:
    dm = {"object": "instagram", "entry": [{"id": "17841400000000001", "time": 1780402210123, "messaging": [{
        "sender": {"id": "1234567890123456"}, "recipient": {"id": "17841400000000001"}, "timestamp": 1780402209876,
        "message": {"mid": "aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQx", "text": "Wo bleibt meine Bestellung? 📦"}}]}]}
    assert await post(meta, dm) == (200, {"accepted": 1})
    [row] = await meta.wait_for(lambda cs: len(cs) == 1)
    await meta.wait_idle()
    case = await meta.case(row["CaseNumber"])
    [entry] = case["ConversationEntries"]
    assert (case["Origin"], entry["Channel"], entry["EntryType"], entry["Message"], entry["ActorIdentifier"]) == (
        "Instagram", "instagram", "Text", "Wo bleibt meine Bestellung? 📦", "1234567890123456")


async def test_echoes_deliveries_reads_and_reactions_are_acknowledged_and_ignored(meta: Pipeline) -> None:
    page, user = {"id": "311112222233333"}, {"id": "6021948837712345"}
    events = [
        {"sender": page, "recipient": user, "timestamp": 1,
         "message": {"mid": "m_echo", "is_echo": True, "app_id": 1517776481860111, "text": "We are on it"}},
        {"sender": user, "recipient": page, "timestamp": 2, "delivery": {"mids": ["m_echo"], "watermark": 2}},
        {"sender": user, "recipient": page, "timestamp": 3, "read": {"watermark": 3}},
        {"sender": user, "recipient": page, "timestamp": 4,
         "reaction": {"mid": "m_echo", "action": "react", "reaction": "love", "emoji": "❤"}},
    ]
    for event in events:
        payload = {"object": "page", "entry": [{"id": "311112222233333", "time": 5, "messaging": [event]}]}
        assert await post(meta, payload) == (200, {"accepted": 0})
    instagram_echo = {"object": "instagram", "entry": [{"id": "1784", "time": 5, "messaging": [{
        "sender": {"id": "1784"}, "recipient": {"id": "99"}, "timestamp": 5,
        "message": {"mid": "ig_echo", "is_echo": True, "text": "Thanks!"}}]}]}
    assert await post(meta, instagram_echo) == (200, {"accepted": 0})
    await nothing_published(meta)


async def test_bad_signatures_are_rejected_and_nothing_is_published(meta: Pipeline) -> None:
    body = meta_bytes(WHATSAPP_EXAMPLE)
    good = signature(body)
    tampered = body.replace(b"Invoice 7731", b"Invoice 7732")
    assert (await post(meta, None, body=tampered, sig=good))[0] == 403
    assert (await post(meta, None, body=body, secret="not-the-app-secret"))[0] == 403
    status, error = await post(meta, None, body=body, sig=None)
    assert (status, error["error"]) == (401, "signature missing")
    assert (await post(meta, None, body=body, sig="sha1=" + hashlib.sha1(body).hexdigest()))[0] == 403
    # verified before parsing: garbage with a wrong signature is a 403, not a 400
    assert (await post(meta, None, body=b"{not json", sig=good))[0] == 403
    await nothing_published(meta)


async def test_a_signed_delivery_over_the_body_limit_gets_413_and_publishes_nothing(meta: Pipeline) -> None:
    # a well-signed delivery larger than [http] max_body_size (1 MiB by default) is refused before parsing
    big = whatsapp(wa_text("wamid.BIG", "x" * (1024 * 1024)))
    status, error = await post(meta, big)
    assert status == 413 and "1048576" in error["error"]
    await nothing_published(meta)


def missing(field: str) -> dict[str, str]:
    """The 400 answer for a required field the delivery lacks: the field named, in the error too."""
    return {"error": f"invalid field {field}: Field required", "field": field}


async def test_malformed_deliveries_are_refused_with_the_field_and_publish_nothing(meta: Pipeline) -> None:
    status, error = await post(meta, None, body=b"{not json")
    assert status == 400 and error["error"].startswith("body is not JSON")
    assert await post(meta, {"entry": []}) == (400, missing("object"))
    # the third message lacks its wamid: the whole delivery is refused, the first two are not published
    broken = whatsapp(wa_text("wamid.OK1", "one"), wa_text("wamid.OK2", "two"),
                      {"from": "4915112345678", "type": "text", "text": {"body": "three"}})
    field = "entry[0].changes[0].value.messages[2].id"
    assert await post(meta, broken) == (400, missing(field))
    no_sender = copy.deepcopy(MESSENGER_EXAMPLE)
    del no_sender["entry"][0]["messaging"][0]["sender"]
    field = "entry[0].messaging[0].sender"
    assert await post(meta, no_sender) == (400, missing(field))
    # the escaped-unicode body as it comes on the wire: the signature holds, the event lacks its sender
    assert (await post(meta, None, body=VECTOR_BODY,
                       sig="sha256=e57fe0e254957c4a60e7706ce5347df1d2a169d4b67f1263f9eaa80760933951")) == (
        400, missing(field))
    await nothing_published(meta)


async def test_bus_failing_answers_503_stores_nothing_and_the_redelivery_makes_one_case_per_message(
        tmp_path: Path) -> None:
    settings = settings_for("local-sqlite", tmp_path, channels={"meta": channel()},
                            bus={"local": {"busy_timeout": 0.3}})
    p = await start_pipeline(settings)
    try:
        delivery = whatsapp(wa_text("wamid.B1", "first customer", "4915110000001"),
                            wa_text("wamid.B2", "second customer", "4915110000002"),
                            wa_text("wamid.B3", "third customer", "4915110000003"),
                            contacts=[{"profile": {"name": f"Kunde {i}"}, "wa_id": f"491511000000{i}"}
                                      for i in (1, 2, 3)])
        holder = sqlite3.connect(p.settings.bus_path, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")  # another process holds the log's write lock: the bus cannot write
        status, _ = await post(p, delivery)
        assert status == 503
        holder.execute("ROLLBACK")
        holder.close()
        assert await p.published() == 0  # nothing reached the bus ...
        await p.wait_idle()
        assert await p.cases() == [] and await processed(p) == 0  # ... nor the store
        assert await post(p, delivery) == (200, {"accepted": 3})  # Meta delivers the whole request again
        cases = await p.wait_for(lambda cs: len(cs) == 3)
        await p.wait_idle()
        assert sorted(c["SuppliedName"] for c in cases) == ["Kunde 1", "Kunde 2", "Kunde 3"]
        assert sorted(await entries(p)) == [("wamid.B1", "first customer"), ("wamid.B2", "second customer"),
                                           ("wamid.B3", "third customer")]
        assert await processed(p) == 3
    finally:
        await p.daemon.stop()


async def test_a_redelivered_wamid_is_one_message(meta: Pipeline) -> None:
    payload = whatsapp(wa_text("wamid.DUP", "Where is my parcel?"))
    assert await post(meta, payload) == (200, {"accepted": 1})
    await meta.wait_for(lambda cs: len(cs) == 1)
    assert await post(meta, payload) == (200, {"accepted": 1})  # Meta retries: duplicates are possible
    await meta.wait_idle()
    assert len(await meta.cases()) == 1
    assert await entries(meta) == [("wamid.DUP", "Where is my parcel?")]


async def test_a_conversation_stays_on_one_case_and_after_close_the_channel_policy_applies(tmp_path: Path) -> None:
    p = await start_pipeline(meta_settings(tmp_path, closed_case_policy="new_case"))
    try:
        for n, body in enumerate(["My router is broken", "It blinks red", "Model RX-200"]):
            assert (await post(p, whatsapp(wa_text(f"wamid.CV{n}", body))))[0] == 200
        await p.wait_for(lambda cs: len(cs) == 1)
        await p.wait_idle()
        [first] = await p.cases()
        case = await p.case(first["CaseNumber"])
        assert [e["Message"] for e in case["ConversationEntries"]] == [
            "My router is broken", "It blinks red", "Model RX-200"]
        assert p.daemon.worker is not None
        await p.daemon.worker.service.change_status(first["CaseNumber"], "Closed")
        assert (await post(p, whatsapp(wa_text("wamid.CV9", "It broke again"))))[0] == 200
        cases = await p.wait_for(lambda cs: len(cs) == 2)
        await p.wait_idle()
        [new] = [c for c in cases if c["CaseNumber"] != first["CaseNumber"]]
        follow_up = await p.case(new["CaseNumber"])
        assert follow_up["ParentId"] == case["Id"]
        assert [e["Message"] for e in follow_up["ConversationEntries"]] == ["It broke again"]
        assert (await p.case(first["CaseNumber"]))["Status"] == "Closed"
    finally:
        await p.daemon.stop()
