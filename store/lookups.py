"""The reads one batch needs, each done once for the whole batch (not once per message): which
messages were already processed, which contacts the senders are, which cases referenced Message-IDs
and thread tokens point to."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, Select, select

from store.models import Account, Case, Contact, ProcessedMessage, ThreadReference

T = TypeVar("T")
_CHUNK = 2000  # asyncpg allows 32767 parameters per statement


def _chunks(values: Collection[T]) -> Iterable[list[T]]:
    items = list(values)
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


def _rows(s: Connection, query: Any, column: Any, values: Collection[Any]) -> list[Any]:
    out: list[Any] = []
    for chunk in _chunks(values):
        stmt: Select[Any] = query.where(column.in_(chunk))
        out.extend(s.execute(stmt).all())
    return out


@dataclass(slots=True)
class CaseState:
    """The parts of an existing case that threading and reopening look at."""

    id: str
    number: str
    status: str
    is_closed: bool
    closed_date: datetime | None


@dataclass(frozen=True, slots=True)
class ContactRef:
    id: str
    account_id: str | None
    account_name: str | None


def processed_keys(s: Connection, keys: Collection[tuple[str, str]]) -> set[tuple[str, str]]:
    ids = {ext for _, ext in keys}
    rows = _rows(s, select(ProcessedMessage.Channel, ProcessedMessage.ExternalId),
                       ProcessedMessage.ExternalId, ids)
    return {(r[0], r[1]) for r in rows} & set(keys)


def contacts_by_email(s: Connection, emails: Collection[str]) -> dict[str, list[ContactRef]]:
    q = select(Contact.EmailKey, Contact.Id, Contact.AccountId, Account.Name).outerjoin(
        Account, Account.Id == Contact.AccountId
    )
    out: dict[str, list[ContactRef]] = {}
    for key, cid, aid, aname in _rows(s, q, Contact.EmailKey, emails):
        out.setdefault(key, []).append(ContactRef(cid, aid, aname))
    return out


def cases_by_reference(s: Connection, message_ids: Collection[str]) -> dict[str, str]:
    """Message-ID → the most recently created case that knows it."""
    q = select(ThreadReference.MessageKey, ThreadReference.CaseId).order_by(ThreadReference.Id)
    return {key: case_id for key, case_id in _rows(s, q, ThreadReference.MessageKey, message_ids)}


def case_states(s: Connection, case_ids: Collection[str]) -> dict[str, CaseState]:
    q = select(Case.Id, Case.CaseNumber, Case.Status, Case.IsClosed, Case.ClosedDate)
    return {r[0]: CaseState(*r) for r in _rows(s, q, Case.Id, case_ids)}
