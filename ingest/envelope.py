"""The one message format on the bus, version 1: encode and decode.

Decoding checks the `schema` version before anything else, so a record written by a newer casegate
fails loudly (and goes to the dead-letter topic) instead of being half-understood.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

SCHEMA = 1
Channel = Literal["email", "web", "sms", "whatsapp", "messenger", "instagram", "telegram", "x", "phone", "chat", "api"]


class EnvelopeError(Exception):
    """A bus record that is not an envelope this version understands (permanent: dead-letter it)."""


class UnknownSchema(EnvelopeError):
    pass


_SURROGATE = re.compile("[\ud800-\udfff]")


def valid_text(value: Any) -> Any:
    """`value` with every string made valid Unicode: a lone surrogate (from a JSON `\\ud800` escape, a
    UTF-7 mail, a `surrogateescape` decode) becomes U+FFFD, in dicts, lists and tuples too. Such a string
    cannot be written as UTF-8, so it would fail the hand-off of a message that is otherwise fine."""
    if isinstance(value, str):
        return value if value.isascii() else _SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {valid_text(k): valid_text(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [valid_text(v) for v in value]
    return value


class _Value(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _valid_text(cls, data: Any) -> Any:
        return valid_text(data)


class Sender(_Value):
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    handle: str | None = None


class AttachmentRef(_Value):
    name: str
    content_type: str
    size: int
    sha256: str
    content_id: str | None = None
    inline: bool = False


class Envelope(_Value):
    schema_version: int = Field(default=SCHEMA, alias="schema")
    id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    channel: Channel
    external_id: str
    """Idempotency key within the channel (Message-ID, MessageSid, wamid, update_id ...)."""
    received_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    conversation_key: str
    """Normalised sender identity: the bus record key, so one customer's messages stay in order."""
    sender: Sender
    recipients: tuple[str, ...] = ()
    subject: str | None = None
    text: str | None = None
    html: str | None = None
    headers: dict[str, str] = {}
    """The headers threading and loop detection need (Message-ID, In-Reply-To, References, ...)."""
    thread_hints: tuple[str, ...] = ()
    attachments: tuple[AttachmentRef, ...] = ()
    raw_sha256: str | None = None
    auto: str | None = None
    meta: dict[str, str] = {}

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


def encode(envelope: Envelope) -> bytes:
    return envelope.model_dump_json(by_alias=True, exclude_none=True).encode()


def decode(data: bytes) -> Envelope:
    """The envelope in `data`; raises UnknownSchema or EnvelopeError saying what is wrong."""
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise EnvelopeError(f"not JSON: {e}") from None
    if not isinstance(raw, dict):
        raise EnvelopeError("not a JSON object")
    if raw.get("schema") != SCHEMA:
        raise UnknownSchema(f"unknown envelope schema {raw.get('schema')!r} (this casegate reads {SCHEMA})")
    try:
        return Envelope.model_validate(raw)
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
        raise EnvelopeError(f"invalid envelope: {problems}") from None
