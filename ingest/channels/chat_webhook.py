"""The generic chat webhook: a site chat widget, or any chat provider without a channel of its own,
posts each visitor message to `[channels.chat] path` (default /hooks/chat).

Signature: `X-Casegate-Timestamp: <unix seconds>` and `X-Casegate-Signature: sha256=<hex>`, the hex
being HMAC-SHA256(secret, timestamp + "." + raw body); the timestamp must be within
`replay_window_seconds` of now. Missing headers → 401; a wrong signature or a stale/future
timestamp → 403.

Body (JSON, UTF-8), one message, or `{"messages": [<message>, ...]}`:

    {
      "id": "msg-1001",                      required: the message id, unique per sender (dedupe key)
      "conversation_id": "conv-77",          optional: the widget's conversation/session id
      "sent_at": "2026-06-02T14:03:11Z",     optional: RFC 3339 with an offset (the entry's time)
      "visitor": {                           required
        "id": "visitor-42",                  required: the visitor's stable id in the widget
        "name": "Ada Lovelace",              optional
        "email": "ada@example.org",          optional
        "phone": "+44 20 7946 0000"          optional (international, or national with default_region)
      },
      "text": "My invoice is wrong",         required unless there are attachments
      "attachments": [                       optional
        {"url": "https://cdn.example/a.png", "content_type": "image/png", "name": "a.png"}
      ],
      "page_url": "https://example.com/billing"   optional: where the visitor was
    }

Each message goes on channel `chat`, external id = `id` (a repeated id is one message), sender =
the visitor (email, phone in E.164, and the visitor id as handle, with the name: a visitor who also
mails, texts or calls with the same address or number is the same Contact). A visitor's messages are
one conversation (key `chat:<visitor id>`): they stay on one open case within the channel's window;
after it closes the channel's closed-case policy applies. Bad input → 400 with the field named.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime
from functools import partial
from typing import Any

from aiohttp import web

from config.channels import ChatChannel
from config.sections import read_secret
from ingest.channels.webhook import (
    ChannelContext,
    Rejected,
    check_signed_at,
    e164,
    message_envelope,
    one_or_many,
    optional,
    publish_all,
    require,
    webhook,
)
from ingest.envelope import Envelope, Sender

TIMESTAMP = "X-Casegate-Timestamp"
SIGNATURE = "X-Casegate-Signature"
MAX_MESSAGES = 500
MAX_ID = 255


def authenticate(request: web.Request, body: bytes, section: ChatChannel, now: float) -> None:
    check_signed_at(request, body, lambda: read_secret(section.secret, section.secret_file),
                    window=section.replay_window_seconds, now=now, timestamp_header=TIMESTAMP,
                    signature_header=SIGNATURE, prefix="sha256=")


def _text(obj: Mapping[str, Any], name: str, where: str, limit: int | None = None) -> str | None:
    """An optional string field (None when absent or empty); 400 when it is not a string or too long."""
    value: str | None = optional(obj, name, str, where)
    if not value:
        return None
    if limit is not None and len(value) > limit:
        raise Rejected(400, f"invalid field {where}{name}", f"{where}{name}")
    return value


def _web_url(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value.lower().startswith(("https://", "http://")):
        raise Rejected(400, f"{field} must be an http(s) URL", field)
    return value


def chat_envelope(message: Mapping[str, Any], where: str, section: ChatChannel) -> Envelope:
    """The envelope of one message of the documented shape (Rejected 400 naming the field otherwise)."""
    message_id = require(message, "id", str, where)
    if len(message_id) > MAX_ID:
        raise Rejected(400, f"{where}id is over {MAX_ID} characters", f"{where}id")
    visitor = require(message, "visitor", dict, where)
    at = f"{where}visitor."
    visitor_id = require(visitor, "id", str, at)
    if len(visitor_id) > MAX_ID:
        raise Rejected(400, f"{at}id is over {MAX_ID} characters", f"{at}id")
    name = _text(visitor, "name", at, 255)
    email = _text(visitor, "email", at, 320)
    if email is not None and ("@" not in email or any(c.isspace() for c in email)):
        raise Rejected(400, f"{at}email is not an email address", f"{at}email")
    raw_phone = _text(visitor, "phone", at, 64)
    phone = e164(raw_phone, section.default_region or None) if raw_phone else None
    if raw_phone and phone is None:
        raise Rejected(400, f"{at}phone is not a phone number", f"{at}phone")
    text = _text(message, "text", where)
    attachments = message.get("attachments") or []
    if not isinstance(attachments, list):
        raise Rejected(400, f"invalid field {where}attachments", f"{where}attachments")
    media: list[str] = []
    names: list[str] = []
    for i, item in enumerate(attachments):
        field = f"{where}attachments[{i}]"
        if not isinstance(item, dict):
            raise Rejected(400, f"{field} must be an object", field)
        media.append(_web_url(item.get("url"), f"{field}.url"))
        names.append(_text(item, "name", f"{field}.", 255) or media[-1].rsplit("/", 1)[-1])
        _text(item, "content_type", f"{field}.", 255)
    if text is None and not media:
        raise Rejected(400, f"{where}text is required when there are no attachments", f"{where}text")
    sent_at = None
    if (raw_sent := _text(message, "sent_at", where)) is not None:
        try:
            sent_at = datetime.fromisoformat(raw_sent)
        except ValueError:
            raise Rejected(400, f"{where}sent_at is not an RFC 3339 timestamp", f"{where}sent_at") from None
        if sent_at.tzinfo is None:
            raise Rejected(400, f"{where}sent_at has no UTC offset", f"{where}sent_at")
    conversation = _text(message, "conversation_id", where, 255)
    page = _web_url(message["page_url"], f"{where}page_url") if message.get("page_url") else None

    details = {"visitor_id": visitor_id}
    if conversation:
        details["conversation_id"] = conversation
    if page:
        details["page_url"] = page
    if sent_at:
        details["sent_at"] = sent_at.isoformat()
    if names:
        details["attachments"] = ", ".join(names)
    return message_envelope(
        "chat", "chat", message_id, sender=Sender(name=name, email=email, phone=phone, handle=visitor_id),
        text=text, subject=None if text else f"Chat attachment: {', '.join(names)}",
        entry_type="Media" if media else "Text", media=media, details=details, conversation=visitor_id,
        sent_at=sent_at)


async def receive(ctx: ChannelContext, request: web.Request, body: bytes) -> web.StreamResponse:
    section = ctx.settings.channels.chat
    authenticate(request, body, section, time.time())
    envelopes = [chat_envelope(m, prefix, section) for m, prefix in one_or_many(body, "messages", MAX_MESSAGES)]
    return await publish_all(ctx, "chat", envelopes)


def mount(app: web.Application, ctx: ChannelContext) -> None:
    app.router.add_post(ctx.settings.channels.chat.path, webhook("chat", ctx, partial(receive, ctx)))
