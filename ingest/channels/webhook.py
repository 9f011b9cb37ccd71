"""What every webhook channel shares: read the raw body first, within the
size limit (413); verify it before parsing anything (401 missing, 403 wrong); refuse malformed input
with 400 and a JSON body naming the field; publish every message of the request and answer 200 only
once the bus has them all — 503 otherwise, so the provider delivers again (dedupe makes that safe).

A channel is a module with `mount(app, ctx)` that adds its routes; `ctx` gives it the publisher, the
settings and the public base URL providers sign against.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import itertools
import json
import operator
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import phonenumbers
import pydantic
import structlog
from aiohttp import web
from casegate.config import Settings
from casegate.ingest.bus import BusError
from casegate.ingest.bus.blobs import BlobStoreError
from casegate.ingest.bus.publisher import Publisher
from casegate.ingest.envelope import Channel, Entry, Envelope, Sender
from casegate.ingest.metrics import WEBHOOK_REJECTED
from casegate.store.database import Database

log = structlog.get_logger("casegate.webhook")
M = TypeVar("M", bound=pydantic.BaseModel)
MAX_JSON_DEPTH = 64
"""Provider payloads nest a handful of levels; anything deeper is refused before it is parsed (json's
recursive decoder, and whatever walks the result, would otherwise meet Python's recursion limit)."""


class Rejected(Exception):
    """The request is refused: `status` with a JSON body {"error": ..., "field": ...}."""

    def __init__(self, status: int, error: str, field: str | None = None):
        super().__init__(error)
        self.status = status
        self.error = error
        self.field = field


def json_error(status: int, error: str, field: str | None = None) -> web.Response:
    return web.json_response({"error": error, **({"field": field} if field else {})}, status=status)


@dataclass
class ChannelContext:
    publisher: Publisher
    settings: Settings
    db: Database | None = None
    """The case store, in processes that have one (the worker role): for lookups such as the screen pop."""
    port: int = 0
    """The HTTP port actually bound (the configured one may be 0 = any)."""

    @property
    def public_base_url(self) -> str:
        http = self.settings.http
        return (http.public_base_url or f"http://{http.host}:{self.port or http.port}").rstrip("/")

    def public_url(self, request: web.Request) -> str:
        """The URL the provider called (and signed): the configured public base + the raw path and query."""
        return self.public_base_url + request.raw_path


async def read_body(request: web.Request, limit: int, timeout: float) -> bytes:
    """The raw body, refused with 413 beyond `limit` bytes (checked as it streams in, not only by header)
    and with 408 when it has not all arrived within `timeout` seconds (a client trickling its body)."""
    if request.content_length is not None and request.content_length > limit:
        raise Rejected(413, f"request body over {limit} bytes")
    if request.content.is_eof():  # all of it came with the headers (a webhook nearly always does): no waiting
        whole = request.content.read_nowait()
        if len(whole) > limit:
            raise Rejected(413, f"request body over {limit} bytes")
        return whole
    body = bytearray()
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.content.iter_chunked(65536):
                body += chunk
                if len(body) > limit:
                    raise Rejected(413, f"request body over {limit} bytes")
    except TimeoutError:
        raise Rejected(408, f"request body not received within {timeout:g} s") from None
    return bytes(body)


Handler = Callable[[web.Request, bytes], Awaitable[web.StreamResponse]]
Route = Callable[[web.Request], Awaitable[web.StreamResponse]]


def webhook(channel: str, ctx: ChannelContext, handle: Handler) -> Route:
    """An aiohttp handler: reads the body within the limit, runs `handle(request, body)`, turns Rejected
    into its JSON error (logged, without the body or secrets)."""

    async def run(request: web.Request) -> web.StreamResponse:
        http = ctx.settings.http
        try:
            body = await read_body(request, http.max_body_size, http.body_timeout)
            return await handle(request, body)
        except Rejected as e:  # the client's doing: info, not an error of ours
            log.info("webhook.rejected", channel=channel, status=e.status, reason=e.error, field=e.field,
                     peer=request.remote)
            WEBHOOK_REJECTED.labels(channel, str(e.status)).inc()
            return json_error(e.status, e.error, e.field)
        except OSError as e:  # e.g. a secret file missing mid-rotation: the provider should retry, not give up
            log.error("webhook.unavailable", channel=channel, error=f"{type(e).__name__}: {e.strerror or e}")
            WEBHOOK_REJECTED.labels(channel, "503").inc()
            return json_error(503, "temporarily unable to verify requests; please retry")

    return run


def check_hmac_sha256(secret: str | bytes, message: bytes, given: str | None, *, prefix: str = "",
                      encoding: str = "hex") -> None:
    """Raise Rejected (401 missing, 403 wrong) unless `given` is HMAC-SHA256(secret, message), written as
    `prefix` + hex (or base64) digest. Compared in constant time."""
    if not given:
        raise Rejected(401, "signature missing")
    key = secret.encode() if isinstance(secret, str) else secret
    digest = hmac.new(key, message, hashlib.sha256).digest()
    expected = prefix + (digest.hex() if encoding == "hex" else base64.b64encode(digest).decode())
    if not hmac.compare_digest(expected.encode(), given.strip().encode()):
        raise Rejected(403, "signature does not match")


def same_secret(given: str, expected: str) -> bool:
    """`given` is the configured secret, compared in constant time; an empty secret never matches."""
    return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


def check_timestamp(given: str | None, window: int, now: float, header: str) -> None:
    """Rejected unless `given` (unix seconds) is within `window` seconds of `now`, either side
    (401 missing, 403 unreadable or outside: a replayed or delayed request)."""
    if not given or not given.strip():
        raise Rejected(401, f"{header} missing")
    try:
        at = int(given.strip())
    except ValueError:
        raise Rejected(403, f"{header} is not unix seconds") from None
    if abs(now - at) > window:
        raise Rejected(403, f"{header} is outside the replay window of {window} s")


def check_signed_at(request: web.Request, body: bytes, secret: Callable[[], str], *, window: int, now: float,
                    timestamp_header: str, signature_header: str, prefix: str) -> None:
    """The scheme of our own documented webhooks (chat, CTI): `signature_header` is `prefix` +
    hex(HMAC-SHA256(secret, timestamp + "." + body)) and `timestamp_header` is within `window` s of now.
    401 when either header is missing, 403 when stale or wrong. `secret` is read only once both are there."""
    stamp = request.headers.get(timestamp_header)
    signature = request.headers.get(signature_header)
    if not stamp:
        raise Rejected(401, f"{timestamp_header} missing")
    if not signature:
        raise Rejected(401, f"{signature_header} missing")
    check_timestamp(stamp, window, now, timestamp_header)
    check_hmac_sha256(secret(), stamp.strip().encode() + b"." + body, signature, prefix=prefix)


def bearer_of(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, else None."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_BRACKETS = bytes.maketrans(b"[{]}", b"\x02\x02\x00\x00")
_NOT_BRACKETS = bytes(set(range(256)) - set(b"[{]}"))


def json_depth(body: bytes) -> int:
    """How deep the arrays and objects of a JSON text nest, counted without parsing it (strings are
    skipped first, so brackets inside them do not count). Linear, and the loops run in C."""
    marks = _JSON_STRING.sub(b"", body).translate(_BRACKETS, _NOT_BRACKETS)  # 2 opens, 0 closes
    # depth after the i-th bracket = sum(mark - 1) = (running sum of marks) - i
    return max(map(operator.sub, itertools.accumulate(marks), itertools.count(1)), default=0)


def parse_json(body: bytes, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """The JSON value of `body`; Rejected 400 when it is not JSON or nests deeper than `max_depth`."""
    if json_depth(body) > max_depth:
        raise Rejected(400, f"body nests deeper than {max_depth} levels")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise Rejected(400, f"body is not JSON: {e}") from None


def field_path(loc: Sequence[int | str], where: str = "") -> str:
    """A pydantic error location as the field path the provider's documentation uses: `a.b[0].c`."""
    path = where
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path and not path.endswith(".") else part)
    return path


def validated(model: type[M], payload: Any, where: str = "") -> M:
    """`payload` as `model`; Rejected 400 naming the first field that does not fit."""
    try:
        return model.model_validate(payload)
    except pydantic.ValidationError as e:
        error = e.errors(include_url=False, include_input=False)[0]
        field = field_path(error["loc"], where) or None
        raise Rejected(400, f"invalid field {field}: {error['msg']}" if field else error["msg"], field) from None


def one_or_many(body: bytes, key: str, limit: int) -> list[tuple[dict[str, Any], str]]:
    """The JSON object in `body`, or each object of its `key` list (1 to `limit` of them), with the
    prefix that names its fields in errors (`""` or `"<key>[i]."`)."""
    payload = parse_json(body)
    if not isinstance(payload, dict):
        raise Rejected(400, "body must be a JSON object")
    if key not in payload:
        return [(payload, "")]
    items = payload[key]
    if not isinstance(items, list) or not items or len(items) > limit:
        raise Rejected(400, f"{key} must be a list of 1 to {limit} {key}", key)
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise Rejected(400, f"{key}[{i}] must be an object", f"{key}[{i}]")
    return [(item, f"{key}[{i}].") for i, item in enumerate(items)]


def e164(raw: str | None, default_region: str | None = None) -> str | None:
    """A phone number in E.164 (+15551230000), or None when it is not one. Accepts provider forms such as
    `whatsapp:+1 555 123 0000` and WhatsApp's bare digits (`15551230000`)."""
    return _e164(raw, default_region) if raw else None


@functools.lru_cache(maxsize=65536)
def _e164(raw: str, default_region: str | None) -> str | None:
    """Remembered: parsing a number costs ~15 µs, and our own numbers and a conversation's sender come
    again and again, on every channel."""
    value = raw.split(":", 1)[1] if raw.lower().startswith(("whatsapp:", "tel:", "sms:")) else raw
    value = value.strip()
    if value.isascii() and value.isdigit() and default_region is None:
        value = "+" + value
    try:
        number = phonenumbers.parse(value, default_region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def message_envelope(channel: Channel, source: str, external_id: str, *, sender: Sender, text: str | None,
                     recipients: Sequence[str] = (), subject: str | None = None, entry_type: str = "Text",
                     media: Sequence[str] = (), details: Mapping[str, str] | None = None,
                     case_fields: Mapping[str, str] | None = None, action: str | None = None,
                     thread_hints: Sequence[str] = (), conversation: str | None = None,
                     sent_at: datetime | None = None) -> Envelope:
    """The envelope of one message that is not an email. The conversation key is the channel plus
    `conversation`, else the sender's phone number (E.164), handle or email: one customer's messages stay
    in order and together. `sent_at` (the provider's time) becomes the entry's time."""
    who = conversation or sender.phone or sender.handle or sender.email or external_id
    entry = Entry(source=source, entry_type=entry_type, media=tuple(media), details=dict(details or {}),
                  case_fields=dict(case_fields or {}), action=action or None)
    return Envelope(channel=channel, external_id=external_id, conversation_key=f"{channel}:{who}",
                    sender=sender, recipients=tuple(recipients), subject=subject, text=text,
                    thread_hints=tuple(thread_hints), entry=entry,
                    headers={"Date": sent_at.isoformat()} if sent_at else {})


async def publish_all(ctx: ChannelContext, channel: str, envelopes: Sequence[Envelope],
                      ok: web.StreamResponse | None = None) -> web.StreamResponse:
    """Publish every envelope; 200 (or `ok`) once the bus has them all, 503 when it failed. A message
    published before the failure is published again on the provider's retry and deduplicated."""
    try:
        for envelope in envelopes:
            await ctx.publisher.publish(envelope)
    except (BusError, BlobStoreError) as e:
        log.warning("webhook.tempfail", channel=channel, reason=str(e), messages=len(envelopes))
        WEBHOOK_REJECTED.labels(channel, "503").inc()
        return json_error(503, "could not store the message durably; please retry")
    for envelope in envelopes:
        log.info("webhook.accepted", channel=channel, external_id=envelope.external_id, envelope_id=envelope.id)
    return ok if ok is not None else web.json_response({"accepted": len(envelopes)})
