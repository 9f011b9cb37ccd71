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
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from config.channels import TelegramChannel
from config.sections import read_secret
from ingest.channels.webhook import (
    ChannelContext,
    Rejected,
    message_envelope,
    parse_json,
    publish_all,
    require,
    same_secret,
    webhook,
)
from ingest.envelope import Envelope, Sender

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
MESSAGE_KINDS = ("message", "edited_message")
FILE_KINDS = ("document", "audio", "voice", "video", "video_note", "animation", "sticker")
"""Message fields holding one file object (`photo` is a list of sizes and handled apart)."""
FILE_FIELDS = ("file_id", "file_unique_id", "mime_type", "file_name", "file_size", "duration", "emoji")


def check_secret_token(expected: str, given: str | None) -> None:
    """Rejected 401 when the header is missing, 403 when it is not the configured token (constant time)."""
    if not given:
        raise Rejected(401, f"{SECRET_HEADER} missing")
    if not same_secret(given, expected):
        raise Rejected(403, f"{SECRET_HEADER} does not match")


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def _media(message: Mapping[str, Any], where: str) -> tuple[str | None, list[str], dict[str, str]]:
    """(kind, media references, details) of the media a message carries; (None, [], {}) for none."""
    photo = message.get("photo")
    if photo is not None:
        if not isinstance(photo, list) or not photo or not isinstance(photo[-1], Mapping):
            raise Rejected(400, f"invalid field {where}photo", f"{where}photo")
        largest = photo[-1]
        file_id = require(largest, "file_id", str, f"{where}photo[{len(photo) - 1}].")
        details = {f: _text(largest[f]) for f in FILE_FIELDS if largest.get(f) is not None}
        return "photo", [file_id], {**details, "mime_type": "image/jpeg"}
    for kind in FILE_KINDS:
        if kind in message:
            item = require(message, kind, Mapping, where)
            file_id = require(item, "file_id", str, f"{where}{kind}.")
            return kind, [file_id], {f: _text(item[f]) for f in FILE_FIELDS if item.get(f) is not None}
    for kind in ("venue", "location"):
        if kind in message:
            place = require(message, kind, Mapping, where)
            point = require(place, "location", Mapping, f"{where}{kind}.") if kind == "venue" else place
            lat = require(point, "latitude", (int, float), f"{where}{kind}.")
            lon = require(point, "longitude", (int, float), f"{where}{kind}.")
            details = {f: _text(place[f]) for f in ("title", "address") if place.get(f) is not None}
            return kind, [f"geo:{lat},{lon}"], details
    if "contact" in message:
        card = require(message, "contact", Mapping, where)
        phone = require(card, "phone_number", str, f"{where}contact.")
        name = " ".join(_text(card[f]) for f in ("first_name", "last_name") if card.get(f))
        return "contact", [f"tel:{phone}"], {"contact_name": name} if name else {}
    return None, [], {}


def envelope_of(update_id: int, kind: str, message: Mapping[str, Any]) -> Envelope | None:
    """The envelope of a message or edit, or None when it is not a customer's message (a bot's, or one
    without a sender). Rejected 400 naming the field when the message is malformed."""
    where = f"{kind}."
    user = message.get("from")
    if user is None:
        return None  # anonymous group admins and channels write as `sender_chat`: not a customer
    if not isinstance(user, Mapping):
        raise Rejected(400, f"missing or invalid field {where}from", f"{where}from")
    user_id = require(user, "id", int, f"{where}from.")
    if user.get("is_bot") is True:
        return None
    chat = require(message, "chat", Mapping, where)
    chat_id = require(chat, "id", int, f"{where}chat.")
    message_id = require(message, "message_id", int, where)
    text = message.get("text", message.get("caption"))
    if text is not None and not isinstance(text, str):
        raise Rejected(400, f"invalid field {where}{'text' if 'text' in message else 'caption'}",
                       f"{where}{'text' if 'text' in message else 'caption'}")
    media_kind, media, details = _media(message, where)
    name = " ".join(_text(user[f]) for f in ("first_name", "last_name") if user.get(f)) or None
    details.update({"chat_id": str(chat_id), "chat_type": _text(chat.get("type", "")),
                    "message_id": str(message_id)})
    if media_kind:
        details["media_type"] = media_kind
    for key, value in (("username", user.get("username")), ("language_code", user.get("language_code")),
                       ("message_thread_id", message.get("message_thread_id")),
                       ("media_group_id", message.get("media_group_id"))):
        if value is not None:
            details[key] = _text(value)
    reply_to = message.get("reply_to_message")
    if isinstance(reply_to, Mapping) and reply_to.get("message_id") is not None:
        details["reply_to_message_id"] = _text(reply_to["message_id"])
    if kind == "edited_message":
        details["edited"] = "true"
        if message.get("edit_date") is not None:
            details["edit_date"] = _text(message["edit_date"])
    subject = None if text and text.strip() else f"Telegram {(media_kind or 'message').replace('_', ' ')}"
    return message_envelope("telegram", "telegram", str(update_id),
                            sender=Sender(name=name, handle=str(user_id)), text=text or None, subject=subject,
                            entry_type="Media" if media else "Text", media=media, details=details)


def parse_update(body: bytes) -> Envelope | None:
    """The envelope of one Update, or None for an update that publishes nothing."""
    update = parse_json(body)
    if not isinstance(update, Mapping):
        raise Rejected(400, "body is not a JSON object (a Telegram Update)")
    update_id = require(update, "update_id", int)
    for kind in MESSAGE_KINDS:
        if kind in update:
            return envelope_of(update_id, kind, require(update, kind, Mapping))
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
