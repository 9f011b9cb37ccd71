"""Finding the Contact behind each sender of a batch, creating the ones that do not exist yet.

A sender is known by email address (mail, web form), by phone number in E.164 (SMS, WhatsApp, calls:
the same person texting and calling is one contact) or by a handle on a messaging channel (Telegram
user id, Messenger PSID, X user id). Email comes first, then phone, then handle. An address or number
shared by several contacts links none (the sender stays in the case's Supplied* fields), as Salesforce
does. A handle seen for the first time on a contact found by phone or email is remembered for it.

A new contact with an email address gets the Account of their email domain (`[accounts]`,
`config.accounts`): the oldest whose Domain is it, else a new one named after it. On PostgreSQL, workers
making Accounts at the same time take a transaction lock per domain first, so two never make one each.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from casegate.config import AccountSettings
from casegate.store import lookups
from casegate.store.ids import new_id
from casegate.store.inbound import InboundMessage
from casegate.store.lookups import ContactRef
from casegate.store.models import Account
from sqlalchemy import select, text

Identity = tuple[str, str]
"""("email", key) | ("phone", E.164) | ("handle:<channel>", handle)."""


def email_key(address: str | None) -> str | None:
    return address.strip().lower() if address and "@" in address else None


def identities(m: InboundMessage) -> list[Identity]:
    """How this sender can be recognised, strongest first."""
    out: list[Identity] = []
    if key := email_key(m.sender_email):
        out.append(("email", key))
    if m.sender_phone:
        out.append(("phone", m.sender_phone))
    if m.sender_handle and m.channel != "email":
        out.append((f"handle:{m.channel}", m.sender_handle[:255]))
    return out


class ContactResolver:
    def __init__(self, now: datetime, accounts: AccountSettings | None = None):
        self.now = now
        self.account_settings = accounts if accounts is not None else AccountSettings()
        self.accounts: list[dict[str, Any]] = []
        self.contacts: list[dict[str, Any]] = []
        self.handles: list[dict[str, Any]] = []
        self._of_domain: dict[str, list[dict[str, Any]]] = {}
        """New contacts (their rows) by the domain whose Account they get."""
        self._of: dict[Identity, ContactRef | None] = {}
        self._known_handles: set[Identity] = set()

    def resolve(self, conn: Any, messages: Sequence[InboundMessage]) -> None:
        wanted = {i for m in messages for i in identities(m)}
        emails = {v for k, v in wanted if k == "email"}
        phones = {v for k, v in wanted if k == "phone"}
        handles = {(k[7:], v) for k, v in wanted if k.startswith("handle:")}
        found: dict[Identity, list[ContactRef]] = {}
        for key, refs in (lookups.contacts_by_email(conn, emails) if emails else {}).items():
            found[("email", key)] = refs
        for key, refs in (lookups.contacts_by_phone(conn, phones) if phones else {}).items():
            found[("phone", key)] = refs
        for (channel, handle), ref in (lookups.contacts_by_handle(conn, handles) if handles else {}).items():
            found[(f"handle:{channel}", handle)] = [ref]
            self._known_handles.add((f"handle:{channel}", handle))
        for m in messages:
            ids = identities(m)
            if not ids or ids[0] in self._of:
                continue
            contact: ContactRef | None = None
            ambiguous = False
            for ident in ids:
                have = found.get(ident, [])
                if len(have) == 1:
                    contact = have[0]
                    break
                ambiguous = ambiguous or len(have) > 1
            if contact is None and not ambiguous:
                contact = self._new_contact(m)
            for ident in ids:
                self._of.setdefault(ident, contact)
            if contact is not None:
                self._remember_handle(m, contact)
        self._link_accounts(conn)

    def contact_for(self, m: InboundMessage) -> ContactRef | None:
        ids = identities(m)
        return self._of.get(ids[0]) if ids else None

    def _remember_handle(self, m: InboundMessage, contact: ContactRef) -> None:
        ident = next((i for i in identities(m) if i[0].startswith("handle:")), None)
        if ident is None or ident in self._known_handles:
            return
        self._known_handles.add(ident)
        self.handles.append({"Channel": ident[0][7:], "Handle": ident[1], "ContactId": contact.id,
                             "CreatedDate": self.now})

    def _link_accounts(self, conn: Any) -> None:
        """The Account of each new contact's domain, found or made; their refs name it."""
        domains = sorted(self._of_domain)
        if not domains:
            return
        if conn.dialect.name == "postgresql":  # one at a time per domain; in order, so no deadlock
            conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('casegate.account_domain'), hashtext(:d))"),
                         [{"d": d} for d in domains])
        found: dict[str, tuple[str, str]] = {}
        for i in range(0, len(domains), 2000):
            rows = conn.execute(select(Account.Domain, Account.Id, Account.Name).where(
                Account.Domain.in_(domains[i:i + 2000])).order_by(Account.CreatedDate.desc(), Account.Id.desc()))
            found.update({domain: (aid, name) for domain, aid, name in rows})  # the oldest is written last
        linked: dict[str, ContactRef] = {}
        for domain in domains:
            if domain not in found:
                found[domain] = (new_id("Account"), domain)
                self.accounts.append({"Id": found[domain][0], "Name": domain, "Domain": domain,
                                      "CreatedDate": self.now})
            for row in self._of_domain[domain]:
                row["AccountId"] = found[domain][0]
                linked[row["Id"]] = ContactRef(row["Id"], *found[domain])
        self._of = {ident: linked.get(ref.id, ref) if ref else ref for ident, ref in self._of.items()}
        self._of_domain.clear()

    def _new_contact(self, m: InboundMessage) -> ContactRef:
        email = email_key(m.sender_email)
        name = (m.sender_name or "").strip()
        first, _, last = name.rpartition(" ") if " " in name else ("", "", name)
        fallback = email.split("@")[0] if email else (m.sender_phone or m.sender_handle or "Unknown")
        cid = new_id("Contact")
        phone = m.sender_phone[:40] if m.sender_phone else None
        row = {
            "Id": cid, "AccountId": None, "FirstName": first[:40] or None, "LastName": (last or fallback)[:80],
            "Email": email[:80] if email else None, "EmailKey": email[:320] if email else None,
            "Phone": phone, "PhoneKey": phone, "CreatedDate": self.now,
        }
        self.contacts.append(row)
        if domain := self.account_settings.account_domain(email):
            self._of_domain.setdefault(domain[:255], []).append(row)
        return ContactRef(cid, None, None)
