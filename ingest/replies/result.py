"""What one attempt to send a reply came to: sent (with the provider's message id), retry later
(provider down, overloaded or rate-limiting: the outbox tries again with back-off) or failed for good
(the provider refused it, with its error code). Providers answer; senders never raise for them."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from casegate.ingest.backoff import Backoff
from casegate.ingest.replies.delivery_status import DeliveryStatus
from casegate.ingest.replies.errors import ReplyRefused


class Outcome(StrEnum):
    SENT = "sent"
    RETRY = "retry"
    FAILED = "failed"


@dataclass(frozen=True)
class SendResult:
    outcome: Outcome
    message_id: str | None = None
    """The provider's id of the message sent (Twilio SID, wamid, Messenger mid, Telegram message_id, X
    dm_event_id): its delivery statuses name it. None only if a provider accepted it without saying."""
    status: DeliveryStatus | None = None
    """The entry's status now: what the provider said on accepting it (queued, sent), or failed."""
    error_code: str | None = None
    """The provider's error code (Twilio 21610, Meta 131047, Telegram/X/chat HTTP status), or ours for a
    reply refused before sending (text_too_long, outside_window, ...)."""
    error: str | None = None
    retry_after: float | None = None
    """Seconds the provider asked us to wait (Retry-After, Telegram's retry_after, X's rate-limit reset)."""
    http_status: int | None = None

    @classmethod
    def sent(cls, message_id: str | None, status: DeliveryStatus = DeliveryStatus.SENT,
             http_status: int | None = None) -> SendResult:
        return cls(Outcome.SENT, message_id, status, http_status=http_status)

    @classmethod
    def retry_later(cls, error: str, *, code: str | None = None, retry_after: float | None = None,
                    http_status: int | None = None) -> SendResult:
        return cls(Outcome.RETRY, error_code=code, error=error, retry_after=retry_after, http_status=http_status)

    @classmethod
    def failed(cls, code: str | None, error: str, *, http_status: int | None = None) -> SendResult:
        return cls(Outcome.FAILED, status=DeliveryStatus.FAILED, error_code=code, error=error,
                   http_status=http_status)

    @classmethod
    def refused(cls, refusal: ReplyRefused) -> SendResult:
        return cls.failed(refusal.code, refusal.message)

    def describe(self) -> str:
        """One line for the outbox's error column and the case feed: code and message, no message text."""
        code = f"[{self.error_code}] " if self.error_code else ""
        return f"{code}{self.error or self.outcome.value}"


def retry_delay(failures: int, result: SendResult, backoff: Backoff) -> float:
    """Seconds until the next attempt after `failures` in a row: the outbox's back-off, but never sooner
    than the provider asked (its Retry-After may exceed the back-off's maximum: it knows its limits)."""
    return max(backoff.delay_after(failures), result.retry_after or 0.0)
