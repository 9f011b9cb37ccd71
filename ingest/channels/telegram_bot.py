"""Telegram Bot API webhook (https://core.telegram.org/bots/api#setwebhook, #update): one `Update` per
POST, verified by the secret token Telegram echoes in `X-Telegram-Bot-Api-Secret-Token` (there is no body signature).

What becomes a message on channel `telegram`, with `update_id` as its idempotency key:
- `message`: text or caption as the text; a photo (largest size), document, audio, voice, video,
  video note, animation or sticker is a Media entry carrying the file's `file_id` (fetch it with
  getFile), its mime type and file name in the details; a location or venue is a Media entry with a
  `geo:` URI, a shared contact one with a `tel:` URI.
- `edited_message`: a new entry of its own (its own `update_id`), marked `edited` in the details, so
  the case keeps what the customer first wrote and what they changed it to.
Everything else — channel posts, callback queries, chat member changes, messages from bots, messages
without a sender — is answered 200 and published nowhere (Telegram would otherwise resend it).
The Update's shape is telegram_payload.py; a malformed one is a 400 naming the field.
"""

from __future__ import annotations

from aiohttp import web
from casegate.config.channels import TelegramChannel
from casegate.config.sections import read_secret
from casegate.ingest.channels.telegram_payload import Message, Update
from casegate.ingest.channels.webhook import (
    ChannelContext,
    Rejected,
    message_envelope,
    parse_json,
    publish_all,
    same_secret,
    validated,
    webhook,
)
from casegate.ingest.envelope import Envelope, Sender

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
MESSAGE_KINDS = ("message", "edited_message")


def check_secret_token(expected: str, given: str | None) -> None:
    """Rejected 401 when the header is missing, 403 when it is not the configured token (constant time)."""
    if not given:
        raise Rejected(401, f"{SECRET_HEADER} missing")
    if not same_secret(given, expected):
        raise Rejected(403, f"{SECRET_HEADER} does not match")


def _media(message: Message) -> tuple[str | None, list[str], dict[str, str]]:
    """(kind, media references, details) of the media a message carries; (None, [], {}) for none."""
    if message.photo is not None:
        largest = message.photo[-1]
        return "photo", [largest.file_id], {**largest.details(), "mime_type": "image/jpeg"}
    if (found := message.file()) is not None:
        kind, item = found
        return kind, [item.file_id], item.details()
    if message.venue is not None:
        venue = message.venue
        details = {name: value for name, value in (("title", venue.title), ("address", venue.address))
                   if value is not None}
        return "venue", [f"geo:{venue.location.latitude},{venue.location.longitude}"], details
    if message.location is not None:
        return "location", [f"geo:{message.location.latitude},{message.location.longitude}"], {}
    if message.contact is not None:
        card = message.contact
        name = " ".join(part for part in (card.first_name, card.last_name) if part)
        return "contact", [f"tel:{card.phone_number}"], {"contact_name": name} if name else {}
    return None, [], {}


def envelope_of(update_id: int, kind: str, message: Message) -> Envelope | None:
    """The envelope of a message or edit, or None when it is not a customer's message (a bot's, or one
    without a sender: anonymous group admins and channels write as `sender_chat`)."""
    user = message.sender
    if user is None or user.is_bot:
        return None
    text = message.body
    media_kind, media, details = _media(message)
    details.update({"chat_id": str(message.chat.id), "chat_type": message.chat.type,
                    "message_id": str(message.message_id)})
    if media_kind:
        details["media_type"] = media_kind
    for key, value in (("username", user.username), ("language_code", user.language_code),
                       ("message_thread_id", message.message_thread_id),
                       ("media_group_id", message.media_group_id)):
        if value is not None:
            details[key] = str(value)
    reply_to = message.reply_to_message
    if reply_to is not None and reply_to.message_id is not None:
        details["reply_to_message_id"] = str(reply_to.message_id)
    if kind == "edited_message":
        details["edited"] = "true"
        if message.edit_date is not None:
            details["edit_date"] = str(message.edit_date)
    subject = None if text and text.strip() else f"Telegram {(media_kind or 'message').replace('_', ' ')}"
    return message_envelope("telegram", "telegram", str(update_id),
                            sender=Sender(name=user.full_name, handle=str(user.id)), text=text or None,
                            subject=subject, entry_type="Media" if media else "Text", media=media, details=details)


def parse_update(body: bytes) -> Envelope | None:
    """The envelope of one Update, or None for an update that publishes nothing; Rejected 400 naming the
    field when it is malformed."""
    payload = parse_json(body)
    if not isinstance(payload, dict):
        raise Rejected(400, "body is not a JSON object (a Telegram Update)")
    update = validated(Update, payload)
    for kind in MESSAGE_KINDS:
        message: Message | None = getattr(update, kind)
        if message is not None:
            return envelope_of(update.update_id, kind, message)
    return None


def mount(app: web.Application, ctx: ChannelContext) -> None:
    section: TelegramChannel = ctx.settings.channels.telegram

    async def handle(request: web.Request, body: bytes) -> web.StreamResponse:
        check_secret_token(read_secret(section.secret_token, section.secret_token_file),
                           request.headers.get(SECRET_HEADER))
        envelope = parse_update(body)
        # An empty 200: a body with a "method" would be taken as a Bot API call.
        return await publish_all(ctx, "telegram", [envelope] if envelope else [], ok=web.Response(status=200))

    app.router.add_post(section.path, webhook("telegram", ctx, handle))
