"""Reading cases back out, as Salesforce-shaped records (field names as in the Case, EmailMessage
and feed objects): the case list and one case with its messages, attachments and timeline."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import DeclarativeBase

from store.database import Database, as_utc
from store.errors import CaseNotFound
from store.models import (
    Attachment,
    Case,
    CaseComment,
    CaseFeed,
    Contact,
    ConversationEntry,
    EmailMessage,
    Queue,
    User,
)


def as_record(row: DeclarativeBase, object_type: str) -> dict[str, Any]:
    """A model row as a Salesforce-style record: `attributes`, then every field by its API name."""
    out: dict[str, Any] = {"attributes": {"type": object_type}}
    for col in row.__table__.columns:
        value = getattr(row, col.key)
        if isinstance(value, datetime):
            value = as_utc(value).isoformat()
        out[col.key] = value
    return out


async def list_cases(db: Database, limit: int = 1000, offset: int = 0) -> list[dict[str, Any]]:
    async with db.session() as s:
        rows = (await s.execute(
            select(Case, Contact.Email, func.coalesce(Queue.Name, User.Email))
            .outerjoin(Contact, Contact.Id == Case.ContactId)
            .outerjoin(Queue, Queue.Id == Case.OwnerId).outerjoin(User, User.Id == Case.OwnerId)
            .order_by(Case.CaseNumber).limit(limit).offset(offset)
        )).all()
    out = []
    for case, contact_email, owner_name in rows:
        rec = as_record(case, "Case")
        rec["ContactEmail"] = contact_email
        rec["OwnerName"] = owner_name
        out.append(rec)
    return out


async def count_cases(db: Database) -> int:
    async with db.session() as s:
        return int((await s.execute(select(func.count()).select_from(Case))).scalar_one())


async def show_case(db: Database, case_number: str) -> dict[str, Any]:
    """The case with `EmailMessages`, `ConversationEntries`, `Attachments`, `CaseComments` and `Feed`
    (oldest first), and `messages`: the emails and conversation entries together."""
    async with db.session() as s:
        case = (await s.execute(select(Case).where(Case.CaseNumber == case_number))).scalar()
        if case is None:
            raise CaseNotFound(case_number)
        rec = as_record(case, "Case")
        for key, model, order in (
            ("EmailMessages", EmailMessage, (EmailMessage.CreatedDate, EmailMessage.MessageDate)),
            ("Attachments", Attachment, (Attachment.CreatedDate, Attachment.Id)),
            ("CaseComments", CaseComment, (CaseComment.CreatedDate, CaseComment.Id)),
            ("Feed", CaseFeed, (CaseFeed.CreatedDate, CaseFeed.Seq)),
            ("ConversationEntries", ConversationEntry, (ConversationEntry.CreatedDate, ConversationEntry.EntryTime)),
        ):
            rows = (await s.execute(select(model).where(model.ParentId == case.Id).order_by(*order))).scalars()
            rec[key] = [as_record(r, model.__name__) for r in rows]
    rec["messages"] = _messages(rec)
    return rec


def _messages(case: dict[str, Any]) -> list[dict[str, Any]]:
    """Every message on the case, emails and the rest, in the order they reached it (each keeps its
    `attributes.type`: EmailMessage or ConversationEntry)."""
    both = [*case["EmailMessages"], *case["ConversationEntries"]]
    return sorted(both, key=lambda m: m["CreatedDate"])
