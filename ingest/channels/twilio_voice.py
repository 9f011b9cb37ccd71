"""Twilio Programmable Voice as a call source (https://www.twilio.com/docs/usage/webhooks/voice-webhooks),
on `voice_path` (and `<voice_path>/status`), signed with X-Twilio-Signature like messaging (the check
is passed in by twilio_messaging.mount, which owns it).

Each final call status callback (completed, busy, no-answer, failed, canceled) becomes one call entry
(channel `phone`, entry type Call) from the customer — From on an inbound call, To on an outbound
one — which the case service logs on that caller's open case (or opens a Phone case). The idempotency
key is CallSid + status (+ SequenceNumber), so a redelivered callback is one entry. Progress
callbacks (queued, initiated, ringing, in-progress) and recording/transcription callbacks are
acknowledged and not recorded; the incoming-call webhook itself gets the configured TwiML. The
fields read are twilio_payload.CallCallback.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web
from casegate.ingest.channels.twilio_common import Params, twiml
from casegate.ingest.channels.twilio_payload import CallCallback, FinalCall, fields
from casegate.ingest.channels.webhook import (
    ChannelContext,
    Handler,
    Rejected,
    e164,
    message_envelope,
    publish_all,
    validated,
    webhook,
)
from casegate.ingest.envelope import Envelope, Sender

log = structlog.get_logger("casegate.twilio")

FINAL_STATUSES = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})
Verifier = Callable[[ChannelContext, web.Request, bytes], Awaitable[Params]]
"""Proves Twilio signed the request and returns its parameters (raises Rejected otherwise)."""

DETAILS = {"call_sid": "call_sid", "direction": "direction", "sender": "from", "to": "to", "call_status": "status",
           "call_duration": "duration", "recording_url": "recording_url", "recording_sid": "recording_sid",
           "recording_duration": "recording_duration", "sip_response_code": "sip_response_code",
           "answered_by": "answered_by", "timestamp": "timestamp", "parent_call_sid": "parent_call_sid",
           "forwarded_from": "forwarded_from", "account_sid": "account_sid"}
"""CallCallback fields kept in the call entry's details (when present and not empty) → their key."""


def call_envelope(call: FinalCall) -> Envelope:
    """The call entry of a final status callback."""
    status = call.call_status or ""
    customer, ours = (call.sender, call.to) if call.inbound else (call.to, call.sender)
    if not customer:
        name = "From" if call.inbound else "To"
        raise Rejected(400, f"missing or invalid field {name}", name)
    phone = e164(customer)
    duration = call.call_duration
    text = f"{'Inbound' if call.inbound else 'Outbound'} call {status}" + (f", {duration} s" if duration else "")
    return message_envelope(
        "phone", "twilio", ":".join(x for x in (call.call_sid, status, call.sequence_number) if x),
        sender=Sender(name=call.caller_name or None, phone=phone, handle=None if phone else customer),
        text=text, recipients=(e164(ours) or ours,) if ours else (), entry_type="Call",
        details={key: value for name, key in DETAILS.items() if (value := getattr(call, name))})


def voice_handler(ctx: ChannelContext, verify: Verifier) -> Handler:
    async def handle(request: web.Request, body: bytes) -> web.StreamResponse:
        p = fields(await verify(ctx, request, body))
        call = validated(CallCallback, p)
        status = call.call_status
        if not status:
            if {"recording_status", "transcription_status"} & call.model_fields_set:
                log.info("twilio.recording_callback", call_sid=call.call_sid,
                         status=call.recording_status or call.transcription_status)
                return twiml()
            raise Rejected(400, "missing or invalid field CallStatus", "CallStatus")
        if status in FINAL_STATUSES:
            return await publish_all(ctx, "twilio", [call_envelope(validated(FinalCall, p))], ok=twiml())
        if "callback_source" in call.model_fields_set or status != "ringing":  # a progress callback
            return twiml()
        return twiml(ctx.settings.channels.twilio.voice_twiml)  # the incoming call asks what to do

    return handle


def mount(app: web.Application, ctx: ChannelContext, verify: Verifier) -> None:
    path = ctx.settings.channels.twilio.voice_path.rstrip("/")
    route = webhook("twilio", ctx, voice_handler(ctx, verify))
    for p in (path, f"{path}/status"):
        app.router.add_post(p, route)
        app.router.add_get(p, route)
