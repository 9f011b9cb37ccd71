"""What each provider accepts, as pure checks run before anything is sent: the longest text (a reply
over it is refused with a clear error, never cut short), whether it has templates, and the messaging
window (WhatsApp: free text only within 24 hours of the customer's last message; Messenger and
Instagram likewise, or 7 days for a human agent's reply with the HUMAN_AGENT tag)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from casegate.ingest.replies.errors import ReplyRefused
from casegate.ingest.replies.reply import Reply

WHATSAPP_WINDOW = timedelta(hours=24)
"""WhatsApp's customer service window, opened by each message from the customer."""
HUMAN_AGENT_WINDOW = timedelta(days=7)
"""Messenger's and Instagram's window for replies tagged HUMAN_AGENT (the app needs that permission)."""


@dataclass(frozen=True)
class TextLimit:
    maximum: int
    unit: Literal["characters", "bytes"] = "characters"
    """characters = Unicode code points; bytes = UTF-8 (Instagram counts those)."""

    def length(self, text: str) -> int:
        return len(text.encode()) if self.unit == "bytes" else len(text)


def as_utc(moment: datetime) -> datetime:
    """An aware time; a naive one (the store's columns) is UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def window_open(last_inbound_at: datetime | None, now: datetime, window: timedelta = WHATSAPP_WINDOW) -> bool:
    """The customer's last message arrived less than `window` before `now` (none on record: closed)."""
    return last_inbound_at is not None and as_utc(now) - as_utc(last_inbound_at) < window


def check_content(reply: Reply, limit: TextLimit, provider: str, *, templates: bool = False) -> None:
    """ReplyRefused unless the reply has text (not blank) within `limit`, or a template where the
    provider has them."""
    if reply.template is not None:
        if not templates:
            raise ReplyRefused("template_unsupported", f"{provider} has no message templates: send text")
        if not reply.template.name.strip():
            raise ReplyRefused("empty", "the template has no name")
        return
    if reply.text is None or not reply.text.strip():
        raise ReplyRefused("empty", "the reply has no text")
    length = limit.length(reply.text)
    if length > limit.maximum:
        raise ReplyRefused(
            "text_too_long", f"the reply is {length:,} {limit.unit}; {provider} accepts at most {limit.maximum:,}: "
                             "shorten it or send it as several replies")


def check_window(reply: Reply, now: datetime, provider: str, window: timedelta = WHATSAPP_WINDOW,
                 remedy: str = "send an approved template instead") -> None:
    """ReplyRefused for free text outside the messaging window (a template may always be sent)."""
    if reply.template is not None or window_open(reply.last_inbound_at, now, window):
        return
    hours = window.total_seconds() / 3600
    span = f"{hours:g} hours" if hours < 48 else f"{hours / 24:g} days"
    if reply.last_inbound_at is None:
        since = "there is no message from the customer on record"
    else:
        ago = (as_utc(now) - as_utc(reply.last_inbound_at)).total_seconds() / 3600
        since = f"the customer's last message was {ago:.0f} hours ago"
    raise ReplyRefused(
        "outside_window", f"{provider} accepts a free-text reply only within {span} of the customer's last "
                          f"message, and {since}: {remedy}")
