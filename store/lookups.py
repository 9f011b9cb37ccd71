"""The reads one batch needs, each done once for the whole batch (not once per message): which
messages were already processed, which contacts the senders are, which cases referenced Message-IDs
and thread tokens point to."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from casegate.rules.acknowledgement import ACKNOWLEDGEMENT, NOTICE
from casegate.store.models import (
    Account,
    Case,
    Contact,
    ContactHandle,
    EmailMessage,
    Outbox,
    ProcessedMessage,
    ThreadReference,
)
from sqlalchemy import Connection, Select, func, select

T = TypeVar("T")
DEAD_LETTERED = "dead-lettered"
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
    conversation_key: str | None = None
    """The sender identity the case was opened for (Thread-Index matches must come from it)."""
    last_activity: datetime | None = None
    """When the case last changed (a message, a status): the conversation window runs from it."""


@dataclass(frozen=True, slots=True)
class ContactRef:
    id: str
    account_id: str | None
    account_name: str | None


def processed_keys(s: Connection, keys: Collection[tuple[str, str]]) -> tuple[set[tuple[str, str]],
                                                                              set[tuple[str, str]]]:
    """Of these (channel, external id) keys: those already processed, and those only dead-lettered so
    far (a replay of these is processed, and its real outcome replaces the dead-letter row). Looked up
    by the whole primary key, so the cost does not grow with the ledger."""
    wanted = set(keys)
    q = select(ProcessedMessage.Channel, ProcessedMessage.ExternalId, ProcessedMessage.Outcome).where(
        ProcessedMessage.Channel.in_({channel for channel, _ in wanted}))
    rows = [r for r in _rows(s, q, ProcessedMessage.ExternalId, {ext for _, ext in wanted}) if (r[0], r[1]) in wanted]
    done = {(r[0], r[1]) for r in rows if r[2] != DEAD_LETTERED}
    dead = {(r[0], r[1]) for r in rows if r[2] == DEAD_LETTERED}
    return done, dead


def _contacts_by(s: Connection, column: Any, keys: Collection[str]) -> dict[str, list[ContactRef]]:
    q = select(column, Contact.Id, Contact.AccountId, Account.Name).outerjoin(
        Account, Account.Id == Contact.AccountId
    )
    out: dict[str, list[ContactRef]] = {}
    for key, cid, aid, aname in _rows(s, q, column, keys):
        out.setdefault(key, []).append(ContactRef(cid, aid, aname))
    return out


def contacts_by_email(s: Connection, emails: Collection[str]) -> dict[str, list[ContactRef]]:
    """Normalised (lower-case) address → the contacts with it."""
    return _contacts_by(s, Contact.EmailKey, emails)


def contacts_by_phone(s: Connection, phones: Collection[str]) -> dict[str, list[ContactRef]]:
    """E.164 number → the contacts with it."""
    return _contacts_by(s, Contact.PhoneKey, phones)


def contacts_by_handle(s: Connection, handles: Collection[tuple[str, str]]) -> dict[tuple[str, str], ContactRef]:
    """(channel, handle) → its contact."""
    q = select(ContactHandle.Channel, ContactHandle.Handle, Contact.Id, Contact.AccountId, Account.Name).join(
        Contact, Contact.Id == ContactHandle.ContactId).outerjoin(Account, Account.Id == Contact.AccountId)
    wanted = set(handles)
    out = {}
    for channel, handle, cid, aid, aname in _rows(s, q, ContactHandle.Handle, {h for _, h in wanted}):
        if (channel, handle) in wanted:
            out[(channel, handle)] = ContactRef(cid, aid, aname)
    return out


def latest_cases_by_conversation(s: Connection, keys: Collection[str]) -> dict[str, CaseState]:
    """Conversation key → the most recently active case opened for it."""
    q = select(Case.Id, Case.CaseNumber, Case.Status, Case.IsClosed, Case.ClosedDate, Case.ConversationKey,
               Case.LastModifiedDate).order_by(Case.LastModifiedDate, Case.CreatedDate)
    return {r[5]: CaseState(*r) for r in _rows(s, q, Case.ConversationKey, keys)}


def open_cases_by_contact(s: Connection, contact_ids: Collection[str]) -> dict[str, CaseState]:
    """Contact Id → that contact's most recently active open case (a call is logged on it)."""
    q = select(Case.Id, Case.CaseNumber, Case.Status, Case.IsClosed, Case.ClosedDate, Case.ConversationKey,
               Case.LastModifiedDate, Case.ContactId).where(Case.IsClosed.is_(False)).order_by(
        Case.LastModifiedDate, Case.CreatedDate)
    return {r[7]: CaseState(*r[:7]) for r in _rows(s, q, Case.ContactId, contact_ids)}


def cases_opened_since(s: Connection, origin: str, since: datetime) -> int:
    q = select(func.count()).select_from(Case).where(Case.Origin == origin, Case.CreatedDate >= since)
    return int(s.execute(q).scalar_one())


def cases_by_reference(s: Connection, message_ids: Collection[str]) -> dict[str, str]:
    """Message-ID → the most recently created case that knows it."""
    q = select(ThreadReference.MessageKey, ThreadReference.CaseId).order_by(ThreadReference.Id)
    return {key: case_id for key, case_id in _rows(s, q, ThreadReference.MessageKey, message_ids)}


def case_states(s: Connection, case_ids: Collection[str]) -> dict[str, CaseState]:
    q = select(Case.Id, Case.CaseNumber, Case.Status, Case.IsClosed, Case.ClosedDate, Case.ConversationKey)
    return {r[0]: CaseState(*r) for r in _rows(s, q, Case.Id, case_ids)}


def recent_ledger(s: Connection, senders: Collection[str], since: datetime) -> list[tuple[str, str | None, datetime]]:
    """(Sender, Subject, ReceivedAt) of what these senders sent since `since` (for the loop breaker)."""
    q = select(ProcessedMessage.Sender, ProcessedMessage.Subject, ProcessedMessage.ReceivedAt).where(
        ProcessedMessage.ReceivedAt >= since)
    return [(r[0], r[1], r[2]) for r in _rows(s, q, ProcessedMessage.Sender, senders)]


def outbox_counts(s: Connection, addresses: Collection[str], since: datetime) -> dict[str, int]:
    """How many acknowledgements and notices we queued to each address since `since` (for their rate limit;
    agents' replies do not count against it)."""
    q = select(Outbox.ToAddress).where(Outbox.CreatedDate >= since, Outbox.Kind.in_((ACKNOWLEDGEMENT, NOTICE)))
    out: dict[str, int] = {}
    for (address,) in _rows(s, q, Outbox.ToAddress, addresses):
        out[address] = out.get(address, 0) + 1
    return out


def outgoing_emails(s: Connection, message_ids: Collection[str]) -> dict[str, tuple[str, str]]:
    """Our own outgoing EmailMessages by Message-ID → (EmailMessage Id, case Id) (for bounces)."""
    q = select(EmailMessage.MessageIdentifier, EmailMessage.Id, EmailMessage.ParentId).where(
        EmailMessage.Incoming.is_(False))
    return {r[0]: (r[1], r[2]) for r in _rows(s, q, EmailMessage.MessageIdentifier, message_ids)}
