"""WhatsApp Cloud API messages (https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/components)
as envelopes, for the Meta route (ingest.channels.meta_messaging, which verifies and dispatches).

Each `entry[].changes[field=messages].value.messages[]` item is one envelope on channel `whatsapp`,
its wamid the idempotency key: sender = `from` in E.164 (the business-scoped `user_id`, when Meta sends
one, as the handle), recipient = our business number. Every message type is recorded, never dropped:
text, media (as the Graph URL of its id), interactive and button replies, locations, contact cards,
reactions, system messages and orders are rendered; any other type is kept with its payload and errors.
`statuses[]` (the delivery statuses of agents' replies) become delivery reports (`whatsapp_status_envelopes`),
which the worker applies to the reply each names; other change fields publish nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from casegate.ingest.channels.meta_payload import (
    Button,
    Card,
    Contact,
    Context,
    Interactive,
    Location,
    Media,
    Message,
    Order,
    Profile,
    Reaction,
    System,
    Value,
    WhatsAppDelivery,
)
from casegate.ingest.channels.payload import as_detail
from casegate.ingest.channels.webhook import Rejected, e164, message_envelope, validated
from casegate.ingest.envelope import Envelope, Sender
from casegate.ingest.replies.delivery_status import meta_statuses, report_envelope

MEDIA_TYPES = ("image", "audio", "video", "document", "sticker")
MEDIA_FIELDS = ("id", "mime_type", "sha256", "filename", "caption", "voice", "animated")
LOCATION_FIELDS = ("latitude", "longitude", "name", "address", "url")
GRAPH_MEDIA = "https://graph.facebook.com/"
"""A WhatsApp media id becomes the Graph URL that resolves it (GET with the access token → a short-lived
download URL); the id, mime type and sha256 are kept in the entry's details."""

Rendered = tuple[str | None, str, list[str], dict[str, str]]
"""(text, entry type, media, details) of one message."""


def whatsapp_envelopes(delivery: WhatsAppDelivery) -> list[Envelope]:
    """Every customer message of a (verified) WhatsApp delivery; Rejected 400 naming a malformed field."""
    out = []
    for i, entry in enumerate(delivery.entry):
        for j, change in enumerate(entry.changes):
            if change.field != "messages":
                continue
            at = f"entry[{i}].changes[{j}].value"
            value = validated(Value, change.value, at)
            if not value.messages:
                continue  # statuses[] / errors[] only: delivery reports of our own messages
            if value.metadata is None:
                raise Rejected(400, f"missing or invalid field {at}.metadata", f"{at}.metadata")
            display, number_id = value.metadata.display_phone_number, value.metadata.phone_number_id
            if not display and not number_id:
                raise Rejected(400, f"missing or invalid field {at}.metadata.phone_number_id",
                               f"{at}.metadata.phone_number_id")
            recipient = (e164(display) or display) if display else str(number_id)
            for k, message in enumerate(value.messages):
                out.append(_whatsapp_message(message, value.contacts, recipient, number_id or "",
                                             f"{at}.messages[{k}]."))
    return out


def whatsapp_status_envelopes(payload: Mapping[str, Any]) -> list[Envelope]:
    """A delivery report for each status of a (verified) WhatsApp delivery, in order; Rejected 400 naming
    a malformed status."""
    try:
        updates = meta_statuses(payload)
    except ValueError as e:
        raise Rejected(400, str(e), str(e).split(" ", 1)[0]) from None
    return [report_envelope("whatsapp", "meta", update) for update in updates]


def _whatsapp_message(msg: Message, contacts: Sequence[Contact], recipient: str, number_id: str,
                      where: str) -> Envelope:
    sender = msg.sender
    contact = next((c for c in contacts if sender in (c.wa_id, c.user_id)),
                   contacts[0] if len(contacts) == 1 else None)
    profile = (contact.profile if contact is not None else None) or Profile()
    phone = e164(sender) if sender.isascii() and sender.isdigit() else None
    handle = (contact.user_id if contact is not None else None) or (None if phone else sender)
    text, entry_type, media, details = _render(msg, where)
    details |= {"type": msg.type, **({"phone_number_id": number_id} if number_id else {})}
    if msg.timestamp is not None:
        details["sent_at"] = msg.timestamp.isoformat()
    if profile.username:
        details["username"] = profile.username
    context = msg.context or Context()
    hints = [context.id] if context.id else []
    if hints:
        details["reply_to"] = hints[0]
    for flag, on in (("forwarded", context.forwarded), ("frequently_forwarded", context.frequently_forwarded)):
        if on:
            details[flag] = "true"
    if msg.referral is not None:
        details["referral"] = as_detail(msg.referral)
    return message_envelope("whatsapp", "meta", msg.id, sender=Sender(
        name=profile.name or None, phone=phone, handle=handle or None), text=text, recipients=(recipient,),
        entry_type=entry_type, media=media, details=details, thread_hints=hints)


def _render(msg: Message, where: str) -> Rendered:
    """The text, entry type, media and details of one WhatsApp message, by its type."""
    kind = msg.type
    if kind == "text":
        if msg.text is None:
            raise Rejected(400, f"missing or invalid field {where}text.body", f"{where}text.body")
        return msg.text.body, "Text", [], {}
    if kind in MEDIA_TYPES:
        return _media(kind, getattr(msg, kind) or Media())
    if kind == "interactive":
        return _interactive(msg.interactive or Interactive())
    if kind == "button":
        button = msg.button or Button()
        return button.text or "[button]", "Text", [], {"payload": button.payload}
    if kind == "location":
        at = msg.location or Location()
        details = {name: as_detail(getattr(at, name)) for name in LOCATION_FIELDS if name in at.model_fields_set}
        place = ", ".join(value for value in (at.name, at.address) if value)
        point = f"({at.latitude}, {at.longitude})"
        return f"[location: {place} {point}]" if place else f"[location {point}]", "Text", [], details
    if kind == "contacts":
        cards = msg.contacts
        text = f"[contact card: {'; '.join(_card(c) for c in cards)}]"
        return text, "Text", [], {"contacts": as_detail([c.as_sent() for c in cards])}
    if kind == "reaction":
        reaction = msg.reaction or Reaction()
        target, emoji = reaction.message_id, reaction.emoji
        text = f"[reaction {emoji} to {target}]" if emoji else f"[reaction removed from {target}]"
        return text, "Text", [], {"reacted_to": target, "emoji": emoji}
    if kind == "system":
        system = msg.system or System()
        details = {f"system_{k}": as_detail(v) for k, v in system.as_sent().items() if k != "body"}
        return system.body or "[system message]", "Text", [], details
    if kind == "order":
        order = msg.order or Order()
        details = {"catalog_id": order.catalog_id, "product_items": as_detail(order.product_items)}
        return order.text or f"[order: {len(order.product_items)} items]", "Text", [], details
    # unsupported, request_welcome, anything newer: kept with its type and whatever it carried
    why = next((f": {e.title}" for e in msg.errors if e.title), "")
    payload = msg.payload()
    details = {**({"payload": as_detail(payload)} if payload is not None else {}),
               **({"errors": as_detail([e.as_sent() for e in msg.errors])} if msg.errors else {})}
    return f"[{kind} message{why}]", "Text", [], details


def _media(kind: str, item: Media) -> Rendered:
    media_id = item.id or ""
    url = item.url or (GRAPH_MEDIA + media_id if media_id else "")
    details = {f"media_{name}" if name == "id" else name: as_detail(getattr(item, name))
               for name in MEDIA_FIELDS if name in item.model_fields_set}
    name = f": {item.filename}" if item.filename else ""
    return item.caption or f"[{kind}{name}]", "Media", [url] if url else [], details


def _interactive(interactive: Interactive) -> Rendered:
    """A button, list or flow reply: its title (or body) and id; another kind: its type, recorded as sent."""
    sub, reply = interactive.type, interactive.reply()
    sent = reply.as_sent() if reply is not None else interactive.other_reply()
    details = {"interactive_type": sub, **{f"reply_{k}": as_detail(v) for k, v in sent.items()}}
    title = (reply.title or reply.body if reply is not None else None) or f"[{sub or 'interactive'} reply]"
    return f"{title} [{reply.id}]" if reply is not None and reply.id else title, "Text", [], details


def _card(card: Card) -> str:
    name = card.name.formatted_name if card.name is not None else None
    phones = [phone.phone for phone in card.phones if phone.phone]
    return " ".join((name or "?", *phones))
