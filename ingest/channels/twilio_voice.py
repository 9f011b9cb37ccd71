"""Twilio Programmable Voice as a call source (https://www.twilio.com/docs/usage/webhooks/voice-webhooks),
on `voice_path` (and `<voice_path>/status`), signed with X-Twilio-Signature like messaging (the check
is passed in by twilio_messaging.mount, which owns it).

Each final call status callback (completed, busy, no-answer, failed, canceled) becomes one call entry
(channel `phone`, entry type Call) from the customer — From on an inbound call, To on an outbound
one — which the case service logs on that caller's open case (or opens a Phone case). The idempotency
key is CallSid + status (+ SequenceNumber), so a redelivered callback is one entry. Progress
callbacks (queued, initiated, ringing, in-progress) and recording/transcription callbacks are
acknowledged and not recorded; the incoming-call webhook itself gets the configured TwiML.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

from ingest.channels.twilio_common import Params, first, twiml
from ingest.channels.webhook import ChannelContext, Handler, Rejected, e164, message_envelope, publish_all, webhook
from ingest.envelope import Envelope, Sender

log = structlog.get_logger("casegate.twilio")

FINAL_STATUSES = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})
Verifier = Callable[[ChannelContext, web.Request, bytes], Awaitable[Params]]
"""Proves Twilio signed the request and returns its parameters (raises Rejected otherwise)."""

DETAILS = {"CallSid": "call_sid", "Direction": "direction", "From": "from", "To": "to", "CallStatus": "status",
           "CallDuration": "duration", "RecordingUrl": "recording_url", "RecordingSid": "recording_sid",
           "RecordingDuration": "recording_duration", "SipResponseCode": "sip_response_code",
           "AnsweredBy": "answered_by", "Timestamp": "timestamp", "ParentCallSid": "parent_call_sid",
           "ForwardedFrom": "forwarded_from", "AccountSid": "account_sid"}
"""Twilio fields kept in the call entry's details (when present and not empty)."""


def call_envelope(p: Params) -> Envelope:
    """The call entry of a final status callback."""
    sid, status = first(p, "CallSid"), first(p, "CallStatus") or ""
    if not sid:
        raise Rejected(400, "missing or invalid field CallSid", "CallSid")
    direction = first(p, "Direction") or "inbound"
    inbound = direction == "inbound"
    customer, ours = (first(p, "From"), first(p, "To")) if inbound else (first(p, "To"), first(p, "From"))
    if not customer:
        raise Rejected(400, f"missing or invalid field {'From' if inbound else 'To'}", "From" if inbound else "To")
    phone = e164(customer)
    sequence = first(p, "SequenceNumber")
    duration = first(p, "CallDuration")
    text = f"{'Inbound' if inbound else 'Outbound'} call {status}" + (f", {duration} s" if duration else "")
    return message_envelope(
        "phone", "twilio", ":".join(x for x in (sid, status, sequence) if x),
        sender=Sender(name=first(p, "CallerName") or None, phone=phone, handle=None if phone else customer),
        text=text, recipients=(e164(ours) or ours,) if ours else (), entry_type="Call",
        details={key: v for name, key in DETAILS.items() if (v := first(p, name))})


def voice_handler(ctx: ChannelContext, verify: Verifier) -> Handler:
    async def handle(request: web.Request, body: bytes) -> web.StreamResponse:
        p = await verify(ctx, request, body)
        status = first(p, "CallStatus")
        if not status:
            if "RecordingStatus" in p or "TranscriptionStatus" in p:
                log.info("twilio.recording_callback", call_sid=first(p, "CallSid"),
                         status=first(p, "RecordingStatus") or first(p, "TranscriptionStatus"))
                return twiml()
            raise Rejected(400, "missing or invalid field CallStatus", "CallStatus")
        if status in FINAL_STATUSES:
            return await publish_all(ctx, "twilio", [call_envelope(p)], ok=twiml())
        if "CallbackSource" in p or status != "ringing":  # a progress callback: nothing to record
            return twiml()
        return twiml(ctx.settings.channels.twilio.voice_twiml)  # the incoming call asks what to do

    return handle


def mount(app: web.Application, ctx: ChannelContext, verify: Verifier) -> None:
    path = ctx.settings.channels.twilio.voice_path.rstrip("/")
    route = webhook("twilio", ctx, voice_handler(ctx, verify))
    for p in (path, f"{path}/status"):
        app.router.add_post(p, route)
        app.router.add_get(p, route)
