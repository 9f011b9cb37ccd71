"""The bus record format: round trip, and loud failure on what this version cannot read."""

from __future__ import annotations

import json

import pytest

from ingest.envelope import SCHEMA, AttachmentRef, Envelope, EnvelopeError, Sender, UnknownSchema, decode, encode


def test_round_trip_keeps_every_field() -> None:
    env = Envelope(channel="email", external_id="<a@b>", conversation_key="ada@example.org",
                   sender=Sender(name="Ada", email="ada@example.org"), recipients=("support@localhost",),
                   subject="Grüße ✉", text="hi", headers={"Message-ID": "<a@b>"},
                   attachments=(AttachmentRef(name="a.pdf", content_type="application/pdf", size=3, sha256="0" * 64),),
                   raw_sha256="f" * 64, meta={"mail_from": "ada@example.org"})
    data = encode(env)
    assert json.loads(data)["schema"] == SCHEMA
    assert decode(data) == env


@pytest.mark.parametrize("version", [0, 2, 99, None, "1"])
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
