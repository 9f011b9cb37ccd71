"""Phone calls from any CTI platform as `cti.call.v1` events (reference/channels.md §8.4), and the
screen-pop lookup softphones call while the phone rings.

`POST [channels.cti] path` (default /hooks/cti) takes one event, or `{"events": [...]}`. It is signed:
`X-CTI-Timestamp: <unix s>` and `X-CTI-Signature: v1=<hex HMAC-SHA256(secret, timestamp + "." + body)>`,
the timestamp within `replay_window_seconds` of now; or, when `bearer_token` is configured, it carries
`Authorization: Bearer <bearer_token>` (senders that cannot sign, such as EventBridge API destinations).

Every event becomes one message on channel `phone`, external id `<call.id>:<event_type>`: a call has
several events (offered, answered, ended, wrapup, recording, transcript), each recorded at most once
however often, and under whichever `event_id`, the platform delivers it. What they do:
- `call.ended` is the call record: a "Call" entry whose text is a one-line summary ("Inbound call,
  3 min 12 s, answered by agent sam (queue Billing)") and whose details are every call field as strings
  (`duration_seconds` computed). The first `[[channels.cti.dispositions]]` rule matching the call's
  disposition decides: log (on the caller's most recent open case, else a new Phone case), new_case,
  or ignore (kept on the ledger as suppressed, no case). No matching rule = log.
- `call.wrapup`, `recording.available`, `transcript.available` add an entry with the wrap-up code and
  notes, the recording URL, or the transcript to the caller's open case (ignored when the call's
  disposition is ignored). They never open a second case for the same call themselves.
- `call.offered` and `call.answered` are live state for agent desktops (the lookup below serves the
  screen pop): acknowledged and kept on the ledger as suppressed, no entry.
The customer is the ANI of an inbound call and the DNIS of an outbound one. The event's shape is
cti_payload.py; a malformed event is a 400 naming its field.

`GET [channels.cti] lookup_path?ani=<number>` (default /cti/lookup) with `Authorization: Bearer
<lookup_token>` answers the contacts with that number and their open cases (store.caller_lookup). Every
process with the public HTTP listener serves it, whatever its role, each on a read-only connection of
its own to the case store (`CallerDirectory`): a softphone calls the public URL, and with
`http.reuse_port` an ingest and a worker process on one port may each take the request. The ingest
role mounts the whole channel (`mount`), the worker role only the lookup (`mount_reads`). While the
case store cannot be reached the lookup answers 503 (retry); mail and webhooks are not affected.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

import structlog
from aiohttp import web
from casegate.config.channels import CtiChannel, DispositionRule
from casegate.config.sections import read_secret
from casegate.ingest.channels.cti_payload import Call, CallEvent
from casegate.ingest.channels.webhook import (
    ChannelContext,
    Rejected,
    bearer_of,
    check_signed_at,
    e164,
    json_error,
    message_envelope,
    one_or_many,
    publish_all,
    same_secret,
    validated,
    webhook,
)
from casegate.ingest.envelope import Envelope, Sender
from casegate.store.caller_lookup import CONNECT_TIMEOUT, CallerDirectory
from sqlalchemy.exc import SQLAlchemyError

LIVE = ("call.offered", "call.answered")
"""Live call state for agent desktops: acknowledged, recorded on the ledger only."""
MAX_EVENTS = 500
LOOKUP_TIMEOUT = CONNECT_TIMEOUT + 1.0
"""Seconds a screen pop may take before it is answered 503 (the phone is ringing)."""
log = structlog.get_logger("casegate.cti")
_TITLES = {"call.offered": "Ringing: ", "call.answered": "Answered: ", "call.ended": "",
           "call.wrapup": "Wrap-up: ", "recording.available": "Recording: ", "transcript.available": "Transcript: "}


def authenticate(request: web.Request, body: bytes, section: CtiChannel, now: float) -> None:
    """A signed event (timestamp within the window, then the HMAC), or the configured bearer token."""
    signature = request.headers.get("X-CTI-Signature")
    bearer = bearer_of(request.headers.get("Authorization"))
    token = read_secret(section.bearer_token, section.bearer_token_file)
    if not signature and bearer and token:
        if not same_secret(bearer, token):
            raise Rejected(403, "bearer token does not match")
        return
    check_signed_at(request, body, lambda: read_secret(section.secret, section.secret_file),
                    window=section.replay_window_seconds, now=now, timestamp_header="X-CTI-Timestamp",
                    signature_header="X-CTI-Signature", prefix="v1=")


def duration(seconds: int) -> str:
    """3 min 12 s; 1 h 0 min 5 s; 45 s."""
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{h} h {m} min {s} s"
    return f"{m} min {s} s" if m else f"{s} s"


def disposition_rule(rules: Sequence[DispositionRule], disposition: str | None) -> tuple[str, int | None]:
    """The action of the first rule matching the disposition (case-insensitive, "*" = any) and its number
    (1-based); ("log", None) when none matches."""
    wanted = (disposition or "").strip().lower()
    for number, rule in enumerate(rules, 1):
        if rule.disposition.strip() == "*" or rule.disposition.strip().lower() == wanted:
            return rule.action, number
    return "log", None


def _flatten(details: dict[str, str], prefix: str, value: Any) -> None:
    if isinstance(value, dict) and prefix in ("queue", "agent", "recording", "source"):
        for k, v in value.items():
            _flatten(details, f"{prefix}_{k}", v)
    elif value is not None:
        details[prefix] = value if isinstance(value, str) else json.dumps(value)


def _action(kind: str, rules: Sequence[DispositionRule], disposition: str | None,
            details: dict[str, str]) -> str | None:
    """The envelope's action (None = log); an ignored event's reason goes into `details`."""
    action, number = disposition_rule(rules, disposition)
    if kind in LIVE:
        details["reason"] = f"{kind}: live call state; the call is recorded when it ends"
        return "ignore"
    if action == "ignore":
        details["reason"] = f"disposition {disposition or '(none)'}: ignore (dispositions rule {number})"
        return "ignore"
    return "new_case" if action == "new_case" and kind == "call.ended" else None


def _summary(kind: str, seconds: int | None, call: Call) -> str:
    """"Inbound call, 3 min 12 s, answered by agent sam (queue billing)", then the wrap-up code, the
    notes, and the recording URL or transcript the event brings."""
    line = f"{call.direction.title()} call" + (f", {duration(seconds)}" if seconds is not None else "")
    who = call.agent.label if call.agent is not None else None
    disposition = (call.disposition or "").lower()
    if who and (call.answered_at or disposition in ("", "completed", "transferred")):
        line += f", answered by agent {who}" + (", transferred" if disposition == "transferred" else "")
    elif disposition:
        line += f", {disposition.replace('-', ' ')}"
    if call.queue is not None and call.queue.label:
        line += f" (queue {call.queue.label})"
    lines = [_TITLES[kind] + line]
    if call.wrapup_code:
        lines.append(f"Wrap-up: {call.wrapup_code}")
    if call.notes:
        lines.append(call.notes)
    if kind == "recording.available" and call.recording is not None:
        lines.append(f"Recording: {call.recording.url}")
    if kind == "transcript.available":
        transcript = call.transcript
        lines.append(transcript if isinstance(transcript, str) else json.dumps(transcript))
    return "\n".join(lines)


def _missing(call: Call, kind: str) -> str | None:
    """The field an event of this type needs that its call lacks, if any."""
    if kind == "call.ended":
        return "started_at" if call.started_at is None else "ended_at" if call.ended_at is None else None
    if kind == "recording.available" and (call.recording is None or call.recording.url is None):
        return "recording.url"
    if kind == "transcript.available" and not call.transcript:
        return "transcript"
    return None


def call_envelope(raw: Mapping[str, Any], where: str, section: CtiChannel) -> Envelope:
    """The envelope of one `cti.call.v1` event (Rejected 400 naming the field when it is malformed)."""
    event = validated(CallEvent, raw, where)
    call, kind, at = event.call, event.event_type, f"{where}call."
    region = section.default_region or None
    field = f"{at}{call.customer_field}"
    if not call.customer:
        raise Rejected(400, f"missing or invalid field {field}", field)
    customer = e164(call.customer, region)
    if customer is None:
        raise Rejected(400, f"{field} is not a phone number", field)
    ours = (e164(call.ours, region) or call.ours) if call.ours is not None else None
    if (missing := _missing(call, kind)) is not None:
        raise Rejected(400, f"missing or invalid field {at}{missing}", f"{at}{missing}")
    seconds = None
    if call.started_at and call.ended_at:
        if call.ended_at < call.started_at:
            raise Rejected(400, f"{at}ended_at is before {at}started_at", f"{at}ended_at")
        seconds = round((call.ended_at - call.started_at).total_seconds())

    details: dict[str, str] = {"event_id": event.event_id, "event_type": kind,
                               "occurred_at": event.occurred_at.isoformat()}
    _flatten(details, "source", raw.get("source"))
    for name, value in raw["call"].items():  # every field as the platform sent it, ours or not
        _flatten(details, "call_id" if name == "id" else name, value)
    details["direction"] = call.direction
    details["customer_number"] = customer
    if seconds is not None:
        details["duration_seconds"] = str(seconds)
    action = _action(kind, section.dispositions, call.disposition, details)
    recording = call.recording.url if call.recording is not None else None
    return message_envelope(
        "phone", "cti", f"{call.id}:{kind}", sender=Sender(name=call.caller_name, phone=customer),
        text=_summary(kind, seconds, call), recipients=(ours,) if ours else (), entry_type="Call",
        details=details, media=[recording] if recording is not None else [], action=action,
        sent_at=event.occurred_at)


async def receive(ctx: ChannelContext, request: web.Request, body: bytes) -> web.StreamResponse:
    section = ctx.settings.channels.cti
    authenticate(request, body, section, time.time())
    envelopes = [call_envelope(e, prefix, section) for e, prefix in one_or_many(body, "events", MAX_EVENTS)]
    return await publish_all(ctx, "cti", envelopes)


async def lookup(ctx: ChannelContext, directory: CallerDirectory, request: web.Request,
                 body: bytes) -> web.StreamResponse:
    """The screen pop: contacts with this number and their open cases, most recently active first."""
    section = ctx.settings.channels.cti
    given = bearer_of(request.headers.get("Authorization"))
    if given is None:
        raise Rejected(401, "Authorization: Bearer <lookup token> missing")
    if not same_secret(given, read_secret(section.lookup_token, section.lookup_token_file)):
        raise Rejected(403, "lookup token does not match")
    raw = request.query.get("ani", "")
    if raw.startswith(" "):  # an unencoded "+" in a query string reads as a space
        raw = "+" + raw.lstrip()
    phone = e164(raw.strip(), section.default_region or None)
    if phone is None:
        raise Rejected(400, "ani is missing or not a phone number", "ani")
    try:
        async with asyncio.timeout(LOOKUP_TIMEOUT):
            match = await directory.find(phone)
    except (SQLAlchemyError, OSError, TimeoutError) as e:
        log.warning("cti.lookup_unavailable", channel="phone", error=f"{type(e).__name__}: {str(e)[:300]}")
        return json_error(503, "the case store is unavailable; please retry")
    return web.json_response(match.as_json())


def mount(app: web.Application, ctx: ChannelContext) -> None:
    """The whole channel, for the ingest role: call events and the lookup."""
    section = ctx.settings.channels.cti
    app.router.add_post(section.path, webhook("cti", ctx, partial(receive, ctx)))
    mount_reads(app, ctx)


def mount_reads(app: web.Application, ctx: ChannelContext) -> None:
    """The lookup alone, for processes that take no call events (the worker role); it reads the case
    store on a read-only connection of its own, closed with the application."""
    settings = ctx.settings
    directory = CallerDirectory(settings.store_url, pool_size=min(2, settings.store.pool_size))

    async def close(_app: web.Application) -> None:
        await directory.close()

    app.on_cleanup.append(close)
    app.router.add_get(settings.channels.cti.lookup_path, webhook("cti", ctx, partial(lookup, ctx, directory)))
