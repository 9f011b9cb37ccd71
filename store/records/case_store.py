"""What writing a case needs from the store besides the case itself: its next CaseNumber, the Id of an
owner the rules name, a contact's account, an account's name, and the chain of its parents."""

from __future__ import annotations

from casegate.store.ids import new_id
from casegate.store.models import Account, Case, Contact, Counter, Queue, User
from casegate.store.records.call import Call
from casegate.store.records.errors import integrity
from sqlalchemy import insert, select, update

ANCESTRY_LIMIT = 10_000
"""Parents followed at most (a chain that long, or a loop written by hand into the store, ends the walk)."""


def next_case_number(call: Call) -> str:
    """The CaseNumber counter's next value, zero-padded to 8 digits (as the worker numbers cases)."""
    value = call.conn.execute(update(Counter).where(Counter.Name == "CaseNumber")
                              .values(Value=Counter.Value + 1).returning(Counter.Value)).scalar_one()
    return f"{value:08d}"


def owner_id(call: Call, ref: str) -> str:
    """The Id of the owner `queue:<Name>` or `user:<email>` the assignment rules chose, made when it does not
    exist yet (as `store.owners.ensure_owners` makes the configured owners at start)."""
    kind, name = ref.split(":", 1)
    if kind == "queue":
        found = call.conn.execute(select(Queue.Id).where(Queue.Name == name)).scalar_one_or_none()
        if found is None:
            found = new_id("Queue")
            call.conn.execute(insert(Queue).values(Id=found, Name=name, CreatedDate=call.now))
        return str(found)
    email = name.lower()
    found = call.conn.execute(select(User.Id).where(User.Email == email)).scalar_one_or_none()
    if found is None:
        found = new_id("User")
        call.conn.execute(insert(User).values(Id=found, Name=email.split("@")[0], Email=email, IsActive=True,
                                              CreatedDate=call.now))
    return str(found)


def account_of_contact(call: Call, contact_id: object) -> str | None:
    if contact_id is None:
        return None
    found = call.conn.execute(select(Contact.AccountId).where(Contact.Id == contact_id)).scalar_one_or_none()
    return str(found) if found is not None else None


def account_name(call: Call, account_id: object) -> str | None:
    if account_id is None:
        return None
    found = call.conn.execute(select(Account.Name).where(Account.Id == account_id)).scalar_one_or_none()
    return str(found) if found is not None else None


def check_ancestry(call: Call, case_id: str, parent_id: str) -> None:
    """Making `parent_id` the parent of `case_id` leaves no case its own ancestor (FIELD_INTEGRITY_EXCEPTION)."""
    current: str | None = parent_id
    seen: set[str] = set()
    while current is not None and current not in seen and len(seen) < ANCESTRY_LIMIT:
        if current == case_id:
            what = "its own parent" if parent_id == case_id else f"its own ancestor (through case {parent_id})"
            raise integrity(f"Parent Case ID: a case cannot be {what}: {case_id}", ["ParentId"])
        seen.add(current)
        current = call.conn.execute(select(Case.ParentId).where(Case.Id == current)).scalar_one_or_none()
