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
after it closes the channel's closed-case policy applies. Bad input → 400 with the field named (the
models of the body are in chat_payload.py).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from functools import partial
from typing import Any

from aiohttp import web
from casegate.config.channels import ChatChannel
from casegate.config.sections import read_secret
from casegate.ingest.channels.chat_payload import ChatMessage
from casegate.ingest.channels.webhook import (
    ChannelContext,
    Rejected,
    check_signed_at,
    e164,
    message_envelope,
    one_or_many,
    publish_all,
    validated,
    webhook,
)
from casegate.ingest.envelope import Envelope, Sender

TIMESTAMP = "X-Casegate-Timestamp"
SIGNATURE = "X-Casegate-Signature"
MAX_MESSAGES = 500


def authenticate(request: web.Request, body: bytes, section: ChatChannel, now: float) -> None:
    check_signed_at(request, body, lambda: read_secret(section.secret, section.secret_file),
                    window=section.replay_window_seconds, now=now, timestamp_header=TIMESTAMP,
                    signature_header=SIGNATURE, prefix="sha256=")


def chat_envelope(raw: Mapping[str, Any], where: str, section: ChatChannel) -> Envelope:
    """The envelope of one message of the documented shape (Rejected 400 naming the field otherwise)."""
    message = validated(ChatMessage, raw, where)
    visitor = message.visitor
    phone = e164(visitor.phone, section.default_region or None) if visitor.phone else None
    if visitor.phone and phone is None:
        raise Rejected(400, f"{where}visitor.phone is not a phone number", f"{where}visitor.phone")
    media = [item.url for item in message.attachments]
    names = [item.name or item.url.rsplit("/", 1)[-1] for item in message.attachments]
    if message.text is None and not media:
        raise Rejected(400, f"{where}text is required when there are no attachments", f"{where}text")

    details = {"visitor_id": visitor.id}
    if message.conversation_id:
        details["conversation_id"] = message.conversation_id
    if message.page_url:
        details["page_url"] = message.page_url
    if message.sent_at:
        details["sent_at"] = message.sent_at.isoformat()
    if names:
        details["attachments"] = ", ".join(names)
    return message_envelope(
        "chat", "chat", message.id,
        sender=Sender(name=visitor.name, email=visitor.email, phone=phone, handle=visitor.id),
        text=message.text, subject=None if message.text else f"Chat attachment: {', '.join(names)}",
        entry_type="Media" if media else "Text", media=media, details=details, conversation=visitor.id,
        sent_at=message.sent_at)


async def receive(ctx: ChannelContext, request: web.Request, body: bytes) -> web.StreamResponse:
    section = ctx.settings.channels.chat
    authenticate(request, body, section, time.time())
    envelopes = [chat_envelope(m, prefix, section) for m, prefix in one_or_many(body, "messages", MAX_MESSAGES)]
    return await publish_all(ctx, "chat", envelopes)


def mount(app: web.Application, ctx: ChannelContext) -> None:
    app.router.add_post(ctx.settings.channels.chat.path, webhook("chat", ctx, partial(receive, ctx)))
