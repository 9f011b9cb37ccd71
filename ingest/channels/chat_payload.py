"""The documented message of the generic chat webhook (ingest.channels.chat_webhook), as pydantic models.

Strict (ingest.channels.payload). An optional text field that is empty counts as absent; ids are 1 to
255 characters; `email` is one address; URLs are http(s); `sent_at` is RFC 3339 with its offset. What
needs the channel's settings (a phone number's default region) or several fields at once (text or an
attachment) is checked by the channel.
"""

from __future__ import annotations

from typing import Annotated, Any

from casegate.ingest.channels.payload import Instant, Items, Shape
from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints
from pydantic_core import PydanticCustomError

MAX_ID = 255

ChatId = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID)]


def _blank_is_none(value: Any) -> Any:
    return None if value == "" else value


def _email(value: str | None) -> str | None:
    if value is not None and ("@" not in value or any(c.isspace() for c in value)):
        raise PydanticCustomError("email", "is not an email address")
    return value


def _web_url(value: str | None) -> str | None:
    if value is not None and not value.lower().startswith(("https://", "http://")):
        raise PydanticCustomError("url", "must be an http(s) URL")
    return value


Text = Annotated[str | None, BeforeValidator(_blank_is_none)]
Short = Annotated[Annotated[str, StringConstraints(max_length=255)] | None, BeforeValidator(_blank_is_none)]
Email = Annotated[Annotated[str, StringConstraints(max_length=320)] | None, BeforeValidator(_blank_is_none),
                  AfterValidator(_email)]
Phone = Annotated[Annotated[str, StringConstraints(max_length=64)] | None, BeforeValidator(_blank_is_none)]
WebUrl = Annotated[str | None, AfterValidator(_web_url)]
SentAt = Annotated[Instant | None, BeforeValidator(_blank_is_none)]


def _falsy_is_none(value: Any) -> Any:
    return value or None


class Visitor(Shape):
    id: ChatId
    name: Short = None
    email: Email = None
    phone: Phone = None
    """As typed; the channel reads it as a phone number with its default region."""


class Attachment(Shape):
    url: Annotated[str, AfterValidator(_web_url)]
    name: Short = None
    content_type: Short = None


class ChatMessage(Shape):
    """One message: `{"id", "visitor": {...}, "text", ...}` (the channel's documented body)."""

    id: ChatId
    visitor: Visitor
    text: Text = None
    attachments: Annotated[Items[Attachment], BeforeValidator(_falsy_is_none)] = Field(default_factory=list)
    sent_at: SentAt = None
    conversation_id: Short = None
    page_url: Annotated[WebUrl, BeforeValidator(_falsy_is_none)] = None
