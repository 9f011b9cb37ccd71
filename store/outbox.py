"""The outbox: mail the case service decided to send, queued in the same transaction as the case.

The sender claims due rows with a lease (an optimistic update of NextAttemptAt, so two worker
processes never send the same mail at once), then marks each sent, due again later, or failed after
the configured attempts. Nothing leaves the table: sent and failed mail stay listed.

The mail's outgoing EmailMessage on the case follows it in the same transaction: Status Queued from
the start, Sent (with the time it went) once the relay took it, Failed when the sender gave up — and
then the case feed says to whom, after how many attempts and with which last error."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from casegate.store.database import Database
from casegate.store.ids import new_id
from casegate.store.models import CaseFeed, EmailMessage, EmailStatus, Outbox
from sqlalchemy import Connection, func, insert, select, update

ERROR_LENGTH = 4000
"""Characters of the last error kept (in the outbox row and on the case feed)."""


def _error(text: str) -> str:
    """An error as stored: without NUL characters (no text column holds them), cut."""
    return text.replace("\x00", "")[:ERROR_LENGTH]


@dataclass(frozen=True, slots=True)
class OutgoingMail:
    id: str
    kind: str
    case_id: str
    email_message_id: str
    from_address: str
    to_address: str
    message_id: str
    raw: bytes
    attempts: int


async def claim_due(db: Database, now: datetime, lease: timedelta, limit: int = 20) -> list[OutgoingMail]:
    """Queued mail whose time has come, each claimed for `lease` (counted as an attempt)."""

    def claim(conn: Connection) -> list[OutgoingMail]:
        rows = conn.execute(
            select(Outbox.Id, Outbox.Kind, Outbox.CaseId, Outbox.EmailMessageId, Outbox.FromAddress, Outbox.ToAddress,
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
                mine.append(OutgoingMail(r.Id, r.Kind, r.CaseId, r.EmailMessageId, r.FromAddress, r.ToAddress,
                                         r.MessageIdentifier, r.Raw, r.Attempts + 1))
        return mine

    return await db.transaction(claim)


async def mark_sent(db: Database, mail: OutgoingMail, now: datetime) -> None:
    """The relay took `mail`: the outbox row and its EmailMessage read sent."""

    def sent(conn: Connection) -> None:
        conn.execute(update(Outbox).where(Outbox.Id == mail.id)
                     .values(Status="sent", SentDate=now, LastError=None))
        conn.execute(update(EmailMessage).where(EmailMessage.Id == mail.email_message_id)
                     .values(Status=EmailStatus.SENT, MessageDate=now))

    await db.transaction(sent)


async def mark_retry(db: Database, mail_id: str, error: str, next_attempt: datetime) -> None:
    """Due again at `next_attempt` (the EmailMessage stays Queued)."""

    def retry(conn: Connection) -> None:
        conn.execute(update(Outbox).where(Outbox.Id == mail_id)
                     .values(LastError=_error(error), NextAttemptAt=next_attempt))

    await db.transaction(retry)


async def mark_failed(db: Database, mail: OutgoingMail, error: str, now: datetime) -> None:
    """Given up on `mail` (refused for good, or out of attempts): the outbox row and its EmailMessage read
    failed, and the case feed says so with the last error."""
    attempts = f"{mail.attempts} attempt{'s' if mail.attempts != 1 else ''}"
    body = f"{mail.kind.capitalize()} to {mail.to_address} failed after {attempts}: {error}"

    def failed(conn: Connection) -> None:
        conn.execute(update(Outbox).where(Outbox.Id == mail.id).values(Status="failed", LastError=_error(error)))
        conn.execute(update(EmailMessage).where(EmailMessage.Id == mail.email_message_id)
                     .values(Status=EmailStatus.FAILED))
        conn.execute(insert(CaseFeed).values(
            Id=new_id("CaseFeed"), ParentId=mail.case_id, Type="OutboundMail", Field=None, OldValue=None,
            NewValue=None, Body=_error(body), RelatedRecordId=mail.email_message_id,
            Seq=0, CreatedDate=now))

    await db.transaction(failed)


async def status_counts(db: Database) -> dict[str, int]:
    """How many mails are queued, sent and failed."""

    def count(conn: Connection) -> dict[str, int]:
        return {s: n for s, n in conn.execute(select(Outbox.Status, func.count()).group_by(Outbox.Status))}

    return await db.transaction(count)
