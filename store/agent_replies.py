"""Agents' replies to the customer, queued in the caller's transaction, and what becomes of them.

An email reply (`queue_email_reply`) is an outgoing EmailMessage (Status Q) and its outbox rows, one per
recipient (the outbox sender delivers to one address a row): a MIME mail from a routing address with the
case's signed thread token in the subject, its own Message-ID (kept as a thread reference, so the
customer's answer threads back by it), In-Reply-To the customer's last mail and References the
conversation's Message-IDs (at most 20: the first and the last 19). The outbox sender
(ingest/worker/outbox.py) delivers it with retry and sets its Status Sent or Failed.

A messaging reply (`queue_conversation_reply`) is an outgoing ConversationEntry (ActorType Agent, Status
queued) and its `reply_outbox` row, on the channel, provider and customer handle of the case's last
message from the customer. The reply sender (ingest/worker/reply_sender.py) claims due rows, sends each
through its provider and records the outcome; the providers' delivery statuses move the entry's Status
forward only. Which status is "forward" is the caller's rule (`advance`, ingest's `advance_status`),
passed in because the store does not import ingest.

What can be known before sending is refused with ReplyRefusedError before anything is written: no such
case, nobody to write to, no text; and, with the `check` the sender table gives
(ingest.replies.configured.reply_check), what the provider would refuse: too long, outside its messaging
window without a template, no sender configured for the route."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage as MimeMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr, getaddresses, make_msgid
from typing import Any

from casegate.config import Settings
from casegate.store.channel_policy import ORIGINS, SECTION_OF_CHANNEL
from casegate.store.database import as_utc
from casegate.store.errors import StoreError
from casegate.store.ids import new_id
from casegate.store.models import (
    Case,
    CaseFeed,
    ConversationEntry,
    DeliveryReceipt,
    EmailMessage,
    EmailStatus,
    Outbox,
    ReplyOutbox,
    ThreadReference,
    User,
)
from casegate.store.thread_token import make_token
from sqlalchemy import Connection, Row, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

MESSAGING_CHANNELS = ("sms", "whatsapp", "messenger", "instagram", "telegram", "x", "chat")
"""The channels a reply goes back on (web forms and calls are answered by mail or phone)."""
REFERENCES_KEPT = 20
MAX_RECIPIENTS = 100
BODY_MAX = 131072
"""Characters of a reply's text (and of each mail body), as the store keeps them: more is refused, never cut."""
RECEIPT_DAYS = 7
_POLICY = SMTP.clone(max_line_length=998)
_ADDRESS = re.compile(r"[^@\s<>,;\"]+@[^@\s<>,;\"]+")
_CODES = {"no_case": "INVALID_CROSS_REFERENCE_KEY", "empty": "REQUIRED_FIELD_MISSING",
          "no_recipient": "REQUIRED_FIELD_MISSING", "text_too_long": "STRING_TOO_LONG"}

AnyRow = Row[*tuple[Any, ...]]
Advance = Callable[[str | None, str], str]
"""(current status or None, reported status) → the status after it: forward only."""


class ReplyRefusedError(StoreError):
    """The reply cannot be queued as it is (HTTP 400; nothing was written). `reason` is ours (no_case,
    not_messaging, no_handle, no_recipient, bad_address, no_sender, empty, both, text_too_long,
    outside_window, template_unsupported ...); `code` Salesforce's errorCode for it
    (FIELD_INTEGRITY_EXCEPTION unless one fits better); `fields` the API names at fault."""

    status = 400

    def __init__(self, reason: str, message: str, fields: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.fields = list(fields)
        self.code = _CODES.get(reason, "FIELD_INTEGRITY_EXCEPTION")

    def as_salesforce(self) -> list[dict[str, object]]:
        return [{"message": self.message, "errorCode": self.code, "fields": self.fields}]


@dataclass(frozen=True, slots=True)
class ReplyPolicy:
    """What an email reply needs from the settings."""

    thread_secret: bytes
    hostname: str = "casegate.localhost"
    """The domain of the Message-IDs casegate makes (`[outbound] hostname`)."""
    routing: tuple[str, ...] = ()
    """The addresses a reply may come from (the routing addresses, lower case); the first is the default."""
    relay: bool = True
    """`[outbound] enabled`: without a relay a reply would only wait in the outbox, so it is refused."""

    @classmethod
    def of(cls, settings: Settings, thread_secret: bytes) -> ReplyPolicy:
        return cls(thread_secret, settings.outbound.hostname, tuple(r.address for r in settings.routing),
                   settings.outbound.enabled)


@dataclass(frozen=True, slots=True)
class ReplyTemplate:
    """A template the provider approved (WhatsApp: name and language; Twilio: the Content SID as name)."""

    name: str
    language: str = "en_US"
    parameters: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class OutgoingReply:
    """A messaging reply as its sender needs it (the store's view of ingest.replies.Reply)."""

    entry_id: str
    case_id: str
    channel: str
    provider: str
    to: str
    text: str | None
    template: ReplyTemplate | None
    last_inbound_at: datetime | None
    from_id: str | None = None
    thread: str | None = None
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class DeliveryUpdate:
    """A provider's delivery status of a message we sent, named by the provider's message id."""

    source: str
    message_id: str
    status: str
    error_code: str | None = None
    error: str | None = None


ReplyCheck = Callable[[OutgoingReply, datetime], None]
"""Raises ReplyRefusedError when the reply's provider would not take it."""


# -- email -------------------------------------------------------------------------------------------
def queue_email_reply(conn: Connection, policy: ReplyPolicy, case_id: str, *, to: str | None,
                      cc: str | None = None, bcc: str | None = None, subject: str | None = None,
                      text_body: str | None = None, html_body: str | None = None, from_address: str | None = None,
                      actor_id: str | None, now: datetime) -> str:
    """The id of the outgoing EmailMessage queued on the case. Addresses are Salesforce's lists (`a@x.org;
    Ann <b@y.org>`); `to` None or empty answers the customer's last mail (else the case's email); the
    subject defaults to `Re: ` + that mail's (or the case's) subject; From is `from_address` (a routing
    address), else the case's routing address, else the first one."""
    case = _case(conn, case_id)
    if not policy.relay:
        raise ReplyRefusedError("no_relay", "casegate sends no mail: [outbound] is not enabled (no relay)")
    if not (text_body or "").strip() and not (html_body or "").strip():
        raise ReplyRefusedError("empty", "the reply has no text or HTML body", ["TextBody", "HtmlBody"])
    for name, body in (("TextBody", text_body), ("HtmlBody", html_body)):
        if body is not None and len(body) > BODY_MAX:
            raise ReplyRefusedError("text_too_long", f"{name} is {len(body):,} characters, at most {BODY_MAX:,}",
                                    [name])
    sender = _from_address(policy, from_address, case.RoutingAddress)
    stmt = select(EmailMessage.Id, EmailMessage.MessageIdentifier, EmailMessage.References, EmailMessage.Subject,
                  EmailMessage.FromAddress).where(EmailMessage.ParentId == case_id, EmailMessage.Incoming.is_(True))
    last = conn.execute(stmt.order_by(EmailMessage.CreatedDate.desc(), EmailMessage.Id.desc()).limit(1)).first()
    recipients = {name: _addresses(value, name) for name, value in (
        ("ToAddress", to or (last.FromAddress if last else None) or case.SuppliedEmail), ("CcAddress", cc),
        ("BccAddress", bcc))}
    if not recipients["ToAddress"]:
        raise ReplyRefusedError("no_recipient", "no ToAddress given and the case has no customer email",
                                ["ToAddress"])
    everyone = [addr for pairs in recipients.values() for _, addr in pairs]
    if len(everyone) > MAX_RECIPIENTS:
        raise ReplyRefusedError("bad_address", f"{len(everyone)} recipients, at most {MAX_RECIPIENTS}",
                                ["ToAddress", "CcAddress", "BccAddress"])
    in_reply_to = last.MessageIdentifier if last else None
    chain = _references(conn, case_id, last.References if last else None, in_reply_to)
    token = make_token(policy.thread_secret, case_id)
    title = " ".join((subject if subject and subject.strip() else
                      _re(last.Subject if last else case.Subject) or f"Case {case.CaseNumber}").split())
    title = title if token in title else f"{title} {token}"
    if len(title) > 3000:
        raise ReplyRefusedError("text_too_long", "the subject with the thread token is over 3,000 characters",
                                ["Subject"])
    message_id = make_msgid(idstring=f"case{case.CaseNumber}", domain=policy.hostname)
    msg = MimeMessage(policy=_POLICY)
    try:
        msg["From"] = sender
        msg["To"] = ", ".join(formataddr(p) for p in recipients["ToAddress"])
        if recipients["CcAddress"]:
            msg["Cc"] = ", ".join(formataddr(p) for p in recipients["CcAddress"])
        msg["Subject"] = title
        msg["Date"] = format_datetime(as_utc(now))
        msg["Message-ID"] = message_id
        if in_reply_to:
            msg["In-Reply-To"] = in_reply_to
        if chain:
            msg["References"] = " ".join(chain)
        msg["X-Casegate-Case"] = case.CaseNumber
        if text_body and text_body.strip():
            msg.set_content(text_body)
            if html_body and html_body.strip():
                msg.add_alternative(html_body, subtype="html")
        else:
            msg.set_content(html_body or "", subtype="html")
        raw = msg.as_bytes()
    except (ValueError, TypeError) as e:  # an address or header the mail library will not write
        raise ReplyRefusedError("bad_address", f"the mail cannot be written: {e}",
                                ["ToAddress", "CcAddress", "FromAddress"]) from None
    email_id = new_id("EmailMessage")
    listed = {name: "; ".join(addr for _, addr in pairs) or None for name, pairs in recipients.items()}
    conn.execute(insert(EmailMessage).values(
        Id=email_id, ParentId=case_id, Incoming=False, Status=EmailStatus.QUEUED, FromAddress=sender,
        FromName=None, Subject=title, TextBody=text_body, HtmlBody=html_body,
        Headers="\n".join(f"{k}: {v}" for k, v in msg.items())[:32000], MessageIdentifier=message_id,
        InReplyTo=in_reply_to, References=" ".join(chain) or None,
        ReplyToEmailMessageId=last.Id if last else None, MessageDate=now, HasAttachment=False,
        IsBounced=False, CreatedDate=now, **{k: v[:4000] if v else None for k, v in listed.items()}))
    conn.execute(insert(Outbox), [{
        "Id": new_id("Outbox"), "Kind": "reply", "CaseId": case_id, "EmailMessageId": email_id,
        "FromAddress": sender, "ToAddress": addr, "MessageIdentifier": message_id, "Raw": raw, "Status": "queued",
        "Attempts": 0, "NextAttemptAt": now, "LastError": None, "CreatedDate": now, "SentDate": None}
        for addr in dict.fromkeys(everyone)])
    insert_ref = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(ThreadReference)
    conn.execute(insert_ref.on_conflict_do_nothing(), [{"MessageKey": message_id, "CaseId": case_id,
                                                        "CreatedDate": now}])
    _feed(conn, case_id, "EmailMessageEvent", f"Reply by {_who(conn, actor_id)} queued to {listed['ToAddress']}: "
                                              f"{title}", email_id, actor_id, now)
    _touch(conn, case_id, actor_id, now)
    return email_id


def _from_address(policy: ReplyPolicy, given: str | None, routing_address: str | None) -> str:
    if given:
        if given.strip().lower() not in policy.routing:
            raise ReplyRefusedError("bad_address", f"FromAddress {given!r} is not a routing address casegate "
                                                   "sends from", ["FromAddress"])
        return given.strip().lower()
    if routing_address and routing_address.lower() in policy.routing:
        return routing_address.lower()
    if policy.routing:
        return policy.routing[0]
    raise ReplyRefusedError("no_sender", "no routing address is configured to send the reply from", ["FromAddress"])


def _addresses(value: str | None, field: str) -> list[tuple[str, str]]:
    """(name, address) of each address in a `;`- or `,`-separated list; ReplyRefusedError naming the field."""
    if not value or not value.strip():
        return []
    if "\r" in value or "\n" in value:
        raise ReplyRefusedError("bad_address", f"{field}: an address list is one line", [field])
    pairs = getaddresses([value.replace(";", ",")])
    for _, addr in pairs:
        if not _ADDRESS.fullmatch(addr) or len(addr) > 320:
            raise ReplyRefusedError("bad_address", f"{field}: {addr or value!r} is not an email address", [field])
    return pairs


def _re(subject: str | None) -> str | None:
    if not subject or not subject.strip():
        return None
    return subject if subject.strip().lower().startswith("re:") else f"Re: {subject}"


def _references(conn: Connection, case_id: str, parent: str | None, in_reply_to: str | None) -> list[str]:
    """The parent's References, then the case's Message-IDs (its first and its latest), In-Reply-To last;
    past REFERENCES_KEPT the first and the last ones are kept (RFC 5322 §3.6.4, as mail clients trim)."""
    ids = select(EmailMessage.MessageIdentifier).where(EmailMessage.ParentId == case_id,
                                                       EmailMessage.MessageIdentifier.is_not(None))
    first = conn.execute(ids.order_by(EmailMessage.CreatedDate, EmailMessage.Id).limit(1)).scalars().all()
    latest = conn.execute(ids.order_by(EmailMessage.CreatedDate.desc(), EmailMessage.Id.desc())
                          .limit(REFERENCES_KEPT)).scalars().all()
    chain = [i for i in dict.fromkeys([*first, *(parent or "").split(), *reversed(latest)]) if i and i != in_reply_to]
    chain += [in_reply_to] if in_reply_to else []
    return chain if len(chain) <= REFERENCES_KEPT else [chain[0], *chain[-(REFERENCES_KEPT - 1):]]


# -- messaging ---------------------------------------------------------------------------------------
def queue_conversation_reply(conn: Connection, case_id: str, *, text: str | None = None,
                             template: ReplyTemplate | None = None, actor_id: str | None, now: datetime,
                             check: ReplyCheck | None = None) -> str:
    """The id of the outgoing ConversationEntry queued on the case: `text` (or an approved `template`) to the
    customer on the channel of their last message, through the provider that delivered it."""
    case = _case(conn, case_id)
    if template is None and not (text and text.strip()):
        raise ReplyRefusedError("empty", "the reply has no text", ["Message"])
    if template is not None and text:
        raise ReplyRefusedError("both", "a reply is text or a template, not both", ["Message"])
    if text and len(text) > BODY_MAX:
        raise ReplyRefusedError("text_too_long", f"the reply is {len(text):,} characters, at most {BODY_MAX:,}",
                                ["Message"])
    E = ConversationEntry
    last = conn.execute(select(E.Channel, E.Source, E.ActorIdentifier, E.Recipient, E.Details, E.EntryTime)
                        .where(E.ParentId == case_id, E.ActorType == "EndUser", E.Channel.in_(MESSAGING_CHANNELS))
                        .order_by(E.EntryTime.desc(), E.CreatedDate.desc()).limit(1)).first()
    if last is None:
        raise ReplyRefusedError("not_messaging", f"case {case.CaseNumber} has no message from the customer on a "
                                                 f"messaging channel ({', '.join(MESSAGING_CHANNELS)}) to answer; "
                                                 "reply by email", ["ParentId"])
    provider = last.Source or SECTION_OF_CHANNEL.get(last.Channel, last.Channel)
    to, from_id, thread = _route_of(last, provider, _json_object(last.Details))
    if not to:
        raise ReplyRefusedError("no_handle", f"the customer's {last.Channel} handle is not on record", ["ParentId"])
    reply = OutgoingReply(new_id("ConversationEntry"), case_id, last.Channel, provider, to, text, template,
                          last.EntryTime, from_id, thread)
    if check is not None:
        check(reply, now)
    details = {"from": from_id, "thread": thread, "template": template.name if template else None}
    message = text if template is None else _template_text(template)
    conn.execute(insert(E).values(
        Id=reply.entry_id, ParentId=case_id, Channel=reply.channel, EntryType="Text", ActorType="Agent",
        ActorName=_who(conn, actor_id, bare=True)[:255], ActorIdentifier=actor_id, Message=message,
        MessageIdentifier=reply.entry_id, Recipient=to[:255], MediaUrls=None,
        Details=json.dumps({k: v for k, v in details.items() if v}) if any(details.values()) else None,
        Source=provider, Status="queued", EntryTime=now, CreatedDate=now))
    conn.execute(insert(ReplyOutbox).values(
        EntryId=reply.entry_id, CaseId=case_id, Channel=reply.channel, Provider=provider, Recipient=to[:255],
        SenderId=from_id[:255] if from_id else None, Thread=thread[:255] if thread else None,
        Template=json.dumps({"name": template.name, "language": template.language,
                             "parameters": list(template.parameters)}) if template else None,
        Status="queued", Attempts=0, NextAttemptAt=now, LastError=None, CreatedDate=now, SentDate=None))
    first_line = next((line.strip() for line in (message or "").splitlines() if line.strip()), "")
    _feed(conn, case_id, "MessagingEvent", f"{_name(reply.channel)} reply by {_who(conn, actor_id)} queued to "
                                           f"{to}: {first_line}", reply.entry_id, actor_id, now)
    _touch(conn, case_id, actor_id, now)
    return reply.entry_id


def _route_of(last: AnyRow, provider: str, details: Mapping[str, Any]) -> tuple[str | None, str | None, str | None]:
    """(to, from id, thread) of a reply to the customer's message `last`, as its provider names them."""
    actor: str | None = last.ActorIdentifier
    if last.Channel == "telegram":  # the chat (a private chat's id is the user's)
        return _text(details.get("chat_id")) or actor, None, _text(details.get("message_thread_id"))
    if last.Channel == "chat":  # the visitor (their phone number may be the actor identifier)
        return _text(details.get("visitor_id")) or actor, None, _text(details.get("conversation_id"))
    if last.Channel == "whatsapp" and provider == "meta":  # WhatsApp ids are the number's digits
        return (actor or "").removeprefix("+") or None, _text(details.get("phone_number_id")), None
    if provider == "twilio":  # from the number the customer wrote to
        return actor, last.Recipient, None
    return actor, None, None


def _template_text(template: ReplyTemplate) -> str:
    values = f": {', '.join(template.parameters)}" if template.parameters else ""
    return f"[template {template.name} ({template.language}){values}]"


def claim_due_replies(conn: Connection, now: datetime, lease: timedelta, limit: int = 20) -> list[OutgoingReply]:
    """Queued replies whose time has come, each claimed for `lease` (counted as an attempt), with the time of
    the customer's latest message on the channel (it may have reopened the window since the reply was queued)."""
    R, E = ReplyOutbox, ConversationEntry
    rows = conn.execute(
        select(R.EntryId, R.CaseId, R.Channel, R.Provider, R.Recipient, R.SenderId, R.Thread, R.Template,
               R.Attempts, R.NextAttemptAt, E.Message).join(E, E.Id == R.EntryId)
        .where(R.Status == "queued", R.NextAttemptAt <= now).order_by(R.NextAttemptAt).limit(limit)).all()
    mine = []
    for r in rows:
        taken = conn.execute(update(R).where(R.EntryId == r.EntryId, R.Status == "queued",
                                             R.NextAttemptAt == r.NextAttemptAt)
                             .values(NextAttemptAt=now + lease, Attempts=R.Attempts + 1)).rowcount
        if taken != 1:
            continue
        last = conn.execute(select(func.max(E.EntryTime)).where(E.ParentId == r.CaseId, E.Channel == r.Channel,
                                                                E.ActorType == "EndUser")).scalar()
        template = _template_of(r.Template)
        mine.append(OutgoingReply(r.EntryId, r.CaseId, r.Channel, r.Provider, r.Recipient,
                                  None if template else r.Message, template, as_utc(last) if last else None,
                                  r.SenderId, r.Thread, r.Attempts + 1))
    return mine


def mark_reply_sent(conn: Connection, reply: OutgoingReply, message_id: str | None, status: str, now: datetime,
                    advance: Advance) -> None:
    """The provider took the reply: its id of the message names the entry from now on (its statuses use
    it), and the entry's status moves to what the provider said (queued or sent)."""
    conn.execute(update(ReplyOutbox).where(ReplyOutbox.EntryId == reply.entry_id)
                 .values(Status="sent", SentDate=now, LastError=None))
    current = conn.execute(select(ConversationEntry.Status).where(ConversationEntry.Id == reply.entry_id)).scalar()
    values = {"Status": advance(current, status), **({"MessageIdentifier": message_id[:765]} if message_id else {})}
    conn.execute(update(ConversationEntry).where(ConversationEntry.Id == reply.entry_id).values(**values))


def mark_reply_retry(conn: Connection, entry_id: str, error: str, next_attempt: datetime) -> None:
    """Due again at `next_attempt` (the entry stays queued)."""
    conn.execute(update(ReplyOutbox).where(ReplyOutbox.EntryId == entry_id)
                 .values(LastError=_error(error), NextAttemptAt=next_attempt))


def mark_reply_failed(conn: Connection, reply: OutgoingReply, error: str, now: datetime) -> None:
    """Given up (refused, or out of attempts): the row and its entry read failed, the case feed says why."""
    conn.execute(update(ReplyOutbox).where(ReplyOutbox.EntryId == reply.entry_id)
                 .values(Status="failed", LastError=_error(error)))
    conn.execute(update(ConversationEntry).where(ConversationEntry.Id == reply.entry_id).values(Status="failed"))
    attempts = f"{reply.attempts} attempt{'s' if reply.attempts != 1 else ''}"
    _feed(conn, reply.case_id, "MessagingEvent", f"{_name(reply.channel)} reply to {reply.to} failed after "
                                                 f"{attempts}: {error}", reply.entry_id, None, now)


# -- delivery statuses -------------------------------------------------------------------------------
def apply_delivery_statuses(conn: Connection, updates: Sequence[DeliveryUpdate], now: datetime,
                            advance: Advance) -> int:
    """Move each named reply's status forward; how many named one of ours. A status for an id no reply
    carries yet is kept (`delivery_receipt`) until `settle_receipts` finds its reply."""
    applied = 0
    for u in updates:
        key, source = u.message_id[:765], u.source[:20]
        entry = _agent_entry(conn, source, key)
        if entry is not None:
            _move(conn, entry, u.status, u.error_code, u.error, now, advance)
            applied += 1
            continue
        R = DeliveryReceipt
        old = conn.execute(select(R.Status).where(R.Source == source, R.MessageIdentifier == key)).scalar()
        status = advance(old, u.status)
        error = {"ErrorCode": (u.error_code or "")[:40] or None, "Error": (u.error or "")[:1000] or None} \
            if status == "failed" and old != "failed" else {}
        if old is None:
            conn.execute(insert(R).values(Source=source, MessageIdentifier=key, Status=status, ReceivedAt=now,
                                          **({"ErrorCode": None, "Error": None} | error)))
        else:
            conn.execute(update(R).where(R.Source == source, R.MessageIdentifier == key)
                         .values(Status=status, ReceivedAt=now, **error))
    return applied


def settle_receipts(conn: Connection, now: datetime, advance: Advance) -> int:
    """Apply the kept statuses whose reply now carries their id, and forget those older than RECEIPT_DAYS
    (a message not of ours: another system sending through the same account); how many were applied."""
    R, E = DeliveryReceipt, ConversationEntry
    conn.execute(delete(R).where(R.ReceivedAt < now - timedelta(days=RECEIPT_DAYS)))
    found = conn.execute(select(R.Source, R.MessageIdentifier, R.Status, R.ErrorCode, R.Error)
                         .join(E, (E.MessageIdentifier == R.MessageIdentifier) & (E.Source == R.Source))
                         .where(E.ActorType == "Agent")).all()
    for receipt in found:
        entry = _agent_entry(conn, receipt.Source, receipt.MessageIdentifier)
        if entry is not None:
            _move(conn, entry, receipt.Status, receipt.ErrorCode, receipt.Error, now, advance)
        conn.execute(delete(R).where(R.Source == receipt.Source, R.MessageIdentifier == receipt.MessageIdentifier))
    return len(found)


def _agent_entry(conn: Connection, source: str, message_id: str) -> AnyRow | None:
    E = ConversationEntry
    return conn.execute(select(E.Id, E.ParentId, E.Status, E.Channel, E.Recipient)
                        .where(E.MessageIdentifier == message_id, E.Source == source, E.ActorType == "Agent")
                        .limit(1)).first()


def _move(conn: Connection, entry: AnyRow, status: str, code: str | None, error: str | None, now: datetime,
          advance: Advance) -> None:
    new = advance(entry.Status, status)
    if new == entry.Status:
        return
    conn.execute(update(ConversationEntry).where(ConversationEntry.Id == entry.Id).values(Status=new))
    if new == "failed":
        why = f"[{code}] " if code else ""
        _feed(conn, entry.ParentId, "MessagingEvent", f"{_name(entry.Channel)} reply to {entry.Recipient} was not "
                                                      f"delivered: {why}{error or 'the provider failed it'}",
              entry.Id, None, now)


# -- shared ------------------------------------------------------------------------------------------
def _case(conn: Connection, case_id: str) -> AnyRow:
    case = conn.execute(select(Case.Id, Case.CaseNumber, Case.Subject, Case.RoutingAddress, Case.SuppliedEmail)
                        .where(Case.Id == case_id)).first()
    if case is None:
        raise ReplyRefusedError("no_case", f"no case has the id {case_id}", ["ParentId"])
    return case


def _who(conn: Connection, actor_id: str | None, *, bare: bool = False) -> str:
    """The user as the feed names them (`Ann Agent (005…)`), or as an entry's actor (`Ann Agent`)."""
    if actor_id is None:
        return "casegate"
    name = conn.execute(select(User.Name).where(User.Id == actor_id)).scalar()
    if not name:
        return actor_id
    return name if bare else f"{name} ({actor_id})"


def _feed(conn: Connection, case_id: str, kind: str, body: str, related: str, actor_id: str | None,
          now: datetime) -> None:
    conn.execute(insert(CaseFeed).values(
        Id=new_id("CaseFeed"), ParentId=case_id, Type=kind, Field=None, OldValue=None, NewValue=None,
        Body=body.replace("\x00", "")[:4000], RelatedRecordId=related, Rule=None, Seq=0, CreatedById=actor_id,
        CreatedDate=now))


def _touch(conn: Connection, case_id: str, actor_id: str | None, now: datetime) -> None:
    conn.execute(update(Case).where(Case.Id == case_id).values(LastModifiedDate=now, LastModifiedById=actor_id))


def _name(channel: str) -> str:
    return ORIGINS.get(channel, channel)


def _error(text: str) -> str:
    return text.replace("\x00", "")[:4000]


def _text(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _json_object(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _template_of(text: str | None) -> ReplyTemplate | None:
    data = _json_object(text)
    if not data.get("name"):
        return None
    return ReplyTemplate(str(data["name"]), str(data.get("language") or "en_US"),
                         tuple(str(p) for p in data.get("parameters") or ()))
