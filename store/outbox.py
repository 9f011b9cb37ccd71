"""The outbox: mail the case service decided to send, queued in the same transaction as the case.

The sender claims due rows with a lease (an optimistic update of NextAttemptAt, so two worker
processes never send the same mail at once), then marks each sent, due again later, or failed after
the configured attempts. Nothing leaves the table: sent and failed mail stay listed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, func, select, update

from store.database import Database
from store.models import Outbox


@dataclass(frozen=True, slots=True)
class OutgoingMail:
    id: str
    kind: str
    case_id: str
    from_address: str
    to_address: str
    message_id: str
    raw: bytes
    attempts: int


async def claim_due(db: Database, now: datetime, lease: timedelta, limit: int = 20) -> list[OutgoingMail]:
    """Queued mail whose time has come, each claimed for `lease` (counted as an attempt)."""

    def claim(conn: Connection) -> list[OutgoingMail]:
        rows = conn.execute(
            select(Outbox.Id, Outbox.Kind, Outbox.CaseId, Outbox.FromAddress, Outbox.ToAddress,
                   Outbox.MessageIdentifier, Outbox.Raw, Outbox.Attempts, Outbox.NextAttemptAt)
            .where(Outbox.Status == "queued", Outbox.NextAttemptAt <= now)
            .order_by(Outbox.NextAttemptAt).limit(limit)
        ).all()
        mine = []
        for r in rows:
            taken = conn.execute(
                update(Outbox).where(Outbox.Id == r.Id, Outbox.Status == "queued",
                                     Outbox.NextAttemptAt == r.NextAttemptAt)
                .values(NextAttemptAt=now + lease, Attempts=Outbox.Attempts + 1)
            ).rowcount
            if taken == 1:
                mine.append(OutgoingMail(r.Id, r.Kind, r.CaseId, r.FromAddress, r.ToAddress,
                                         r.MessageIdentifier, r.Raw, r.Attempts + 1))
        return mine

    return await db.transaction(claim)


async def mark_sent(db: Database, mail_id: str, now: datetime) -> None:
    def sent(conn: Connection) -> None:
        conn.execute(update(Outbox).where(Outbox.Id == mail_id)
                     .values(Status="sent", SentDate=now, LastError=None))

    await db.transaction(sent)


async def mark_retry(db: Database, mail_id: str, error: str, next_attempt: datetime | None) -> None:
    """Due again at `next_attempt`, or failed for good when that is None."""

    def retry(conn: Connection) -> None:
        values: dict[str, object] = {"LastError": error[:4000]}
        if next_attempt is None:
            values["Status"] = "failed"
        else:
            values["NextAttemptAt"] = next_attempt
        conn.execute(update(Outbox).where(Outbox.Id == mail_id).values(**values))

    await db.transaction(retry)


async def status_counts(db: Database) -> dict[str, int]:
    """How many mails are queued, sent and failed."""

    def count(conn: Connection) -> dict[str, int]:
        return {s: n for s, n in conn.execute(select(Outbox.Status, func.count()).group_by(Outbox.Status))}

    return await db.transaction(count)
