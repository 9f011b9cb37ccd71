"""The screen-pop read: who is calling from this number, and which of their cases are open.

Contacts are matched by `PhoneKey` (the E.164 number the case service stores for every contact it
knows a number of: SMS, WhatsApp, calls, chat visitors, web forms), so a caller who texted or chatted
before is found. Only open cases are listed, most recently active first — the one a call would be
logged on comes first. Records carry Salesforce field names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from store.database import Database, iso_utc
from store.models import Account, Case, Contact, Queue, User

MAX_CONTACTS = 20
MAX_CASES = 50


@dataclass(frozen=True, slots=True)
class CallerMatch:
    """The contacts with this number and their open cases (each case names its ContactId)."""

    phone: str
    contacts: list[dict[str, Any]] = field(default_factory=list)
    cases: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"ani": self.phone, "contacts": self.contacts, "cases": self.cases}


async def find_caller(db: Database, phone: str) -> CallerMatch:
    """Contacts whose PhoneKey is `phone` (E.164) and their open cases, most recently active first."""
    async with db.session() as s:
        people = (await s.execute(
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
        rows = (await s.execute(
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
