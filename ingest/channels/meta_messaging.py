"""Meta webhooks on one route: WhatsApp Cloud API, Messenger and Instagram
(https://developers.facebook.com/docs/graph-api/webhooks/getting-started,
https://developers.facebook.com/docs/messenger-platform/webhook).

GET answers the subscription handshake (`hub.mode=subscribe` + our verify token → the challenge).
POST is verified first — `X-Hub-Signature-256: sha256=<hex>` is HMAC-SHA256(app secret, raw body) — then
parsed; every customer message it carries becomes one envelope, and all of them are published before
the 200 (503 otherwise: Meta redelivers the whole request, the worker dedupes by wamid / mid).

WhatsApp: `entry[].changes[field=messages].value.messages[]`, read by meta_whatsapp.py. Messenger /
Instagram (here): `entry[].messaging[]` events with a `message` (or a `postback`), sender = PSID /
IGSID. WhatsApp `statuses[]` (of agents' replies) are published as delivery reports. Ignored with 200:
other fields, echoes of our own messages, unsent (deleted) messages, Messenger delivery / read /
reaction events, `standby` events and other objects. The
delivery's shapes are meta_payload.py; a malformed one is a 400 naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog
from aiohttp import web
from casegate.config.channels import MetaChannel
from casegate.config.sections import read_secret
from casegate.ingest.channels.meta_payload import (
    Delivery,
    MessagingDelivery,
    MessagingEvent,
    MessagingMessage,
    Postback,
    ReplyTo,
    WhatsAppDelivery,
)
from casegate.ingest.channels.meta_whatsapp import whatsapp_envelopes, whatsapp_status_envelopes
from casegate.ingest.channels.payload import as_detail
from casegate.ingest.channels.webhook import (
    ChannelContext,
    Rejected,
    check_hmac_sha256,
    message_envelope,
    parse_json,
    publish_all,
    same_secret,
    validated,
    webhook,
)
from casegate.ingest.envelope import Channel, Envelope, Sender

log = structlog.get_logger("casegate.meta")

SIGNATURE_HEADER = "X-Hub-Signature-256"
MESSAGING_OBJECTS: dict[str, Channel] = {"page": "messenger", "instagram": "instagram"}


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
    """Every customer message of a (verified) delivery, then WhatsApp's delivery reports; Rejected 400
    naming the first malformed field."""
    if not isinstance(payload, Mapping):
        raise Rejected(400, "body is not a JSON object", "object")
    kind = validated(Delivery, payload).object
    if kind == "whatsapp_business_account":
        return whatsapp_envelopes(validated(WhatsAppDelivery, payload)) + whatsapp_status_envelopes(payload)
    if kind in MESSAGING_OBJECTS:
        return _messaging(MESSAGING_OBJECTS[kind], validated(MessagingDelivery, payload))
    log.info("meta.ignored", object=kind)
    return []


# --- Messenger and Instagram ----------------------------------------------------------------------

def _messaging(channel: Channel, delivery: MessagingDelivery) -> list[Envelope]:
    out = []
    for entry in delivery.entry:
        for event in entry.messaging:
            if event.message is not None:
                if event.message.is_echo or event.message.is_deleted:
                    continue  # our own page's message coming back / a message the customer unsent
                out.append(_messaging_message(channel, event, event.message))
            elif event.postback is not None and event.postback.mid:
                out.append(_postback(channel, event, event.postback, event.postback.mid))
            # delivery, read, reaction, referral, optin, ...: nothing for a case
    return out


def _messaging_message(channel: Channel, event: MessagingEvent, message: MessagingMessage) -> Envelope:
    details: dict[str, str] = {}
    media: list[str] = []
    kinds: list[str] = []
    for attachment in message.attachments:
        payload = attachment.payload
        kinds.append("sticker" if payload is not None and payload.sticker_id else attachment.type)
        if payload is not None and payload.url:
            media.append(payload.url)
        elif (payload is not None and payload.as_sent()) or attachment.title:
            details[f"attachment_{len(kinds)}"] = as_detail(attachment.as_sent())
    if kinds:
        details["attachments"] = ",".join(kinds)
    text = message.text or (f"[{', '.join(kinds)}]" if kinds else "")
    text = text or ("[unsupported message]" if message.is_unsupported else "[empty message]")
    if message.quick_reply is not None and message.quick_reply.payload:
        details["quick_reply"] = message.quick_reply.payload
    reply_to = message.reply_to or ReplyTo()
    hints = [reply_to.mid] if reply_to.mid else []
    if hints:
        details["reply_to"] = hints[0]
    if reply_to.story is not None:
        details["reply_to_story"] = as_detail(reply_to.story)
    return _event_envelope(channel, event, message.mid, text, "Media" if kinds else "Text", media, details, hints)


def _postback(channel: Channel, event: MessagingEvent, postback: Postback, mid: str) -> Envelope:
    return _event_envelope(channel, event, mid, postback.title or "[postback]", "Text", [],
                           {"postback_payload": postback.payload or ""}, [])


def _event_envelope(channel: Channel, event: MessagingEvent, mid: str, text: str, entry_type: str,
                    media: list[str], details: dict[str, str], hints: list[str]) -> Envelope:
    if event.timestamp is not None:
        details["sent_at"] = event.timestamp.isoformat()
    return message_envelope(channel, "meta", mid, sender=Sender(handle=event.sender.id), text=text,
                            recipients=(event.recipient.id,), entry_type=entry_type, media=media,
                            details=details, thread_hints=hints)
