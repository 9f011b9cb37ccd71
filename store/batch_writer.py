"""The writes of one batch, gathered in memory and sent as a few multi-row statements at the end:
contacts, cases (numbered in one counter update), email messages, attachments, thread references,
feed entries and ledger rows. Used only inside the case service's transaction.

New cases take the `[case]` default Status and, unless the message, channel or routing address gives one of
`[case] priorities`, the default Priority; a Status change follows the `[case]` status model (closing stamps
ClosedDate, a status that stops the clock stops it)."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from types import MappingProxyType
from typing import Any

from casegate.config import AccountSettings, CaseSettings, RoutingAddress
from casegate.rules.decision import Decision
from casegate.rules.lifecycle import Clock, StatusModel
from casegate.store.case_matcher import thread_keys
from casegate.store.channel_policy import CASE_FIELDS, ORIGINS, subject_of
from casegate.store.contact_resolver import ContactResolver, email_key
from casegate.store.ids import new_id
from casegate.store.inbound import InboundMessage, to_json
from casegate.store.lookups import CaseState, ContactRef
from casegate.store.models import (
    Account,
    Attachment,
    Base,
    Case,
    CaseFeed,
    Contact,
    ContactHandle,
    ConversationEntry,
    Counter,
    EmailMessage,
    EmailStatus,
    Outbox,
    PendingMessage,
    ProcessedMessage,
    ThreadReference,
)
from casegate.store.outbound_mail import compose
from sqlalchemy import Connection, bindparam, delete, insert, update
from sqlalchemy.dialects import postgresql, sqlite

LIMITS = {"picklist": 40, "comments": 4000, "handle": 255, "reason": 1000, "subject": 255, "description": 32000,
          "supplied": 80, "phone": 40, "body": 131072, "headers": 32000, "email_subject": 3000, "address": 4000,
          "from": 1000, "message_id": 765, "message_id_header": 255, "feed": 255, "key": 320, "rule": 80}


def _cut(value: str | None, limit: str) -> str | None:
    """`value` within its column's length, without NUL characters (which no text column can hold)."""
    if value is None:
        return None
    return value.replace("\x00", "")[: LIMITS[limit]] if "\x00" in value else value[: LIMITS[limit]]


def ledger_key(m: InboundMessage) -> tuple[str, str]:
    """The (channel, external id) the ledger knows a message by, cut as its column is."""
    return m.channel, _cut(m.external_id, "message_id") or ""


DEFAULT_CASE = CaseSettings()


class BatchWriter:
    def __init__(self, conn: Connection, now: datetime, accounts: AccountSettings | None = None,
                 case: CaseSettings | None = None):
        self.s = conn
        self.now = now
        self.contacts = ContactResolver(now, accounts)
        self.case = case or DEFAULT_CASE
        self.statuses = StatusModel.of(self.case)
        self._entries: list[dict[str, Any]] = []
        self._pending: list[dict[str, Any]] = []
        self._cases: dict[str, dict[str, Any]] = {}
        self._case_updates: dict[str, dict[str, Any]] = {}
        self._emails: list[dict[str, Any]] = []
        self._attachments: list[dict[str, Any]] = []
        self._refs: dict[tuple[str, str], dict[str, Any]] = {}
        self._feed: list[dict[str, Any]] = []
        self._ledger: list[dict[str, Any]] = []
        self._outbound: list[tuple[CaseState, str, RoutingAddress, InboundMessage, str, str, Decision | None]] = []
        self._outbox: list[dict[str, Any]] = []
        self._replaced: set[tuple[str, str]] = set()
        self._bounced: set[str] = set()

    # contacts -----------------------------------------------------------------------------------
    def resolve_contacts(self, messages: Sequence[InboundMessage]) -> None:
        """The Contact of each sender (by email, phone or handle), created when none exists."""
        self.contacts.resolve(self.s, messages)

    def contact_for(self, m: InboundMessage) -> ContactRef | None:
        return self.contacts.contact_for(m)

    # cases ----------------------------------------------------------------------------------------
    def open_case(self, m: InboundMessage, route: RoutingAddress | None,
                  contact: ContactRef | None, parent: CaseState | None = None, *, origin: str | None = None,
                  priority: str | None = None, why: Decision | None = None) -> CaseState:
        """A new case for `m`; `why` (the decision that opened it, e.g. a closed case's follow-up) ends
        its CaseCreated feed entry, which records its rule."""
        case_id = new_id("Case")
        origin = origin or (route.origin if route else ORIGINS.get(m.channel, m.channel.title()))
        supplied = {k: v for k, v in m.case_fields.items() if k in CASE_FIELDS and v}
        status = self.statuses.default
        clock = self.statuses.clock(None, status, Clock(False, None), self.now)
        configured = priority or (route.priority if route else None)
        if configured not in self.case.priorities:  # a section's "Medium" the [case] priorities do not have
            configured = self.case.default_priority
        self._cases[case_id] = {
            "Id": case_id, "CaseNumber": None, "Subject": _cut(subject_of(m.subject, m.text), "subject"),
            "Description": _cut(m.text, "description"), "Status": status,
            "Priority": _cut(supplied.get("Priority") or configured, "picklist"),
            "Type": _cut(supplied.get("Type") or ((route.type or None) if route else None), "picklist"),
            "Reason": _cut(supplied.get("Reason"), "picklist"), "Language": _cut(supplied.get("Language"), "picklist"),
            "Comments": _cut(supplied.get("Comments"), "comments"),
            "SuppliedCompany": _cut(supplied.get("SuppliedCompany"), "supplied"),
            "Origin": origin, "IsClosed": False, "IsClosedOnCreate": False, "IsEscalated": False,
            "IsStopped": clock.is_stopped, "StopStartDate": clock.stop_start_date, "OwnerId": "",
            "ContactId": contact.id if contact else None,
            "AccountId": contact.account_id if contact else None,
            "SuppliedName": _cut(m.sender_name, "supplied"), "SuppliedEmail": _cut(m.sender_email, "supplied"),
            "SuppliedPhone": _cut(m.sender_phone, "phone"), "ConversationKey": _cut(m.conversation_key, "key"),
            "RoutingAddress": _cut(route.address if route else next(iter(m.recipients), None), "key"),
            "ParentId": parent.id if parent else None, "SourceId": None,
            "CreatedDate": self.now, "LastModifiedDate": self.now,
        }
        via = f" via {route.address}" if route else ""
        follow_up = f"; follow-up of closed case {parent.number}" if parent else ""
        because = f": {why}" if why else ""
        self.add_feed(case_id, "CaseCreated", body=f"Case opened from {origin}{via}{follow_up}{because}",
                      rule=why.rule if why else None)
        return CaseState(case_id, "", status, False, None, m.conversation_key)

    def new_case(self, case_id: str) -> Mapping[str, Any]:
        """The field values a case opened in this batch will be stored with (read-only)."""
        return MappingProxyType(self._cases[case_id])

    def set_owner(self, case_id: str, owner_id: str, owner_ref: str, why: Decision) -> None:
        """The owner `why` (an assignment decision) chose; the feed entry gives its reason and rule."""
        self._cases[case_id]["OwnerId"] = owner_id
        self.add_feed(case_id, "AssignmentRule", field="OwnerId", new=owner_ref, body=why.reason, rule=why.rule)

    def set_source(self, case_id: str, email_id: str) -> None:
        self._cases[case_id]["SourceId"] = email_id

    def set_status(self, state: CaseState, status: str, reason: str, rule: str | None = None) -> None:
        """Set the case's Status as the `[case]` status model says (IsClosed, ClosedDate; the clock when
        `status` stops it or leaving the old one starts it again); ValueError for a Status it does not have.
        The TrackedChange feed entry says `reason` and the `rule` that decided, if any."""
        old = state.status
        change = self.statuses.change(status, state.closed_date, self.now)
        before = Clock(old in self.statuses.stops_clock, None)
        clock = self.statuses.clock(old, status, before, self.now)
        fields = self._case_updates.setdefault(state.id, {"Id": state.id})
        fields.update(Status=change.status, IsClosed=change.is_closed, ClosedDate=change.closed_date,
                      LastModifiedDate=self.now)
        if clock.is_stopped != before.is_stopped:
            fields.update(IsStopped=clock.is_stopped, StopStartDate=clock.stop_start_date)
        state.status, state.is_closed, state.closed_date = change.status, change.is_closed, change.closed_date
        self.add_feed(state.id, "TrackedChange", field="Status", old=old, new=change.status, body=reason, rule=rule)

    # messages ------------------------------------------------------------------------------------
    def add_message(self, case_id: str, m: InboundMessage, contact: ContactRef | None) -> str:
        email_id = new_id("EmailMessage")
        self._emails.append({
            "Id": email_id, "ParentId": case_id, "Incoming": True, "Status": EmailStatus.NEW,
            "FromAddress": _cut(m.sender_email, "from"), "FromName": _cut(m.sender_name, "from"),
            "ToAddress": _cut(m.to_address, "address"), "CcAddress": _cut(m.cc_address, "address"),
            "Subject": _cut(m.subject, "email_subject"), "TextBody": _cut(m.text, "body"),
            "HtmlBody": _cut(m.html, "body"), "Headers": _cut(m.headers, "headers"),
            "MessageIdentifier": _cut(m.message_id, "message_id"),
            "InReplyTo": _cut(next(iter(m.in_reply_to), None), "message_id"),
            "References": _cut(" ".join(m.references), "body") or None,
            "ClientThreadIdentifier": _cut(m.thread_index, "message_id"),
            "MessageDate": m.message_date, "HasAttachment": bool(m.attachments), "IsBounced": False,
            "RawSha256": m.raw_sha256, "CreatedDate": self.now,
        })
        self._add_attachments(case_id, m, email_id)
        for key in thread_keys(m):
            self._refs.setdefault((key, case_id), {"MessageKey": _cut(key, "message_id"), "CaseId": case_id,
                                                   "CreatedDate": self.now})
        if case_id not in self._cases:
            self._case_updates.setdefault(case_id, {"Id": case_id})["LastModifiedDate"] = self.now
        self.add_feed(case_id, "EmailMessageEvent", related=email_id,
                      body=_cut(f"Email from {m.sender_email}: {m.subject}", "feed"))
        return email_id

    def _add_attachments(self, case_id: str, m: InboundMessage, email_id: str | None) -> None:
        """The files a message carried (mail parts, fetched media), on the case; the bytes are in the blob store."""
        for a in m.attachments:
            self._attachments.append({
                "Id": new_id("Attachment"), "ParentId": case_id, "EmailMessageId": email_id,
                "Name": a.name[:255], "ContentType": a.content_type[:120], "BodyLength": a.size,
                "Sha256": a.sha256, "ContentId": a.content_id, "IsInline": a.inline, "CreatedDate": self.now,
            })

    def add_entry(self, case_id: str, m: InboundMessage) -> str:
        """A message that is not an email (text, media, form, call) on the case's timeline."""
        entry_id = new_id("ConversationEntry")
        self._entries.append({
            "Id": entry_id, "ParentId": case_id, "Channel": m.channel, "EntryType": m.entry_type[:20],
            "ActorType": "EndUser", "ActorName": _cut(m.sender_name, "handle"),
            "ActorIdentifier": _cut(m.sender_phone or m.sender_handle or m.sender_email, "handle"),
            "Message": _cut(m.text, "body"), "MessageIdentifier": _cut(m.external_id, "message_id"),
            "Recipient": _cut(next(iter(m.recipients), None), "handle"),
            "MediaUrls": json.dumps(list(m.media)) if m.media else None,
            "Details": json.dumps(dict(m.details)) if m.details else None,
            "Source": m.source[:20] if m.source else None, "Status": None,
            "EntryTime": m.message_date or m.received_at, "CreatedDate": self.now,
        })
        self._add_attachments(case_id, m, None)
        if case_id not in self._cases:
            self._case_updates.setdefault(case_id, {"Id": case_id})["LastModifiedDate"] = self.now
        who = m.sender_name or m.sender_phone or m.sender_handle or m.sender_email
        what = "Call" if m.entry_type == "Call" else f"{ORIGINS.get(m.channel, m.channel)} message"
        self.add_feed(case_id, "MessagingEvent" if m.entry_type != "Call" else "CallEvent", related=entry_id,
                      body=_cut(f"{what} from {who}: {subject_of(None, m.text) or m.entry_type}", "feed"))
        return entry_id

    def add_feed(self, case_id: str, kind: str, *, field: str | None = None, old: str | None = None,
                 new: str | None = None, body: str | None = None, related: str | None = None,
                 rule: str | None = None) -> None:
        """An entry on the case's timeline; `rule`: the rule (rules/) whose decision it applies."""
        self._feed.append({
            "Id": new_id("CaseFeed"), "ParentId": case_id, "Type": kind, "Field": field,
            "OldValue": _cut(old, "feed"), "NewValue": _cut(new, "feed"), "Body": _cut(body, "description"),
            "RelatedRecordId": related, "Rule": _cut(rule, "rule"), "Seq": len(self._feed), "CreatedDate": self.now,
        })

    def add_ledger(self, m: InboundMessage, outcome: str, rule: str | None, case_id: str | None,
                   email_id: str | None, reason: str | None = None) -> None:
        self._ledger.append({
            "Channel": m.channel, "ExternalId": ledger_key(m)[1], "EnvelopeId": m.envelope_id,
            "Outcome": outcome, "Rule": rule, "Reason": _cut(reason, "reason"), "CaseId": case_id,
            "EmailMessageId": email_id, "Sender": _cut(email_key(m.sender_email) or m.conversation_key, "key"),
            "Subject": _cut(m.subject, "subject"), "MessageIdentifier": _cut(m.message_id, "message_id"),
            "MessageIdHeader": _cut(m.message_id_header, "message_id_header"),
            "RawSha256": m.raw_sha256, "ReceivedAt": m.received_at, "ProcessedAt": self.now,
        })

    def add_pending(self, m: InboundMessage, reason: str) -> None:
        """Hold `m` back whole (it opens its case later) and say so on the ledger."""
        self._pending.append({"Channel": m.channel, "ExternalId": ledger_key(m)[1], "Reason": reason[:255],
                              "Payload": to_json(m), "CreatedDate": self.now})
        self.add_ledger(m, "pending", None, None, None, reason=reason)

    def replace_ledger(self, keys: Collection[tuple[str, str]]) -> None:
        """These messages were dead-lettered before: their new outcome replaces that row."""
        self._replaced.update(keys)

    def mark_bounced(self, email_id: str) -> None:
        self._bounced.add(email_id)

    def queue_mail(self, state: CaseState, kind: str, route: RoutingAddress, m: InboundMessage,
                   token: str, hostname: str, why: Decision | None = None) -> None:
        """An acknowledgement or notice to the sender of `m`, composed at flush (once the case has
        its number), stored as an outgoing EmailMessage with Status Queued and queued in the outbox
        (the outbox sender sets it Sent or Failed); `why`, the decision to send it, ends its feed entry."""
        self._outbound.append((state, kind, route, m, token, hostname, why))

    # the writes ----------------------------------------------------------------------------------
    def flush(self) -> dict[str, str]:
        """Write everything gathered; returns the CaseNumber given to each new case."""
        numbers = self._number_cases()
        self._compose_outbound(numbers)
        if self._replaced:
            table = Base.metadata.tables[ProcessedMessage.__tablename__]
            self.s.execute(delete(table).where(table.c.Channel == bindparam("c"),
                                               table.c.ExternalId == bindparam("e")),
                           [{"c": c, "e": e} for c, e in self._replaced])
        if self._bounced:
            table = Base.metadata.tables[EmailMessage.__tablename__]
            self.s.execute(update(table).where(table.c.Id == bindparam("b_id")).values(IsBounced=True),
                           [{"b_id": i} for i in self._bounced])
        for model, rows in ((Account, self.contacts.accounts), (Contact, self.contacts.contacts),
                            (ContactHandle, self.contacts.handles),
                            (Case, list(self._cases.values())), (ConversationEntry, self._entries),
                            (EmailMessage, self._emails), (Attachment, self._attachments),
                            (CaseFeed, self._feed), (ProcessedMessage, self._ledger), (Outbox, self._outbox),
                            (PendingMessage, self._pending)):
            if rows:  # Core executemany: one statement for all rows, no ORM unit-of-work per row
                self.s.execute(insert(Base.metadata.tables[model.__tablename__]), rows)
        if self._refs:
            self.s.execute(self._insert_ignoring_duplicates(), list(self._refs.values()))
        self._update_cases()
        return numbers

    def _compose_outbound(self, numbers: dict[str, str]) -> None:
        for state, kind, route, m, token, hostname, why in self._outbound:
            number = numbers.get(state.id) or state.number
            to = email_key(m.sender_email)
            if not to:
                continue
            try:
                mail = compose(route, kind, case_number=number, thread_token=token, to_email=to,
                               to_name=m.sender_name, subject=m.subject, in_reply_to=m.message_id,
                               references=m.references, hostname=hostname, now=self.now)
            except ValueError as e:  # an address the mail library will not write: no mail, say why
                self.add_feed(state.id, "OutboundMail", body=_cut(f"{kind} not sent: {e}", "feed"))
                continue
            email_id = new_id("EmailMessage")
            self._emails.append({
                "Id": email_id, "ParentId": state.id, "Incoming": False, "Status": EmailStatus.QUEUED,
                "FromAddress": route.address, "FromName": None, "ToAddress": _cut(to, "address"),
                "CcAddress": None, "Subject": _cut(mail.subject, "email_subject"), "TextBody": _cut(mail.text, "body"),
                "HtmlBody": None, "Headers": None, "MessageIdentifier": _cut(mail.message_id, "message_id"),
                "InReplyTo": _cut(m.message_id, "message_id"), "References": None,
                "ClientThreadIdentifier": None, "MessageDate": self.now, "HasAttachment": False,
                "IsBounced": False, "RawSha256": None, "CreatedDate": self.now,
            })
            self._outbox.append({
                "Id": new_id("Outbox"), "Kind": kind, "CaseId": state.id, "EmailMessageId": email_id,
                "FromAddress": route.address, "ToAddress": to[:320], "MessageIdentifier": mail.message_id[:765],
                "Raw": mail.raw, "Status": "queued", "Attempts": 0, "NextAttemptAt": self.now, "LastError": None,
                "CreatedDate": self.now, "SentDate": None,
            })
            self._refs.setdefault((mail.message_id, state.id), {
                "MessageKey": _cut(mail.message_id, "message_id"), "CaseId": state.id, "CreatedDate": self.now})
            queued = _cut(f"{kind.capitalize()} queued to {to}: {mail.subject}", "feed")
            self.add_feed(state.id, "EmailMessageEvent", related=email_id,
                          body=f"{queued}; {why}" if why else queued, rule=why.rule if why else None)

    def _update_cases(self) -> None:
        """One executemany per shape of change (rows must share their columns)."""
        table = Base.metadata.tables[Case.__tablename__]
        shapes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for row in self._case_updates.values():
            shapes.setdefault(tuple(sorted(k for k in row if k != "Id")), []).append(row)
        for columns, rows in shapes.items():
            stmt = (update(table).where(table.c.Id == bindparam("b_Id"))
                    .values({c: bindparam(f"b_{c}") for c in columns}))
            self.s.execute(stmt, [{f"b_{k}": v for k, v in row.items()} for row in rows])

    def _number_cases(self) -> dict[str, str]:
        if not self._cases:
            return {}
        n = len(self._cases)
        last = self.s.execute(
            update(Counter).where(Counter.Name == "CaseNumber").values(Value=Counter.Value + n)
            .returning(Counter.Value)
        ).scalar_one()
        numbers = {}
        for i, (case_id, row) in enumerate(self._cases.items()):
            row["CaseNumber"] = numbers[case_id] = f"{last - n + 1 + i:08d}"
        return numbers

    def _insert_ignoring_duplicates(self) -> Any:
        if self.s.dialect.name == "postgresql":
            return postgresql.insert(ThreadReference).on_conflict_do_nothing()
        return sqlite.insert(ThreadReference).on_conflict_do_nothing()
