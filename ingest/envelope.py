"""The one message format on the bus, version 2: encode and decode.

Decoding checks the `schema` version before anything else, so a record written by a newer casegate
fails loudly (and goes to the dead-letter topic) instead of being half-understood.

Version 2 carries a message that is not an email (SMS, chat, a call, a form …) as a typed `entry`
(source, entry type, media, details, case fields, action). Version 1 wrote these as strings inside
`meta`, the media and details as JSON text; such records may still be on the bus while a deployment
upgrades, so `decode` reads them too, into the same `entry`. Upgrade workers before ingest processes: a
worker of version 1 dead-letters a version 2 record (replayable once it is upgraded), never misreads it.

A record may instead carry a `delivery` report: a provider's delivery status of a message we sent (Twilio's
status callback, Meta's `statuses[]`), which the worker applies to the agent's reply it names instead of
recording a message. A worker that predates the field refuses such a record (no unknown field is
accepted) and dead-letters it, replayable once it is upgraded: it never takes one for a customer's message.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from casegate.config.channel_list import Channel as Channel  # the envelope's channels, listed in config
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

SCHEMA = 2
READABLE = (1, 2)


class EnvelopeError(Exception):
    """A bus record that is not an envelope this version understands (permanent: dead-letter it)."""


class UnknownSchema(EnvelopeError):
    pass


_SURROGATE = re.compile("[\ud800-\udfff]")


def valid_text(value: str) -> str:
    """`value` made valid Unicode: a lone surrogate (from a JSON `\\ud800` escape, a UTF-7 mail, a
    `surrogateescape` decode) becomes U+FFFD. Such a string cannot be written as UTF-8, so it would fail
    the hand-off of a message that is otherwise fine. ASCII (most strings) is returned at once."""
    return value if value.isascii() else _SURROGATE.sub("\ufffd", value)


Text = Annotated[str, AfterValidator(valid_text)]
"""Every string of an envelope: checked once, where it is set."""


class _Value(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Sender(_Value):
    name: Text | None = None
    email: Text | None = None
    phone: Text | None = None
    handle: Text | None = None


class AttachmentRef(_Value):
    name: Text
    content_type: Text
    size: int
    sha256: Text
    content_id: Text | None = None
    inline: bool = False


class Entry(_Value):
    """What a message that is not an email records on its case, beside its text: who delivered it
    (`source`: twilio, meta, cti …), its ConversationEntry type (Text, Media, Form, Call …), media URLs,
    provider details, case fields it sets (a web form's Priority …) and an `action` for the worker
    (e.g. log a call on the caller's open case)."""

    source: Text
    entry_type: Text = "Text"
    media: tuple[Text, ...] = ()
    details: dict[Text, Text] = {}
    case_fields: dict[Text, Text] = {}
    action: Text | None = None


class DeliveryReport(_Value):
    """A provider's delivery status of a message we sent (an agent's reply), named by the provider's id."""

    source: Text
    """The provider (twilio, meta): with `message_id`, which reply it is about."""
    message_id: Text
    status: Literal["queued", "sent", "delivered", "read", "failed"]
    error_code: Text | None = None
    error: Text | None = None
    at: datetime | None = None
    """When the provider says it happened, if it says."""


class Envelope(_Value):
    schema_version: int = Field(default=SCHEMA, alias="schema")
    id: Text = Field(default_factory=lambda: str(uuid.uuid4()))
    channel: Channel
    external_id: Text
    """Idempotency key within the channel (Message-ID, MessageSid, wamid, update_id ...)."""
    received_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    conversation_key: Text
    """Normalised sender identity: the bus record key, so one customer's messages stay in order."""
    sender: Sender
    recipients: tuple[Text, ...] = ()
    subject: Text | None = None
    text: Text | None = None
    html: Text | None = None
    headers: dict[Text, Text] = {}
    """The headers threading and loop detection need (Message-ID, In-Reply-To, References, ...)."""
    thread_hints: tuple[Text, ...] = ()
    attachments: tuple[AttachmentRef, ...] = ()
    raw_sha256: Text | None = None
    auto: Text | None = None
    entry: Entry | None = None
    """Set for every message that is not an email."""
    delivery: DeliveryReport | None = None
    """Set when the record is a delivery report, not a message (its `external_id` is message id/status)."""
    meta: dict[Text, Text] = {}
    """Small channel facts as strings (mail: raw headers, classification reason, cuts)."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


_V1_ENTRY = ("source", "entry_type", "media", "details", "action")


def _from_v1(raw: dict[str, Any]) -> dict[str, Any]:
    """A version 1 record as version 2: the entry's facts out of `meta` (media and details were JSON
    text there, case fields `case.<Field>` keys)."""
    meta = raw.get("meta")
    if not isinstance(meta, dict) or "source" not in meta:
        return {**raw, "schema": SCHEMA}
    try:
        entry: dict[str, Any] = {"source": meta["source"], "entry_type": meta.get("entry_type", "Text"),
                                 "media": json.loads(meta.get("media", "[]")),
                                 "details": json.loads(meta.get("details", "{}")), "action": meta.get("action"),
                                 "case_fields": {k[5:]: v for k, v in meta.items() if str(k).startswith("case.")}}
    except (TypeError, ValueError) as e:
        raise EnvelopeError(f"invalid version 1 entry in meta: {e}") from None
    rest = {k: v for k, v in meta.items() if k not in _V1_ENTRY and not str(k).startswith("case.")}
    return {**raw, "schema": SCHEMA, "entry": entry, "meta": rest}


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
    version = raw.get("schema")
    if type(version) is not int or version not in READABLE:
        raise UnknownSchema(f"unknown envelope schema {version!r} (this casegate reads "
                            f"{', '.join(map(str, READABLE))})")
    try:
        return Envelope.model_validate(raw if version == SCHEMA else _from_v1(raw))
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
        raise EnvelopeError(f"invalid envelope: {problems}") from None
