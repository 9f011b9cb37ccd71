"""Mail-loop and flood protection for one batch: how many mails each sender sent with the same subject
within the window (from the ledger, plus this batch so far), and how many acknowledgements each address
got within its window (from the outbox, plus this batch so far).

Two robots answering each other, or a broken script, would otherwise open a case per mail and get an
acknowledgement per case. Past the threshold mail is kept as suppressed — on the ledger with its reason,
raw original in the blob store — never dropped.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import Connection

from config import LoopSettings
from store import lookups
from store.database import as_utc
from store.inbound import InboundMessage

_REPLY_PREFIX = re.compile(r"^\s*((re|fw|fwd|aw|wg|sv|vs|antw|tr|rif|r)\s*(\[\d+\]|\(\d+\))?\s*:\s*)+",
                           re.IGNORECASE)


def subject_key(subject: str | None) -> str:
    """A subject without reply/forward prefixes, case and spacing: the same thread's subject."""
    return " ".join(_REPLY_PREFIX.sub("", subject or "").casefold().split())


def _sender(m: InboundMessage) -> str:
    return (m.sender_email or m.conversation_key).strip().lower()


class LoopGuard:
    def __init__(self, settings: LoopSettings, seen: dict[tuple[str, str], list[datetime]],
                 acks: dict[str, int]):
        self.settings = settings
        self._seen = seen
        self._acks = acks

    @classmethod
    def load(cls, conn: Connection, messages: Sequence[InboundMessage], settings: LoopSettings,
             now: datetime, *, acknowledging: bool = True) -> LoopGuard:
        """The counts `messages` need; acknowledgements are counted only when any can be sent."""
        window = timedelta(seconds=settings.window_seconds)
        senders = {_sender(m)[:320] for m in messages}
        since = min(m.received_at for m in messages) - window if messages else now
        seen: dict[tuple[str, str], list[datetime]] = defaultdict(list)
        for sender, subject, at in lookups.recent_ledger(conn, senders, since):
            seen[(sender, subject_key(subject))].append(as_utc(at))
        ack_since = now - timedelta(minutes=settings.acknowledgement_window_minutes)
        addresses = {m.sender_email.lower() for m in messages if m.sender_email}
        acks = lookups.outbox_counts(conn, addresses, ack_since) if addresses and acknowledging else {}
        return cls(settings, seen, acks)

    def flooding(self, m: InboundMessage) -> bool:
        """Count `m`; True when its sender has now sent more than the limit with this subject
        within the window that ends at `m`'s arrival."""
        times = self._seen[(_sender(m)[:320], subject_key(m.subject))]
        times.append(m.received_at)
        start = m.received_at - timedelta(seconds=self.settings.window_seconds)
        return sum(1 for t in times if start < t <= m.received_at) > self.settings.max_per_sender_subject

    def may_acknowledge(self, address: str) -> bool:
        """Count one more automatic mail to `address` if it is still under its limit."""
        key = address.lower()
        if self._acks.get(key, 0) >= self.settings.acknowledgements_per_address:
            return False
        self._acks[key] = self._acks.get(key, 0) + 1
        return True
