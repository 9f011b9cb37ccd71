"""The counts the loop rules (`rules.loops`) judge, for one batch: when each sender sent mail with each
subject (from the ledger, plus this batch so far), and how many automatic mails each address got within
the acknowledgement window (from the outbox, plus this batch so far).

Past the flood limit mail is kept as suppressed — on the ledger with its reason, raw original in the
blob store — never dropped.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

from casegate.config import LoopSettings
from casegate.rules.loops import Acknowledgements, Flood, acknowledgement_window, flood_window
from casegate.store import lookups
from casegate.store.database import as_utc
from casegate.store.inbound import InboundMessage
from sqlalchemy import Connection

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
        senders = {_sender(m)[:320] for m in messages}
        since = min(m.received_at for m in messages) - flood_window(settings) if messages else now
        seen: dict[tuple[str, str], list[datetime]] = defaultdict(list)
        for sender, subject, at in lookups.recent_ledger(conn, senders, since):
            seen[(sender, subject_key(subject))].append(as_utc(at))
        ack_since = now - acknowledgement_window(settings)
        addresses = {m.sender_email.lower() for m in messages if m.sender_email}
        acks = lookups.outbox_counts(conn, addresses, ack_since) if addresses and acknowledging else {}
        return cls(settings, seen, acks)

    def arrived(self, m: InboundMessage) -> Flood:
        """Count `m` among its sender's mails with its subject: the facts `rules.loops.flood` judges."""
        times = self._seen[(_sender(m)[:320], subject_key(m.subject))]
        times.append(m.received_at)
        return Flood(tuple(times), m.received_at, self.settings)

    def acknowledgements(self, address: str | None) -> Acknowledgements:
        """The automatic mails `address` got within the window: the facts of
        `rules.loops.acknowledgement_limit`."""
        return Acknowledgements(self._acks.get(address.lower(), 0) if address else 0, self.settings)

    def acknowledged(self, address: str) -> None:
        """One more automatic mail to `address` was queued."""
        key = address.lower()
        self._acks[key] = self._acks.get(key, 0) + 1
