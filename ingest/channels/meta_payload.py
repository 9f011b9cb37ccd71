"""The shapes of a Meta webhook delivery that casegate reads, as pydantic models: the WhatsApp Cloud API
(https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/components) and Messenger /
Instagram messaging events (https://developers.facebook.com/docs/messenger-platform/webhooks).

Strict (ingest.channels.payload): ids and texts are strings (a Messenger PSID may also be a number),
flags are booleans. Two things stay as lenient as Meta's history needs: a timestamp that cannot be
read is left out (never a 400: WhatsApp sends seconds as a string, Messenger milliseconds as a
number), and the parts casegate records as they came (`Recorded`: contact cards, system messages,
errors, attachments) keep every field Meta sent. A message of a type casegate does not know keeps
its payload too: WhatsApp messages allow extra fields for that.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from casegate.ingest.channels.payload import Id, Items, Number, Recorded, Shape
from pydantic import BeforeValidator, ConfigDict, Field, PlainValidator
from pydantic_core import PydanticCustomError


def _unix(per_second: int) -> BeforeValidator:
    def parse(value: Any) -> datetime | None:
        try:
            return datetime.fromtimestamp(float(value) / per_second, UTC)
        except (TypeError, ValueError, OverflowError, OSError):
            return None

    return BeforeValidator(parse)


def _str_or_int(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise PydanticCustomError("id", "must be a string (or a number)")
    return str(value)


Seconds = Annotated[datetime | None, _unix(1)]
Millis = Annotated[datetime | None, _unix(1000)]
NumericId = Annotated[str, PlainValidator(_str_or_int)]


class Delivery(Shape):
    """Any delivery: which product's (`object`) and its entries, read per product below."""

    object: Id
    entry: list[Any]


# --- WhatsApp Cloud API: entry[].changes[field=messages].value ------------------------------------

class Change(Shape):
    field: Id
    value: Any = None
    """A `messages` value (read as `Value`); other fields' values are not read."""


class WhatsAppEntry(Shape):
    changes: list[Change]


class WhatsAppDelivery(Shape):
    entry: list[WhatsAppEntry]


class Metadata(Shape):
    display_phone_number: str | None = None
    phone_number_id: str | None = None


class Profile(Shape):
    name: str | None = None
    username: str | None = None


class Contact(Shape):
    """Who sent the messages: `wa_id` (a phone number's digits) and/or the business-scoped `user_id`."""

    wa_id: str | None = None
    user_id: str | None = None
    profile: Profile | None = None


class Context(Shape):
    id: str | None = None
    forwarded: bool | None = None
    frequently_forwarded: bool | None = None


class Text(Shape):
    body: Id


class Media(Shape):
    """An image, audio, video, document or sticker."""

    id: str | None = None
    mime_type: str | None = None
    sha256: str | None = None
    filename: str | None = None
    caption: str | None = None
    voice: bool | None = None
    animated: bool | None = None
    url: str | None = None


class Reply(Recorded):
    """The customer's choice in an interactive message (button, list or flow reply)."""

    id: str | None = None
    title: str | None = None
    body: str | None = None


REPLY_KINDS = ("button_reply", "list_reply", "nfm_reply")


class Interactive(Recorded):
    type: str = ""
    button_reply: Reply | None = None
    list_reply: Reply | None = None
    nfm_reply: Reply | None = None

    def reply(self) -> Reply | None:
        """The reply of the documented kinds (`type` names which)."""
        found: Reply | None = getattr(self, self.type) if self.type in REPLY_KINDS else None
        return found

    def other_reply(self) -> dict[str, Any]:
        """The object of a reply kind casegate does not know, as sent (else {})."""
        found = (self.model_extra or {}).get(self.type)
        return found if isinstance(found, dict) else {}


class Button(Shape):
    text: str = ""
    payload: str = ""


class Location(Shape):
    latitude: Number | None = None
    longitude: Number | None = None
    name: str | None = None
    address: str | None = None
    url: str | None = None


class CardName(Recorded):
    formatted_name: str | None = None


class CardPhone(Recorded):
    phone: str | None = None


class Card(Recorded):
    """A shared contact card."""

    name: CardName | None = None
    phones: Items[CardPhone] = Field(default_factory=list)


class Reaction(Shape):
    message_id: str = ""
    emoji: str = ""


class System(Recorded):
    body: str = ""


class Order(Shape):
    catalog_id: str = ""
    product_items: Items[Any] = Field(default_factory=list)
    text: str = ""


class Error(Recorded):
    title: str | None = None


class Message(Shape):
    """One `messages[]` item. The object named by `type` carries its content; a type casegate does not
    know keeps its object among the extra fields (`payload`)."""

    model_config = ConfigDict(extra="allow")
    id: Id
    sender: Id = Field(alias="from")
    type: Id
    timestamp: Seconds = None
    context: Context | None = None
    referral: dict[str, Any] | None = None
    errors: Items[Error] = Field(default_factory=list)
    text: Text | None = None
    image: Media | None = None
    audio: Media | None = None
    video: Media | None = None
    document: Media | None = None
    sticker: Media | None = None
    interactive: Interactive | None = None
    button: Button | None = None
    location: Location | None = None
    contacts: Items[Card] = Field(default_factory=list)
    reaction: Reaction | None = None
    system: System | None = None
    order: Order | None = None

    def payload(self) -> Any:
        """The object of a message type casegate does not know, as sent (None when there is none)."""
        return (self.model_extra or {}).get(self.type)


class Value(Shape):
    """The value of a `messages` change: customer messages, or only statuses of ours (not read)."""

    messages: Items[Message] = Field(default_factory=list)
    metadata: Metadata | None = None
    contacts: Items[Contact] = Field(default_factory=list)


# --- Messenger and Instagram: entry[].messaging[] -------------------------------------------------

class Party(Shape):
    id: NumericId


class AttachmentPayload(Recorded):
    url: str | None = None
    sticker_id: Any = None


class Attachment(Recorded):
    type: str = "attachment"
    payload: AttachmentPayload | None = None
    title: str | None = None


class QuickReply(Shape):
    payload: str | None = None


class ReplyTo(Shape):
    mid: str | None = None
    story: dict[str, Any] | None = None


class MessagingMessage(Shape):
    mid: Id
    text: str | None = None
    attachments: Items[Attachment] = Field(default_factory=list)
    quick_reply: QuickReply | None = None
    reply_to: ReplyTo | None = None
    is_echo: bool = False
    """Our own page's message coming back."""
    is_deleted: bool = False
    """A message the customer unsent."""
    is_unsupported: bool = False


class Postback(Shape):
    mid: str | None = None
    title: str | None = None
    payload: str | None = None


class MessagingEvent(Shape):
    """A message or a postback; other events (delivery, read, reaction ...) are nothing for a case."""

    sender: Party
    recipient: Party
    timestamp: Millis = None
    message: MessagingMessage | None = None
    postback: Postback | None = None


class MessagingEntry(Shape):
    messaging: Items[MessagingEvent] = Field(default_factory=list)


class MessagingDelivery(Shape):
    entry: list[MessagingEntry]
