"""The bus record format: round trip, and loud failure on what this version cannot read."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from casegate.config import Settings
from casegate.ingest.envelope import (
    SCHEMA,
    AttachmentRef,
    Entry,
    Envelope,
    EnvelopeError,
    Sender,
    UnknownSchema,
    decode,
    encode,
)

from tests.pipeline import start_pipeline

# A version 1 record as casegate 0.1 wrote it for an SMS with a picture (media and details JSON text in meta)
V1_SMS = json.dumps({
    "schema": 1, "id": "0b6c3f0e-3d7e-4d4c-9a55-7d1e1f0c2a11", "channel": "sms", "external_id": "SM" + "1" * 32,
    "received_at": "2026-11-30T10:00:00Z", "conversation_key": "sms:+15551230000",
    "sender": {"phone": "+15551230000"}, "recipients": ["+15550009999"], "text": "Photo of the broken part",
    "headers": {}, "thread_hints": [], "attachments": [],
    "meta": {"source": "twilio", "entry_type": "Media", "media": '["https://api.twilio.com/m/1.jpg"]',
             "details": '{"num_segments": "1"}', "case.Priority": "High", "note": "kept"},
}).encode()


def test_round_trip_keeps_every_field() -> None:
    env = Envelope(channel="email", external_id="<a@b>", conversation_key="ada@example.org",
                   sender=Sender(name="Ada", email="ada@example.org"), recipients=("support@localhost",),
                   subject="Grüße ✉", text="hi", headers={"Message-ID": "<a@b>"},
                   attachments=(AttachmentRef(name="a.pdf", content_type="application/pdf", size=3, sha256="0" * 64),),
                   raw_sha256="f" * 64, meta={"mail_from": "ada@example.org"})
    data = encode(env)
    assert json.loads(data)["schema"] == SCHEMA == 2
    assert decode(data) == env


def test_a_message_that_is_not_an_email_carries_a_typed_entry() -> None:
    entry = Entry(source="twilio", entry_type="Media", media=("https://api.twilio.com/m/1.jpg",),
                  details={"num_segments": "1"}, case_fields={"Priority": "High"}, action=None)
    env = Envelope(channel="sms", external_id="SM1", conversation_key="sms:+15551230000",
                   sender=Sender(phone="+15551230000"), text="hi", entry=entry)
    data = json.loads(encode(env))
    assert data["entry"]["media"] == ["https://api.twilio.com/m/1.jpg"]  # a list, not JSON text inside meta
    assert data["entry"]["details"] == {"num_segments": "1"}
    assert data["meta"] == {}
    assert decode(encode(env)) == env


def test_a_version_1_record_still_decodes_into_the_same_entry() -> None:
    env = decode(V1_SMS)
    assert env.entry == Entry(source="twilio", entry_type="Media", media=("https://api.twilio.com/m/1.jpg",),
                              details={"num_segments": "1"}, case_fields={"Priority": "High"})
    assert env.meta == {"note": "kept"}  # what was not the entry stays
    assert env.schema_version == SCHEMA and env.text == "Photo of the broken part"


def test_a_version_1_email_decodes_without_an_entry() -> None:
    v1 = json.dumps({"schema": 1, "channel": "email", "external_id": "<a@b>", "conversation_key": "k",
                     "sender": {"email": "ada@example.org"}, "meta": {"mail_from": "ada@example.org"}}).encode()
    env = decode(v1)
    assert env.entry is None and env.meta == {"mail_from": "ada@example.org"}


def test_a_version_1_entry_that_is_not_json_is_refused_saying_so() -> None:
    bad = V1_SMS.replace(b'[\\"https', b'[oops\\"https')
    assert bad != V1_SMS
    with pytest.raises(EnvelopeError, match="version 1 entry"):
        decode(bad)


def test_the_channel_values_on_the_wire_are_those_of_the_list_of_channels() -> None:
    """`channel` comes from config's one list of channels; its schema is what version 1 and 2 records carry."""
    wire = ["email", "web", "sms", "whatsapp", "messenger", "instagram", "telegram", "x", "phone", "chat", "api"]
    assert Envelope.model_json_schema()["properties"]["channel"] == {"enum": wire, "title": "Channel",
                                                                       "type": "string"}
    for channel in wire:
        env = Envelope(channel=channel, external_id="1", conversation_key="k", sender=Sender())  # type: ignore[arg-type]
        assert json.loads(encode(env))["channel"] == channel and decode(encode(env)) == env


@pytest.mark.parametrize("version", [0, 3, 99, None, "1", "2", True, 1.0])
def test_unknown_schema_version_is_refused(version: object) -> None:
    with pytest.raises(UnknownSchema, match="unknown envelope schema"):
        decode(json.dumps({"schema": version, "channel": "email"}).encode())


@pytest.mark.parametrize("data, message", [
    (b"not json", "not JSON"),
    (b"[1, 2]", "not a JSON object"),
    (b'{"schema": 1, "channel": "pigeon", "external_id": "x", "conversation_key": "k", "sender": {}}', "channel"),
    (b'{"schema": 1, "channel": "email", "conversation_key": "k", "sender": {}}', "external_id"),
    (b'\xff\xfe{', "not JSON"),
])
def test_malformed_records_say_what_is_wrong(data: bytes, message: str) -> None:
    with pytest.raises(EnvelopeError, match=message):
        decode(data)


async def test_a_version_1_record_left_on_the_bus_by_an_upgrade_becomes_its_case(
        deployment_settings: Callable[..., Settings]) -> None:
    p = await start_pipeline(deployment_settings())
    try:
        await p.daemon.bus.publish(p.settings.bus.topic, b"sms:+15551230000", V1_SMS)
        [case] = await p.wait_for(lambda cs: len(cs) == 1)
        shown = await p.case(case["CaseNumber"])
        assert shown["Origin"] == "SMS" and shown["Priority"] == "High"
        [entry] = shown["ConversationEntries"]
        assert (entry["EntryType"], entry["Message"]) == ("Media", "Photo of the broken part")
        assert json.loads(entry["MediaUrls"]) == ["https://api.twilio.com/m/1.jpg"]
    finally:
        await p.daemon.stop()
