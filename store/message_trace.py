"""The message trace: where every inbound message the system holds went — the case it is on and the
threading rule that put it there, or suppressed with the reason (auto-reply, bounce, list, loop), or
dead-lettered with the error. Read from the processed-message ledger, which the case service writes
in the same transaction as the case, so the trace cannot disagree with the cases.

An email shows its Message-ID twice: `message_id`, the normalised id it is keyed and threaded by
(`store.message_ids`), and `message_id_header`, the header as the mail wrote it — so a malformed one
(`abc@host`, `<abc@host`, an empty header) is still there to be asked about, and `find` takes either.

The sender is the ledger's: the address, or for a message without one the conversation key. An email
without any sender address — no From address, and the null reverse-path `MAIL FROM:<>` as envelope
(a DSN, an auto-reply) — is keyed by the sha256 of its raw original, so that it stays a conversation
of its own; the trace shows that sender as `<>`, the null path, not as a hash that names nobody. Over
SMTP any other envelope sender is an address and is the sender; an IMAP message, which has no
envelope, shows `<>` when it has no From address."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from casegate.store.database import Database, iso_utc
from casegate.store.message_ids import message_id as normalised_id
from casegate.store.models import Case, ProcessedMessage
from sqlalchemy import Connection, and_, or_, select, tuple_

_COLUMNS = (ProcessedMessage.Channel, ProcessedMessage.ExternalId, ProcessedMessage.MessageIdentifier,
            ProcessedMessage.ReceivedAt, ProcessedMessage.ProcessedAt, ProcessedMessage.Outcome,
            ProcessedMessage.Rule, ProcessedMessage.Reason, Case.CaseNumber, ProcessedMessage.Sender,
            ProcessedMessage.Subject, ProcessedMessage.EnvelopeId, ProcessedMessage.RawSha256,
            ProcessedMessage.MessageIdHeader)
HEADER_CHARS = ProcessedMessage.MessageIdHeader.type.length


def _sender(row: Any) -> str | None:
    """The ledger's sender, `<>` for an email keyed by its raw original (it had no sender address)."""
    if row.Channel == "email" and row.RawSha256 and row.Sender == f"sha256:{row.RawSha256}":
        return "<>"
    return str(row.Sender) if row.Sender is not None else None


def _entry(row: Any) -> dict[str, Any]:
    outcome = row.Outcome
    entry: dict[str, Any] = {
        "channel": row.Channel, "external_id": row.ExternalId, "message_id": row.MessageIdentifier,
        "message_id_header": row.MessageIdHeader,
        "received_at": iso_utc(row.ReceivedAt), "processed_at": iso_utc(row.ProcessedAt), "outcome": outcome,
        "case_number": row.CaseNumber, "rule": row.Rule if outcome in ("created", "threaded") else None,
        "reason": row.Reason, "sender": _sender(row), "subject": row.Subject, "envelope_id": row.EnvelopeId,
        "raw_sha256": row.RawSha256,
    }
    if outcome == "suppressed":
        entry["suppressed"] = row.Rule
    return entry


def _query() -> Any:
    return select(*_COLUMNS).outerjoin(Case, Case.Id == ProcessedMessage.CaseId)


async def export(db: Database, since: datetime | None = None, page: int = 5000) -> AsyncIterator[dict[str, Any]]:
    """Every traced message received at or after `since`, oldest first, read a page at a time."""
    after: tuple[datetime, str, str] | None = None
    while True:
        def read(conn: Connection, after: tuple[datetime, str, str] | None = after) -> list[Any]:
            q = _query()
            if since is not None:
                q = q.where(ProcessedMessage.ReceivedAt >= since)
            if after is not None:
                q = q.where(tuple_(ProcessedMessage.ReceivedAt, ProcessedMessage.Channel,
                                   ProcessedMessage.ExternalId) > tuple_(*after))
            q = q.order_by(ProcessedMessage.ReceivedAt, ProcessedMessage.Channel, ProcessedMessage.ExternalId)
            return list(conn.execute(q.limit(page)).all())

        rows = await db.read(read)
        for row in rows:
            yield _entry(row)
        if len(rows) < page:
            return
        last = rows[-1]
        after = (last.ReceivedAt, last.Channel, last.ExternalId)


async def find(db: Database, message_id: str) -> list[dict[str, Any]]:
    """What happened to the message named by `message_id`, as the operator saw it: the Message-ID header
    as the mail wrote it (`abc@host`, `<abc@host`, `<abc@host> (comment)`), its normalised id with or
    without <>, or the external id. A header that names an id is found through that id (indexed); one
    that names none (empty: `""`, `<>`, words with spaces) by the header itself."""
    wanted = message_id.strip()
    normalised = normalised_id(wanted)
    by_header = (ProcessedMessage.MessageIdentifier == normalised if normalised is not None else
                 and_(ProcessedMessage.MessageIdHeader == wanted[:HEADER_CHARS],
                      ProcessedMessage.MessageIdentifier.is_(None)))  # the partial index's rows

    def read(conn: Connection) -> list[Any]:
        external = {wanted, normalised} - {None, ""}
        q = _query().where(or_(by_header, ProcessedMessage.ExternalId.in_(external)) if external else by_header)
        return list(conn.execute(q.order_by(ProcessedMessage.ReceivedAt)).all())

    return [_entry(r) for r in await db.read(read)]
