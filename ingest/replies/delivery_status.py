"""The delivery statuses providers report for the messages we sent, as one vocabulary (queued, sent,
delivered, read, failed), and the pure functions that read them from Twilio's status callback form and
from the `statuses[]` of Meta's WhatsApp webhook. The webhooks publish each as a delivery report on the
bus (`report_envelope`), durably before their 200; the worker applies it to the reply it names
(store.agent_replies), where `next_status` says whether it moves the entry at all (providers deliver out
of order: `read` may arrive before `delivered`, and a status never goes backwards)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from casegate.ingest.envelope import Channel, DeliveryReport, Envelope, Sender


class DeliveryStatus(StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"


RANK = {DeliveryStatus.QUEUED: 0, DeliveryStatus.SENT: 1, DeliveryStatus.DELIVERED: 2, DeliveryStatus.READ: 3}


@dataclass(frozen=True)
class StatusUpdate:
    message_id: str
    """The provider's id of our message (Twilio MessageSid, WhatsApp wamid)."""
    status: DeliveryStatus
    error_code: str | None = None
    error: str | None = None
    at: datetime | None = None
    """When the provider says it happened (Meta's timestamp); None when it does not say (Twilio)."""
    recipient: str | None = None


def next_status(current: DeliveryStatus | None, incoming: DeliveryStatus) -> DeliveryStatus:
    """The entry's status after `incoming` arrives: it only moves forward (queued, sent, delivered, read);
    failed ends a message not yet delivered, and a failure is not undone by a late `sent`."""
    if current is None:
        return incoming
    if current is DeliveryStatus.FAILED:
        return current
    if incoming is DeliveryStatus.FAILED:
        return incoming if RANK[current] < RANK[DeliveryStatus.DELIVERED] else current
    return incoming if RANK[incoming] > RANK[current] else current


def advance_status(current: str | None, incoming: str) -> str:
    """`next_status` over the store's strings (a value it does not know counts as none)."""
    known = DeliveryStatus(current) if current in {s.value for s in DeliveryStatus} else None
    return next_status(known, DeliveryStatus(incoming)).value


def report_envelope(channel: Channel, source: str, update: StatusUpdate) -> Envelope:
    """The bus record of a status update, keyed by the provider's message id (one message's reports stay
    in order on one partition); no customer data beyond what names the message."""
    return Envelope(channel=channel, external_id=f"{update.message_id}/{update.status.value}",
                    conversation_key=f"{source}:{update.message_id}", sender=Sender(),
                    delivery=DeliveryReport(source=source, message_id=update.message_id, status=update.status.value,
                                            error_code=update.error_code, error=update.error, at=update.at))


# -- Twilio (https://www.twilio.com/docs/messaging/guides/track-outbound-message-status) ------------
TWILIO_STATUSES = {
    "accepted": DeliveryStatus.QUEUED, "scheduled": DeliveryStatus.QUEUED, "queued": DeliveryStatus.QUEUED,
    "sending": DeliveryStatus.QUEUED, "sent": DeliveryStatus.SENT, "delivered": DeliveryStatus.DELIVERED,
    "read": DeliveryStatus.READ, "undelivered": DeliveryStatus.FAILED, "failed": DeliveryStatus.FAILED,
    "canceled": DeliveryStatus.FAILED,
}
"""MessageStatus → ours. `receiving`/`received` describe inbound messages, not ours: no update."""


def twilio_status(params: Mapping[str, Sequence[str]]) -> StatusUpdate | None:
    """The update a (verified) status callback carries — its form fields as name → values — or None when
    it is not one (no MessageSid, or a status of an inbound message). `ErrorCode` (e.g. 30003 unreachable
    handset, 63016 outside the WhatsApp window) comes with undelivered and failed."""

    def first(name: str) -> str:
        values = params.get(name) or ()
        return values[0].strip() if values else ""

    sid, raw = first("MessageSid") or first("SmsSid"), (first("MessageStatus") or first("SmsStatus")).lower()
    status = TWILIO_STATUSES.get(raw)
    if not sid or status is None:
        return None
    code = first("ErrorCode") or None
    error = first("ErrorMessage") or (f"Twilio error {code}" if code else None)
    return StatusUpdate(sid, status, code, error, None, first("To") or None)


# -- Meta WhatsApp Cloud API (statuses webhook) -------------------------------------------------------
META_STATUSES = {"sent": DeliveryStatus.SENT, "delivered": DeliveryStatus.DELIVERED, "read": DeliveryStatus.READ,
                 "failed": DeliveryStatus.FAILED}
"""`status` → ours; others (`deleted`, `warning`, ...) are not delivery progress: no update."""


def meta_statuses(payload: Mapping[str, Any]) -> list[StatusUpdate]:
    """Every status of a (verified) WhatsApp webhook delivery, in order: `entry[].changes[field=messages]
    .value.statuses[]`. ValueError naming the field when a status item is malformed."""
    out = []
    for i, entry in enumerate(_items(payload, "entry", "")):
        for j, change in enumerate(_items(entry, "changes", f"entry[{i}].")):
            value = change.get("value")
            if change.get("field") != "messages" or not isinstance(value, dict):
                continue
            at = f"entry[{i}].changes[{j}].value."
            for k, item in enumerate(_items(value, "statuses", at)):
                update = _meta_status(item, f"{at}statuses[{k}]")
                if update is not None:
                    out.append(update)
    return out


def _items(parent: Mapping[str, Any], key: str, where: str) -> list[Mapping[str, Any]]:
    items = parent.get(key) or []
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise ValueError(f"{where}{key} must be a list of objects")
    return items


def _meta_status(item: Mapping[str, Any], where: str) -> StatusUpdate | None:
    wamid, raw = item.get("id"), item.get("status")
    if not isinstance(wamid, str) or not wamid:
        raise ValueError(f"{where}.id must be the message's wamid")
    if not isinstance(raw, str):
        raise ValueError(f"{where}.status must be a string")
    status = META_STATUSES.get(raw.lower())
    if status is None:
        return None
    at = None
    stamp = item.get("timestamp")
    if stamp is not None:
        try:
            at = datetime.fromtimestamp(int(stamp), UTC)
        except (TypeError, ValueError, OverflowError, OSError):
            raise ValueError(f"{where}.timestamp must be unix seconds") from None
    code = error = None
    errors = item.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        first = errors[0]
        code = str(first["code"]) if first.get("code") is not None else None
        data = first.get("error_data")
        details = data.get("details") if isinstance(data, dict) else None
        texts = [str(t) for t in (first.get("title") or first.get("message"), details) if t]
        error = ": ".join(dict.fromkeys(texts)) or None
    recipient = item.get("recipient_id")
    return StatusUpdate(wamid, status, code, error, at, recipient if isinstance(recipient, str) else None)
