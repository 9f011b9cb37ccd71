"""Twilio Programmable Messaging (https://www.twilio.com/docs/messaging/guides/webhook-request): SMS,
MMS and WhatsApp via Twilio, and the X-Twilio-Signature check every Twilio route shares (the voice
routes of twilio_voice.py use it too).

An inbound message becomes one envelope (channel `sms`, or `whatsapp` when From is `whatsapp:+…`;
external id = MessageSid, so a redelivery is one message), acknowledged with an empty TwiML
<Response/> (Twilio then sends no reply) once the bus has it. Its media URLs are recorded; with
`fetch_media` the media are also downloaded into the blob store first (a failed download still
publishes the message, with the URLs, and says so in its details). Delivery status callbacks
(MessageStatus without Body: the statuses of agents' replies) are published as delivery reports, which
the worker applies to the reply they name; they never become cases. The fields read
are twilio_payload.py's models; a malformed one is a 400 naming it as Twilio spells it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Iterator, Mapping, Sequence
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

import structlog
from aiohttp import web
from casegate.config.channels import TwilioChannel
from casegate.config.sections import read_secret
from casegate.ingest.channels import twilio_voice
from casegate.ingest.channels.media_fetch import HttpMediaFetcher, MediaFetcher, MediaItem, store_media
from casegate.ingest.channels.twilio_common import Params, first, twiml
from casegate.ingest.channels.twilio_payload import InboundMessage, StatusCallback, fields
from casegate.ingest.channels.webhook import (
    ChannelContext,
    Handler,
    Rejected,
    e164,
    message_envelope,
    parse_json,
    publish_all,
    validated,
    webhook,
)
from casegate.ingest.envelope import Channel, Envelope, Sender
from casegate.ingest.replies.delivery_status import report_envelope, twilio_status

log = structlog.get_logger("casegate.twilio")

SIGNATURE_HEADER = "X-Twilio-Signature"
SETTINGS_HEADER = "X-Twilio-Webhooks-Signature-Settings"
Digest = Callable[[], "hashlib._Hash"]

DETAILS = {"account_sid": "account_sid", "messaging_service_sid": "messaging_service_sid", "to": "to",
           "num_segments": "num_segments", "from_country": "from_country", "wa_id": "wa_id",
           "profile_name": "profile_name", "original_replied_message_sid": "replied_to_message_sid",
           "forwarded": "forwarded", "button_text": "button_text", "button_payload": "button_payload",
           "latitude": "latitude", "longitude": "longitude", "address": "address", "label": "label",
           "referral_source_url": "referral_source_url", "referral_headline": "referral_headline"}
"""InboundMessage fields kept in the conversation entry's details (when present and not empty) → their key."""


# -- X-Twilio-Signature (https://www.twilio.com/docs/usage/webhooks/webhooks-security) -------------
def twilio_signature(secret: str, url: str, params: Mapping[str, Sequence[str]] | None = None,
                     digest: Digest = hashlib.sha1) -> str:
    """base64(HMAC(secret, url + each param name + value, names sorted, each distinct value sorted))."""
    parts = [url]
    if params:
        for name in sorted(params):
            values = params[name]
            for value in values if len(values) == 1 else sorted(set(values)):
                parts += (name, value)
    return base64.b64encode(hmac.new(secret.encode(), "".join(parts).encode(), digest).digest()).decode()


def url_variants(url: str) -> Iterator[str]:
    """The URL as given, then (only if asked for: it is the rare case) with its default port added
    (when it has none) or removed (when it has one): Twilio's signer sometimes includes the port and
    sometimes not, and its SDKs accept both."""
    yield url
    p = urlsplit(url)
    host = p.netloc.rsplit("@", 1)[-1]
    userinfo = p.netloc[: len(p.netloc) - len(host)]
    default_port = ":443" if p.scheme == "https" else ":80"
    other = userinfo + host.rsplit(":", 1)[0] if p.port else p.netloc + default_port
    yield urlunsplit(p._replace(netloc=other))


def signature_valid(secret: str, url: str, signature: str, params: Mapping[str, Sequence[str]] | None = None,
                    digest: Digest = hashlib.sha1) -> bool:
    """Does `signature` sign `url` (or its port variant) and `params`? Compared in constant time."""
    given = signature.strip().encode()
    return any(hmac.compare_digest(twilio_signature(secret, u, params, digest).encode(), given)
               for u in url_variants(url))


def signing_key(section: TwilioChannel, settings_header: str | None) -> tuple[str, Digest]:
    """The secret and hash: the Auth Token with HMAC-SHA1, or the SharedKey a Webhooks Rule names."""
    if not settings_header:
        return read_secret(section.auth_token, section.auth_token_file), hashlib.sha1
    fields = dict(part.strip().partition("=")[::2] for part in settings_header.split(","))
    secret = section.shared_keys.get(fields.get("key", ""))
    if secret is None:
        raise Rejected(403, f"{SETTINGS_HEADER} names an unknown key")
    algorithm = fields.get("algorithm", "HMAC_SHA1").upper()
    if algorithm not in ("HMAC_SHA1", "HMAC_SHA256"):
        raise Rejected(403, f"{SETTINGS_HEADER}: unsupported algorithm")
    return secret, hashlib.sha256 if algorithm == "HMAC_SHA256" else hashlib.sha1


def form_params(data: bytes | str) -> Params:
    """Form fields (application/x-www-form-urlencoded), blank values kept: what urllib's parse_qsl gives,
    in half its time (a field is unquoted only when it has something to unquote)."""
    params: Params = {}
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    for pair in text.split("&"):
        if not pair:
            continue
        name, _, value = pair.partition("=")
        if "+" in name or "%" in name:
            name = unquote(name.replace("+", " "))
        if "+" in value or "%" in value:
            value = unquote(value.replace("+", " "))
        params.setdefault(name, []).append(value)
    return params


def phone_number(raw: str) -> str | None:
    """E.164 of a Twilio address (`+14155550123`, `whatsapp:+14155550123`)."""
    return e164(raw)


def json_params(body: bytes) -> Params:
    obj = parse_json(body)
    if not isinstance(obj, dict):
        raise Rejected(400, "JSON body is not an object")
    return {str(k): [v if isinstance(v, str) else str(v)] for k, v in obj.items() if v is not None}


async def verified_params(ctx: ChannelContext, request: web.Request, body: bytes) -> Params:
    """The request's parameters, once X-Twilio-Signature proved Twilio sent them (Rejected otherwise):
    a form POST is signed over the public URL + its sorted fields; a JSON POST carries bodySHA256 in the
    URL and is signed over the URL alone; a GET is signed over the URL (its parameters are in it)."""
    section = ctx.settings.channels.twilio
    signature = request.headers.get(SIGNATURE_HEADER)
    if not signature:
        raise Rejected(401, f"{SIGNATURE_HEADER} missing")
    secret, digest = signing_key(section, request.headers.get(SETTINGS_HEADER))
    if not secret:
        raise Rejected(403, "no auth token configured")
    url = ctx.public_url(request)
    query = urlsplit(url).query
    body_sha = parse_qs(query).get("bodySHA256") if "bodySHA256" in query else None
    signed: Params | None = None
    if body_sha:
        if not hmac.compare_digest(hashlib.sha256(body).hexdigest().encode(), body_sha[0].lower().encode()):
            raise Rejected(403, "bodySHA256 does not match the body")
    elif request.method == "POST":
        signed = form_params(body)
    if not signature_valid(secret, url, signature, signed, digest):
        raise Rejected(403, f"{SIGNATURE_HEADER} does not match")
    if signed is not None:
        params = signed
    elif body_sha:
        params = json_params(body) if request.content_type == "application/json" else form_params(body)
    else:
        params = form_params(query)
    if section.account_sid and first(params, "AccountSid") != section.account_sid:
        raise Rejected(403, "request for another AccountSid")
    return params


# -- messages -------------------------------------------------------------------------------------
def envelope_of(message: InboundMessage, media: Sequence[MediaItem], extra: Mapping[str, str]) -> Envelope:
    sender, to = message.sender, message.to or ""
    channel: Channel = "whatsapp" if sender.lower().startswith("whatsapp:") else "sms"
    phone = phone_number(sender)
    text = message.body or ""
    if not text and message.latitude:
        text = f"Shared location: {message.address or ''} ({message.latitude}, {message.longitude})"
    details = {key: value for name, key in DETAILS.items() if (value := getattr(message, name))}
    details.update(extra)
    return message_envelope(
        channel, "twilio", message.message_sid, sender=Sender(name=message.profile_name or None, phone=phone,
                                                              handle=None if phone else sender),
        text=text, recipients=(phone_number(to) or to,) if to else (), entry_type="Media" if media else "Text",
        media=[m.url for m in media], details=details,
        thread_hints=[h for h in (message.original_replied_message_sid,) if h])


def messaging_handler(ctx: ChannelContext, fetcher: MediaFetcher) -> Handler:
    async def handle(request: web.Request, body: bytes) -> web.StreamResponse:
        params = await verified_params(ctx, request, body)
        p = fields(params)
        if "MessageStatus" in p and "Body" not in p:
            validated(StatusCallback, p)
            update = twilio_status(params)
            if update is None:  # not a status of a message of ours
                return twiml()
            channel: Channel = "whatsapp" if (update.recipient or "").lower().startswith("whatsapp:") else "sms"
            return await publish_all(ctx, "twilio", [report_envelope(channel, "twilio", update)], ok=twiml())
        message = validated(InboundMessage, p)  # malformed input is refused before any download
        media = message.media()
        envelope = envelope_of(message, media, {})
        section = ctx.settings.channels.twilio
        if media and section.fetch_media:
            token = read_secret(section.auth_token, section.auth_token_file)
            account = message.account_sid
            outcome = await store_media(fetcher, ctx.publisher.blobs, media,
                                        auth=(account, token) if account and token else None,
                                        max_bytes=section.media_max_bytes, timeout=section.media_timeout_seconds)
            if len(outcome.attachments) < len(media):
                log.warning("twilio.media_fetch_failed", message_sid=envelope.external_id,
                            stored=len(outcome.attachments), media=len(media))
            envelope = envelope_of(message, media, outcome.details).model_copy(
                update={"attachments": tuple(outcome.attachments)})
        return await publish_all(ctx, "twilio", [envelope], ok=twiml())

    return handle


def mount(app: web.Application, ctx: ChannelContext, fetcher: MediaFetcher | None = None) -> None:
    """Messaging on `messaging_path` (POST, and GET for numbers configured so), voice on `voice_path`."""
    section = ctx.settings.channels.twilio
    media = fetcher or HttpMediaFetcher(section.media_hosts)

    async def close_fetcher(_app: web.Application) -> None:
        await media.close()

    app.on_cleanup.append(close_fetcher)
    route = webhook("twilio", ctx, messaging_handler(ctx, media))
    app.router.add_post(section.messaging_path, route)
    app.router.add_get(section.messaging_path, route)
    twilio_voice.mount(app, ctx, verified_params)
