"""Meta webhooks on one route: WhatsApp Cloud API, Messenger and Instagram
(https://developers.facebook.com/docs/graph-api/webhooks/getting-started,
https://developers.facebook.com/docs/messenger-platform/webhook).

GET answers the subscription handshake (`hub.mode=subscribe` + our verify token → the challenge).
POST is verified first — `X-Hub-Signature-256: sha256=<hex>` is HMAC-SHA256(app secret, raw body) — then
parsed; every customer message it carries becomes one envelope, and all of them are published before
the 200 (503 otherwise: Meta redelivers the whole request, the worker dedupes by wamid / mid).

WhatsApp: `entry[].changes[field=messages].value.messages[]`, sender = `from` in E.164 (the
business-scoped `user_id`, when Meta sends one, as the handle), every message type recorded, never
dropped. Messenger / Instagram: `entry[].messaging[]` events with a `message` (or a `postback`), sender =
PSID / IGSID. Ignored with 200: WhatsApp `statuses[]` and other fields, echoes of our own messages,
unsent (deleted) messages, delivery / read / reaction events, `standby` events and other objects.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import structlog
from aiohttp import web

from config.channels import MetaChannel
from config.sections import read_secret
from ingest.channels.webhook import (
    ChannelContext,
    Rejected,
    check_hmac_sha256,
    e164,
    message_envelope,
    parse_json,
    publish_all,
    require,
    same_secret,
    webhook,
)
from ingest.envelope import Channel, Envelope, Sender

log = structlog.get_logger("casegate.meta")

SIGNATURE_HEADER = "X-Hub-Signature-256"
MESSAGING_OBJECTS: dict[str, Channel] = {"page": "messenger", "instagram": "instagram"}
MEDIA_TYPES = ("image", "audio", "video", "document", "sticker")
GRAPH_MEDIA = "https://graph.facebook.com/"
"""A WhatsApp media id becomes the Graph URL that resolves it (GET with the access token → a short-lived
download URL); the id, mime type and sha256 are kept in the entry's details."""

Rendered = tuple[str | None, str, list[str], dict[str, str]]
"""(text, entry type, media, details) of one message."""


def mount(app: web.Application, ctx: ChannelContext) -> None:
    section = ctx.settings.channels.meta
    app.router.add_get(section.path, _handshake(section))
    app.router.add_post(section.path, webhook("meta", ctx, _receiver(ctx)))


def _handshake(section: MetaChannel) -> Any:
    async def answer(request: web.Request) -> web.StreamResponse:
        q = request.query
        token = read_secret(section.verify_token, section.verify_token_file)
        given = q.get("hub.verify_token", "")
        if not (q.get("hub.mode") == "subscribe" and same_secret(given, token)):
            log.warning("webhook.rejected", channel="meta", status=403, reason="verification failed",
                        peer=request.remote)
            return web.Response(status=403, text="verification failed", content_type="text/plain")
        return web.Response(text=q.get("hub.challenge", ""), content_type="text/plain")

    return answer


def _receiver(ctx: ChannelContext) -> Any:
    async def handle(request: web.Request, body: bytes) -> web.StreamResponse:
        section = ctx.settings.channels.meta
        given = request.headers.get(SIGNATURE_HEADER)
        if given and given.startswith("sha256="):
            given = "sha256=" + given[7:].lower()
        check_hmac_sha256(read_secret(section.app_secret, section.app_secret_file), body, given, prefix="sha256=")
        return await publish_all(ctx, "meta", envelopes(parse_json(body)))

    return handle


def envelopes(payload: Any) -> list[Envelope]:
    """Every customer message of a (verified) delivery; Rejected 400 naming the first malformed field."""
    if not isinstance(payload, Mapping):
        raise Rejected(400, "body is not a JSON object", "object")
    kind = require(payload, "object")
    entries = require(payload, "entry", list)
    if kind == "whatsapp_business_account":
        return _whatsapp(entries)
    if kind in MESSAGING_OBJECTS:
        return _messaging(MESSAGING_OBJECTS[kind], entries)
    log.info("meta.ignored", object=kind)
    return []


# --- WhatsApp Cloud API ---------------------------------------------------------------------------

def _whatsapp(entries: Sequence[Any]) -> list[Envelope]:
    out = []
    for i, entry in enumerate(entries):
        for j, change in enumerate(require(entry, "changes", list, f"entry[{i}].")):
            at = f"entry[{i}].changes[{j}]."
            if require(change, "field", str, at) != "messages":
                continue
            value = require(change, "value", dict, at)
            messages = _list(value, "messages", f"{at}value.")
            if not messages:
                continue  # statuses[] / errors[] only: delivery reports of our own messages
            metadata = require(value, "metadata", dict, f"{at}value.")
            display, number_id = metadata.get("display_phone_number"), metadata.get("phone_number_id")
            if not display and not number_id:
                require(metadata, "phone_number_id", str, f"{at}value.metadata.")
            recipient = (e164(str(display)) or str(display)) if display else str(number_id)
            contacts = [c for c in _list(value, "contacts", f"{at}value.") if isinstance(c, Mapping)]
            for k, message in enumerate(messages):
                out.append(_whatsapp_message(message, contacts, recipient, str(number_id or ""),
                                             f"{at}value.messages[{k}]."))
    return out


def _whatsapp_message(msg: Any, contacts: list[Mapping[str, Any]], recipient: str, number_id: str,
                      where: str) -> Envelope:
    wamid = require(msg, "id", str, where)
    sender = require(msg, "from", str, where)
    kind = require(msg, "type", str, where)
    contact = next((c for c in contacts if c.get("wa_id") == sender or c.get("user_id") == sender),
                   contacts[0] if len(contacts) == 1 else {})
    profile = _obj(contact, "profile")
    phone = e164(sender) if sender.isascii() and sender.isdigit() else None
    handle = contact.get("user_id") or (None if phone else sender)
    text, entry_type, media, details = _render(kind, msg, where)
    details |= {"type": kind, **({"phone_number_id": number_id} if number_id else {})}
    if sent := _sent_at(msg.get("timestamp"), 1):
        details["sent_at"] = sent
    if profile.get("username"):
        details["username"] = _str(profile["username"])
    context = _obj(msg, "context")
    hints = [str(context["id"])] if context.get("id") else []
    if hints:
        details["reply_to"] = hints[0]
    for flag in ("forwarded", "frequently_forwarded"):
        if context.get(flag):
            details[flag] = "true"
    if isinstance(msg.get("referral"), Mapping):
        details["referral"] = _str(msg["referral"])
    return message_envelope("whatsapp", "meta", wamid, sender=Sender(
        name=_str(profile["name"]) if profile.get("name") else None, phone=phone,
        handle=_str(handle) if handle else None), text=text, recipients=(recipient,), entry_type=entry_type,
        media=media, details=details, thread_hints=hints)


def _render(kind: str, msg: Mapping[str, Any], where: str) -> Rendered:
    """The text, entry type, media and details of one WhatsApp message, by its type."""
    obj = _obj(msg, kind)
    if kind == "text":
        return require(obj, "body", str, f"{where}text."), "Text", [], {}
    if kind in MEDIA_TYPES:
        media_id = _str(obj.get("id", ""))
        url = obj.get("url") or (GRAPH_MEDIA + media_id if media_id else "")
        details = {f"media_{k}" if k == "id" else k: _str(obj[k]) for k in
                   ("id", "mime_type", "sha256", "filename", "caption", "voice", "animated") if k in obj}
        name = f": {obj['filename']}" if obj.get("filename") else ""
        return obj.get("caption") or f"[{kind}{name}]", "Media", [str(url)] if url else [], details
    if kind == "interactive":
        sub = _str(obj.get("type", ""))
        reply = _obj(obj, sub)
        details = {"interactive_type": sub, **{f"reply_{k}": _str(v) for k, v in reply.items()}}
        title = reply.get("title") or reply.get("body") or f"[{sub or 'interactive'} reply]"
        return f"{title} [{reply['id']}]" if reply.get("id") else str(title), "Text", [], details
    if kind == "button":
        return _str(obj.get("text", "")) or "[button]", "Text", [], {"payload": _str(obj.get("payload", ""))}
    if kind == "location":
        details = {k: _str(obj[k]) for k in ("latitude", "longitude", "name", "address", "url") if k in obj}
        place = ", ".join(str(obj[k]) for k in ("name", "address") if obj.get(k))
        where_at = f"({obj.get('latitude')}, {obj.get('longitude')})"
        return f"[location: {place} {where_at}]" if place else f"[location {where_at}]", "Text", [], details
    if kind == "contacts":
        cards = [c for c in _items(msg, "contacts") if isinstance(c, Mapping)]
        names = [_card(c) for c in cards]
        return f"[contact card: {'; '.join(names)}]", "Text", [], {"contacts": _str(cards)}
    if kind == "reaction":
        target, emoji = _str(obj.get("message_id", "")), _str(obj.get("emoji", ""))
        text = f"[reaction {emoji} to {target}]" if emoji else f"[reaction removed from {target}]"
        return text, "Text", [], {"reacted_to": target, "emoji": emoji}
    if kind == "system":
        details = {f"system_{k}": _str(v) for k, v in obj.items() if k != "body"}
        return _str(obj.get("body", "")) or "[system message]", "Text", [], details
    if kind == "order":
        items = _items(obj, "product_items")
        details = {"catalog_id": _str(obj.get("catalog_id", "")), "product_items": _str(items)}
        return _str(obj.get("text", "")) or f"[order: {len(items)} items]", "Text", [], details
    # unsupported, request_welcome, anything newer: kept with its type and whatever it carried
    errors = _items(msg, "errors")
    why = next((f": {e['title']}" for e in errors if isinstance(e, Mapping) and e.get("title")), "")
    details = {**({"payload": _str(msg[kind])} if kind in msg else {}), **({"errors": _str(errors)} if errors else {})}
    return f"[{kind} message{why}]", "Text", [], details


def _card(card: Mapping[str, Any]) -> str:
    name = _obj(card, "name")
    phones = [p.get("phone") for p in _items(card, "phones") if isinstance(p, Mapping) and p.get("phone")]
    return " ".join(str(x) for x in (name.get("formatted_name") or "?", *phones))


# --- Messenger and Instagram ----------------------------------------------------------------------

def _messaging(channel: Channel, entries: Sequence[Any]) -> list[Envelope]:
    out = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            raise Rejected(400, f"missing or invalid field entry[{i}]", f"entry[{i}]")
        for j, event in enumerate(_list(entry, "messaging", f"entry[{i}].")):
            at = f"entry[{i}].messaging[{j}]."
            if not isinstance(event, Mapping):
                raise Rejected(400, f"missing or invalid field {at[:-1]}", at[:-1])
            message, postback = event.get("message"), event.get("postback")
            if isinstance(message, Mapping):
                if message.get("is_echo") or message.get("is_deleted"):
                    continue  # our own page's message coming back / a message the customer unsent
                out.append(_messaging_message(channel, event, message, at))
            elif isinstance(postback, Mapping) and postback.get("mid"):
                out.append(_messaging_message(channel, event, postback, at, postback=True))
            # delivery, read, reaction, referral, optin, ...: nothing for a case
    return out


def _messaging_message(channel: Channel, event: Mapping[str, Any], message: Mapping[str, Any], where: str,
                       postback: bool = False) -> Envelope:
    sender = _id(require(event, "sender", dict, where), f"{where}sender.")
    recipient = _id(require(event, "recipient", dict, where), f"{where}recipient.")
    mid = require(message, "mid", str, f"{where}{'postback' if postback else 'message'}.")
    details: dict[str, str] = {}
    media: list[str] = []
    kinds: list[str] = []
    for attachment in _items(message, "attachments"):
        if not isinstance(attachment, Mapping):
            continue
        kind = _str(attachment.get("type", "attachment"))
        payload = _obj(attachment, "payload")
        kinds.append("sticker" if payload.get("sticker_id") else kind)
        if payload.get("url"):
            media.append(str(payload["url"]))
        elif payload or attachment.get("title"):
            details[f"attachment_{len(kinds)}"] = _str(attachment)
    if kinds:
        details["attachments"] = ",".join(kinds)
    if postback:
        details["postback_payload"] = _str(message.get("payload", ""))
        text = _str(message.get("title", "")) or "[postback]"
    else:
        text = _str(message.get("text") or "") or (f"[{', '.join(kinds)}]" if kinds else "")
        text = text or ("[unsupported message]" if message.get("is_unsupported") else "[empty message]")
    quick = message.get("quick_reply")
    if isinstance(quick, Mapping) and quick.get("payload"):
        details["quick_reply"] = _str(quick["payload"])
    reply_to = _obj(message, "reply_to")
    hints = [str(reply_to["mid"])] if reply_to.get("mid") else []
    if hints:
        details["reply_to"] = hints[0]
    if isinstance(reply_to.get("story"), Mapping):
        details["reply_to_story"] = _str(reply_to["story"])
    if sent := _sent_at(event.get("timestamp"), 1000):
        details["sent_at"] = sent
    return message_envelope(channel, "meta", mid, sender=Sender(handle=sender), text=text,
                            recipients=(recipient,), entry_type="Media" if kinds else "Text", media=media,
                            details=details, thread_hints=hints)


# --- small shared pieces --------------------------------------------------------------------------

def _list(obj: Mapping[str, Any], name: str, where: str) -> list[Any]:
    """obj[name] as a list ([] when absent); 400 naming it when it is something else."""
    value = obj.get(name)
    if value is None:
        return []
    if not isinstance(value, list):
        raise Rejected(400, f"missing or invalid field {where}{name}", f"{where}{name}")
    return value


def _obj(parent: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """parent[name] when it is an object, else {} (optional parts of a payload)."""
    value = parent.get(name)
    return value if isinstance(value, Mapping) else {}


def _items(parent: Mapping[str, Any], name: str) -> list[Any]:
    """parent[name] when it is a list, else [] (optional parts of a payload)."""
    value = parent.get(name)
    return value if isinstance(value, list) else []


def _id(obj: Mapping[str, Any], where: str) -> str:
    """`obj.id` (Meta sends ids as strings; a number is accepted too)."""
    return str(require(obj, "id", (str, int), where))


def _str(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _sent_at(value: Any, per_second: int) -> str | None:
    """Meta's timestamp (WhatsApp: seconds as a string; Messenger: milliseconds) in ISO 8601, UTC."""
    try:
        return datetime.fromtimestamp(float(value) / per_second, UTC).isoformat()
    except (TypeError, ValueError, OverflowError, OSError):
        return None
