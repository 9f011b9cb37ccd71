"""The screen-pop read: who is calling from this number, and which of their cases are open.

Contacts are matched by `PhoneKey` (the E.164 number the case service stores for every contact it
knows a number of: SMS, WhatsApp, calls, chat visitors, web forms), so a caller who texted or chatted
before is found. Only open cases are listed, most recently active first — the one a call would be
logged on comes first. Records carry Salesforce field names.

`CallerDirectory` is the read-only connection the screen pop runs on, in every process that serves it:
an ingest process (which holds no case store of its own) as much as a worker, so the lookup answers
wherever the public port sends the request. It never writes (SQLite: `query_only`, and no `BEGIN
IMMEDIATE`, so a lookup never waits for the worker's write lock; PostgreSQL: read-only transactions),
never migrates, and connects on first use: a store that is not there yet, or down, fails that lookup only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aiosqlite
from casegate.store.database import iso_utc
from casegate.store.models import Account, Case, Contact, Queue, User
from sqlalchemy import event, func, pool, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

MAX_CONTACTS = 20
MAX_CASES = 50
CONNECT_TIMEOUT = 5.0
"""Seconds a lookup waits for the case store (a softphone is waiting while the phone rings)."""


@dataclass(frozen=True, slots=True)
class CallerMatch:
    """The contacts with this number and their open cases (each case names its ContactId)."""

    phone: str
    contacts: list[dict[str, Any]] = field(default_factory=list)
    cases: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"ani": self.phone, "contacts": self.contacts, "cases": self.cases}


class CallerDirectory:
    """A read-only view of the case store for the screen pop (see the module docstring)."""

    def __init__(self, url: str, *, busy_timeout: float = CONNECT_TIMEOUT, pool_size: int = 2):
        self.engine: AsyncEngine = _read_only_engine(url, busy_timeout, pool_size)

    async def find(self, phone: str) -> CallerMatch:
        """Contacts whose PhoneKey is `phone` (E.164) and their open cases, most recently active first."""
        async with self.engine.connect() as conn:
            return await _find(conn, phone)

    async def close(self) -> None:
        await self.engine.dispose()


def _read_only_engine(url: str, busy_timeout: float, pool_size: int) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = parsed.database or ""

        async def connect() -> aiosqlite.Connection:  # mode=rw: a missing file is an error, never created
            return await aiosqlite.connect(f"file:{quote(path)}?mode=rw", uri=True, timeout=busy_timeout)

        engine = create_async_engine("sqlite+aiosqlite://", async_creator=connect, poolclass=pool.NullPool)
        _read_only_sqlite(engine)
        return engine
    if parsed.get_driver_name() == "asyncpg":
        args: dict[str, Any] = {"server_settings": {"default_transaction_read_only": "on"},
                                "timeout": CONNECT_TIMEOUT, "command_timeout": CONNECT_TIMEOUT}
    else:  # psycopg
        args = {"options": "-c default_transaction_read_only=on", "connect_timeout": int(CONNECT_TIMEOUT)}
    return create_async_engine(url, connect_args=args, pool_size=pool_size, max_overflow=pool_size,
                               pool_pre_ping=True, pool_timeout=CONNECT_TIMEOUT)


def _read_only_sqlite(engine: AsyncEngine) -> None:
    """Every connection refuses writes; each lookup is one deferred (snapshot) read transaction."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA query_only=ON")
        cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN")


async def _find(conn: AsyncConnection, phone: str) -> CallerMatch:
    """Contacts whose PhoneKey is `phone` (E.164) and their open cases, most recently active first."""
    people = (await conn.execute(
        select(Contact.Id, Contact.FirstName, Contact.LastName, Contact.Email, Contact.Phone,
               Contact.AccountId, Account.Name)
        .outerjoin(Account, Account.Id == Contact.AccountId)
        .where(Contact.PhoneKey == phone)
        .order_by(Contact.CreatedDate.desc(), Contact.Id)
        .limit(MAX_CONTACTS)
    )).all()
    if not people:
        return CallerMatch(phone)
    ids = [p[0] for p in people]
    rows = (await conn.execute(
        select(Case.Id, Case.CaseNumber, Case.Subject, Case.Status, Case.Priority, Case.Origin, Case.OwnerId,
               func.coalesce(Queue.Name, User.Name), Case.ContactId, Case.CreatedDate, Case.LastModifiedDate)
        .outerjoin(Queue, Queue.Id == Case.OwnerId).outerjoin(User, User.Id == Case.OwnerId)
        .where(Case.ContactId.in_(ids), Case.IsClosed.is_(False))
        .order_by(Case.LastModifiedDate.desc(), Case.CreatedDate.desc(), Case.CaseNumber.desc())
        .limit(MAX_CASES)
    )).all()
    contacts = [{
        "attributes": {"type": "Contact"}, "Id": cid,
        "Name": " ".join(part for part in (first, last) if part), "FirstName": first, "LastName": last,
        "Email": email, "Phone": number, "AccountId": account_id, "AccountName": account_name,
    } for cid, first, last, email, number, account_id, account_name in people]
    cases = [{
        "attributes": {"type": "Case"}, "Id": r[0], "CaseNumber": r[1], "Subject": r[2], "Status": r[3],
        "Priority": r[4], "Origin": r[5], "OwnerId": r[6], "OwnerName": r[7], "ContactId": r[8],
        "CreatedDate": iso_utc(r[9]), "LastModifiedDate": iso_utc(r[10]),
    } for r in rows]
    return CallerMatch(phone, contacts, cases)
