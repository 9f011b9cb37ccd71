"""What the case service is given for each inbound message: plain values, independent of the bus
format, so the worker (from the bus) and the REST API (directly) hand over the same thing."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class InboundAttachment:
    name: str
    content_type: str
    size: int
    sha256: str
    content_id: str | None = None
    inline: bool = False


@dataclass(frozen=True, slots=True)
class InboundMessage:
    channel: str
    external_id: str
    """Idempotency key within the channel (Message-ID, MessageSid, ...)."""
    envelope_id: str
    received_at: datetime
    conversation_key: str
    sender_email: str | None
    sender_name: str | None = None
    sender_phone: str | None = None
    recipients: tuple[str, ...] = ()
    subject: str | None = None
    text: str | None = None
    html: str | None = None
    message_id: str | None = None
    """The normalised Message-ID (`store.message_ids.message_id`): what threading keys by."""
    message_id_header: str | None = None
    """An email's Message-ID header as written (the trace shows it, and finds the mail by it)."""
    in_reply_to: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    thread_index: str | None = None
    to_address: str | None = None
    cc_address: str | None = None
    headers: str | None = None
    message_date: datetime | None = None
    raw_sha256: str | None = None
    attachments: tuple[InboundAttachment, ...] = field(default=())
    auto: str | None = None
    """Automatic mail: auto-reply, bounce or list (never opens a case unless configured, never
    reopens one, never acknowledged)."""
    auto_reason: str | None = None
    bounced_message_ids: tuple[str, ...] = ()
    """For a bounce: the Message-IDs of the mail that bounced (ours, when we sent it)."""
    sender_handle: str | None = None
    """The sender's id on a messaging channel (Telegram user id, Messenger PSID, X user id ...)."""
    source: str | None = None
    """The configured channel section it came through (`twilio`, `meta`, `web_form` ...)."""
    entry_type: str = "Text"
    """For messages that are not emails: Text, Media, Form or Call."""
    media: tuple[str, ...] = ()
    """URLs (or blob references) of the media a message carried."""
    details: Mapping[str, str] = field(default_factory=dict)
    """Channel facts kept with the entry (call duration, disposition, agent, recording URL ...)."""
    case_fields: Mapping[str, str] = field(default_factory=dict)
    """Case fields the sender supplied (a web form's Type, Reason, Priority, SuppliedCompany ...)."""
    action: str | None = None
    """What the channel asks for: `new_case` (always open one), `ignore` (keep on the ledger only)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one inbound message."""

    channel: str
    external_id: str
    outcome: str
    """created, threaded, suppressed, pending or duplicate."""
    case_id: str | None
    case_number: str | None
    rule: str | None
    """Which threading rule placed it: token, in-reply-to, references, thread-index, bounce, new;
    for a suppressed message, why (auto-reply, bounce, list, loop)."""


def to_json(m: InboundMessage) -> str:
    """`m` as JSON, to be held back whole (store.pending) and read again with `from_json`."""
    return json.dumps(asdict(m), default=lambda v: v.isoformat() if isinstance(v, datetime) else dict(v))


def from_json(text: str) -> InboundMessage:
    raw = json.loads(text)
    for name in ("received_at", "message_date"):
        if raw.get(name):
            raw[name] = datetime.fromisoformat(raw[name])
    for name in ("recipients", "in_reply_to", "references", "bounced_message_ids", "media"):
        raw[name] = tuple(raw.get(name) or ())
    raw["attachments"] = tuple(InboundAttachment(**a) for a in raw.get("attachments") or ())
    return InboundMessage(**raw)
