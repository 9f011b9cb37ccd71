"""The fields of Twilio's messaging and voice webhooks that casegate reads, as pydantic models
(https://www.twilio.com/docs/messaging/guides/webhook-request,
https://www.twilio.com/docs/voice/twiml#request-parameters).

Twilio posts form fields (or, signed by bodySHA256, the same names as JSON), every value a string: a
model is validated over the first value of each field (`fields`), attribute `message_sid` reading
`MessageSid`. Numeric fields casegate computes with are ASCII digits only (`NumMedia`: "²" and "٣" are
digits to str.isdigit, "1e3" and " 1" are not numbers). A field that does not fit is a 400 naming it
as Twilio spells it.
"""

from __future__ import annotations

from typing import Annotated, Any

from casegate.ingest.channels.media_fetch import MediaItem
from casegate.ingest.channels.payload import Id, Shape
from casegate.ingest.channels.twilio_common import Params
from pydantic import ConfigDict, Field, PlainValidator
from pydantic.alias_generators import to_pascal
from pydantic_core import PydanticCustomError

MAX_MEDIA = 10
"""Twilio sends at most 10 media items per message."""


def fields(params: Params) -> dict[str, str]:
    """The first value of each field: what the models read."""
    return {name: values[0] for name, values in params.items() if values}


def _media_count(value: Any) -> int:
    if not isinstance(value, str) or not (value == "" or (value.isascii() and value.isdigit() and len(value) <= 4)):
        raise PydanticCustomError("digits", "is not a number of 0 to 4 ASCII digits")
    return int(value or "0")


MediaCount = Annotated[int, PlainValidator(_media_count)]


class Fields(Shape):
    """Twilio's field names are the attributes' in PascalCase (`account_sid` reads `AccountSid`)."""

    model_config = ConfigDict(alias_generator=to_pascal)

    account_sid: str | None = None


class StatusCallback(Fields):
    """The delivery status of a message we sent (MessageStatus without Body): logged, never a case."""

    message_sid: str | None = None
    message_status: str | None = None
    error_code: str | None = None


class InboundMessage(Fields):
    """An SMS, MMS or WhatsApp message to one of our numbers. Its media come as `MediaUrl<i>` and
    `MediaContentType<i>` (i < NumMedia), read by `media()`."""

    model_config = ConfigDict(extra="allow")

    num_media: MediaCount = 0
    message_sid: Id
    sender: Id = Field(alias="From")
    to: str | None = None
    body: str | None = None
    profile_name: str | None = None
    original_replied_message_sid: str | None = None
    latitude: str | None = None
    longitude: str | None = None
    address: str | None = None
    messaging_service_sid: str | None = None
    num_segments: str | None = None
    from_country: str | None = None
    wa_id: str | None = None
    forwarded: str | None = None
    button_text: str | None = None
    button_payload: str | None = None
    label: str | None = None
    referral_source_url: str | None = None
    referral_headline: str | None = None

    def media(self) -> list[MediaItem]:
        """The message's media (at most MAX_MEDIA), each with the content type Twilio gave."""
        extra = self.model_extra or {}
        return [MediaItem(url, extra.get(f"MediaContentType{i}"))
                for i in range(min(self.num_media, MAX_MEDIA)) if (url := extra.get(f"MediaUrl{i}"))]


class CallCallback(Fields):
    """A voice webhook: the incoming call, a status callback, or a recording / transcription callback."""

    call_sid: str | None = None
    call_status: str | None = None
    direction: str | None = None
    sender: str | None = Field(None, alias="From")
    to: str | None = None
    caller_name: str | None = None
    sequence_number: str | None = None
    call_duration: str | None = None
    callback_source: str | None = None
    recording_status: str | None = None
    transcription_status: str | None = None
    recording_url: str | None = None
    recording_sid: str | None = None
    recording_duration: str | None = None
    sip_response_code: str | None = None
    answered_by: str | None = None
    timestamp: str | None = None
    parent_call_sid: str | None = None
    forwarded_from: str | None = None

    @property
    def inbound(self) -> bool:
        return (self.direction or "inbound") == "inbound"


class FinalCall(CallCallback):
    """The status callback of a call that has ended: the call entry."""

    call_sid: Id
