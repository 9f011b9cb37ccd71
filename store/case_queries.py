"""Reading cases back out, as Salesforce-shaped records (field names as in the Case, EmailMessage
and feed objects): the case list and one case with its messages, attachments and timeline.

`find_cases` is the operator's list (`casegate cases list`): newest first (CreatedDate DESC, then Id, so
the CreatedDate index serves it and pages never overlap), narrowed by a `CaseFilter` (statuses, owner,
origin, created since), one page at a time with the count of every match. `list_cases` is every case
oldest first, for tools and tests that want them all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from casegate.store.database import Database, as_utc
from casegate.store.errors import CaseNotFound, StoreError
from casegate.store.models import (
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
from sqlalchemy import ColumnElement, Select, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase


def as_record(row: DeclarativeBase, object_type: str) -> dict[str, Any]:
    """A model row as a Salesforce-style record: `attributes`, then every field by its API name."""
    out: dict[str, Any] = {"attributes": {"type": object_type}}
    for col in row.__table__.columns:
        value = getattr(row, col.key)
        if isinstance(value, datetime):
            value = as_utc(value).isoformat()
        out[col.key] = value
    return out


@dataclass(frozen=True, slots=True)
class CaseFilter:
    """Which cases `find_cases` selects: each field that is set narrows the list."""

    statuses: tuple[str, ...] = ()
    """Status is one of these (exact values, e.g. "New", "On Hold")."""
    owner: str | None = None
    """A queue by name, a user by email or name (case-insensitive), or an owner Id; `queue:NAME` or
    `user:EMAIL` names only that kind."""
    origin: str | None = None
    """Origin is this (case-insensitive: "sms" finds "SMS")."""
    since: datetime | None = None
    """Created at or after this moment (UTC when it has no time zone)."""

    @property
    def narrows(self) -> bool:
        return bool(self.statuses or self.owner or self.origin or self.since)


@dataclass(frozen=True, slots=True)
class CasePage:
    """One page of cases, newest first, and where it sits among all `total` that match."""

    records: list[dict[str, Any]]
    total: int
    offset: int
    limit: int


class OwnerNotFound(StoreError):
    """No queue or user has the name the filter gives; the message lists the ones there are."""

    def __init__(self, owner: str, queues: Sequence[str], users: Sequence[str]):
        known = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in (("queues", queues), ("users", users))
                          if names)
        super().__init__(f"no queue or user is named {owner!r}" + (f" ({known})" if known else " (there are none)"))
        self.owner = owner


async def find_cases(db: Database, where: CaseFilter | None = None, *, limit: int = 50,
                     offset: int = 0) -> CasePage:
    """The cases matching `where`, newest first (CreatedDate, then Id, both descending), `limit` of
    them from `offset`, with the count of every match. Raises OwnerNotFound for an owner no queue or
    user has."""
    where = where or CaseFilter()
    async with db.reading() as s:
        conditions = await _conditions(s, where)
        total = int((await s.execute(select(func.count()).select_from(Case).where(*conditions))).scalar_one())
        rows = (await s.execute(
            _listing().where(*conditions).order_by(Case.CreatedDate.desc(), Case.Id.desc()).limit(limit).offset(offset)
        )).all()
    return CasePage([_listed(case, email, owner) for case, email, owner in rows], total, offset, limit)


async def list_cases(db: Database, limit: int = 1000, offset: int = 0) -> list[dict[str, Any]]:
    """Every case, oldest first (by CaseNumber)."""
    async with db.reading() as s:
        rows = (await s.execute(_listing().order_by(Case.CaseNumber).limit(limit).offset(offset))).all()
    return [_listed(case, email, owner) for case, email, owner in rows]


def _listing() -> Select[Case, str | None, str]:
    """Each case with its contact's email and its owner's name (a queue's, else a user's email)."""
    return (select(Case, Contact.Email, func.coalesce(Queue.Name, User.Email))
            .outerjoin(Contact, Contact.Id == Case.ContactId)
            .outerjoin(Queue, Queue.Id == Case.OwnerId).outerjoin(User, User.Id == Case.OwnerId))


def _listed(case: Case, contact_email: str | None, owner_name: str | None) -> dict[str, Any]:
    rec = as_record(case, "Case")
    rec["ContactEmail"] = contact_email
    rec["OwnerName"] = owner_name
    return rec


async def _conditions(s: AsyncSession, where: CaseFilter) -> list[ColumnElement[bool]]:
    out: list[ColumnElement[bool]] = []
    if where.statuses:
        out.append(Case.Status.in_(where.statuses))
    if where.origin:
        out.append(func.lower(Case.Origin) == where.origin.strip().lower())
    if where.since is not None:  # stored in UTC (SQLite keeps no offset: compare in UTC)
        out.append(Case.CreatedDate >= as_utc(where.since).astimezone(UTC))
    if where.owner:
        out.append(Case.OwnerId.in_(await _owner_ids(s, where.owner)))
    return out


async def _owner_ids(s: AsyncSession, owner: str) -> list[str]:
    """The Ids of the queues and users `owner` names (see CaseFilter.owner); OwnerNotFound if none."""
    kind, _, name = owner.strip().partition(":")
    if kind.lower() not in ("queue", "user") or not name:
        kind, name = "", owner.strip()
    key = name.strip().lower()
    ids: list[str] = []
    if kind.lower() in ("", "queue"):
        ids += (await s.execute(select(Queue.Id).where(
            or_(func.lower(Queue.Name) == key, Queue.Id == name.strip())))).scalars()
    if kind.lower() in ("", "user"):
        ids += (await s.execute(select(User.Id).where(
            or_(func.lower(User.Email) == key, func.lower(User.Name) == key, User.Id == name.strip())))).scalars()
    if not ids:
        queues = (await s.execute(select(Queue.Name).order_by(Queue.Name).limit(10))).scalars().all()
        users = (await s.execute(select(User.Email).order_by(User.Email).limit(10))).scalars().all()
        raise OwnerNotFound(owner, queues, users)
    return ids


async def count_cases(db: Database) -> int:
    async with db.reading() as s:
        return int((await s.execute(select(func.count()).select_from(Case))).scalar_one())


async def show_case(db: Database, case_number: str) -> dict[str, Any]:
    """The case with `EmailMessages`, `ConversationEntries`, `Attachments`, `CaseComments` and `Feed`
    (oldest first), and `messages`: the emails and conversation entries together."""
    async with db.reading() as s:
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
