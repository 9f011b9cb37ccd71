"""The case store's tables as SQLAlchemy 2.0 typed models, with Salesforce Service Cloud field names.

Columns carry the Salesforce API names (CaseNumber, OwnerId, ...) so the JSON the CLI and API give out
is the Salesforce shape; lengths follow `reference/salesforce-case.md`. Ids are 18-character strings
with the Salesforce key prefix of their object (500 Case, 003 Contact, ...), made by `store.ids`.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, ClassVar, Final

from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: DateTime(timezone=True)}


def _id() -> Mapped[str]:
    return mapped_column("Id", String(18), primary_key=True)


class Account(Base):
    __tablename__ = "account"
    Id: Mapped[str] = _id()
    Name: Mapped[str] = mapped_column(String(255))
    Domain: Mapped[str | None] = mapped_column(String(255), index=True)
    CreatedDate: Mapped[datetime]


class Contact(Base):
    __tablename__ = "contact"
    Id: Mapped[str] = _id()
    AccountId: Mapped[str | None] = mapped_column(ForeignKey("account.Id"))
    FirstName: Mapped[str | None] = mapped_column(String(40))
    LastName: Mapped[str] = mapped_column(String(80))
    Email: Mapped[str | None] = mapped_column(String(80))
    EmailKey: Mapped[str | None] = mapped_column(String(320), index=True)
    """The normalised (lower-case) address contacts are matched by."""
    Phone: Mapped[str | None] = mapped_column(String(40))
    MobilePhone: Mapped[str | None] = mapped_column(String(40))
    PhoneKey: Mapped[str | None] = mapped_column(String(40), index=True)
    """The phone number in E.164 that contacts are matched by (SMS, WhatsApp and calls alike)."""
    CreatedDate: Mapped[datetime]


class ContactHandle(Base):
    """A contact's identity on a messaging channel (Telegram user id, Messenger PSID, X user id ...)."""

    __tablename__ = "contact_handle"
    __table_args__ = (UniqueConstraint("Channel", "Handle"),)
    Id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    Channel: Mapped[str] = mapped_column(String(20))
    Handle: Mapped[str] = mapped_column(String(255))
    ContactId: Mapped[str] = mapped_column(ForeignKey("contact.Id"), index=True)
    CreatedDate: Mapped[datetime]


class Asset(Base):
    """A product a customer has (Salesforce's Asset), which a case can be about (Case.AssetId)."""

    __tablename__ = "asset"
    Id: Mapped[str] = _id()
    Name: Mapped[str] = mapped_column(String(255))
    AccountId: Mapped[str | None] = mapped_column(ForeignKey("account.Id"), index=True)
    ContactId: Mapped[str | None] = mapped_column(ForeignKey("contact.Id"), index=True)
    SerialNumber: Mapped[str | None] = mapped_column(String(80), index=True)
    Status: Mapped[str | None] = mapped_column(String(40))
    InstallDate: Mapped[date | None]
    Description: Mapped[str | None] = mapped_column(Text)
    CreatedDate: Mapped[datetime]
    LastModifiedDate: Mapped[datetime]


class User(Base):
    __tablename__ = "user"
    Id: Mapped[str] = _id()
    Name: Mapped[str] = mapped_column(String(121))
    Email: Mapped[str] = mapped_column(String(128), unique=True)
    IsActive: Mapped[bool] = mapped_column(Boolean, default=True)
    Role: Mapped[str] = mapped_column(String(20), default="agent", server_default="agent")
    """What the user may do (rules/access.py): integration, agent, supervisor or admin."""
    CreatedDate: Mapped[datetime]


class ApiToken(Base):
    """A bearer token of a user. Only its SHA-256 is kept (a token is 256 random bits, so a fast hash
    is as safe as a slow one); the token itself is shown once, when it is made."""

    __tablename__ = "api_token"
    TokenHash: Mapped[str] = mapped_column(String(64), primary_key=True)
    UserId: Mapped[str] = mapped_column(ForeignKey("user.Id"), index=True)
    Kind: Mapped[str] = mapped_column(String(10))
    """api (made by `casegate users token`, no expiry), access (OAuth 2.0, expires), refresh (OAuth 2.0)."""
    Hint: Mapped[str] = mapped_column(String(12))
    """The token's first characters, to tell tokens apart in a listing."""
    CreatedDate: Mapped[datetime]
    ExpiresDate: Mapped[datetime | None]
    RevokedDate: Mapped[datetime | None]
    LastUsedDate: Mapped[datetime | None]


class Queue(Base):
    """A Salesforce queue (Group of Type Queue): a case owner that is a team, not a person."""

    __tablename__ = "queue"
    Id: Mapped[str] = _id()
    Name: Mapped[str] = mapped_column(String(80), unique=True)
    Email: Mapped[str | None] = mapped_column(String(80))
    CreatedDate: Mapped[datetime]


class QueueMember(Base):
    """A user's membership of a queue (Salesforce's GroupMember): an agent works the queue's cases."""

    __tablename__ = "queue_member"
    __table_args__ = (UniqueConstraint("QueueId", "UserId"),)
    Id: Mapped[str] = _id()
    QueueId: Mapped[str] = mapped_column(ForeignKey("queue.Id"), index=True)
    UserId: Mapped[str] = mapped_column(ForeignKey("user.Id"), index=True)
    CreatedDate: Mapped[datetime]


class Case(Base):
    __tablename__ = "case"
    __table_args__ = (Index("ix_case_Status_IsClosed", "IsClosed", "Status"),
                      # an owner's open cases, newest first: the API's common lookup (migration 0011)
                      Index("ix_case_OwnerId_IsClosed_CreatedDate", "OwnerId", "IsClosed", "CreatedDate"))
    # identity
    Id: Mapped[str] = _id()
    CaseNumber: Mapped[str] = mapped_column(String(30), unique=True)
    Subject: Mapped[str | None] = mapped_column(String(255))
    Description: Mapped[str | None] = mapped_column(Text)
    Type: Mapped[str | None] = mapped_column(String(40))
    Reason: Mapped[str | None] = mapped_column(String(40))
    Language: Mapped[str | None] = mapped_column(String(40))
    # status and lifecycle
    Status: Mapped[str] = mapped_column(String(40))
    Priority: Mapped[str] = mapped_column(String(40))
    IsClosed: Mapped[bool] = mapped_column(Boolean, default=False)
    IsClosedOnCreate: Mapped[bool] = mapped_column(Boolean, default=False)
    ClosedDate: Mapped[datetime | None]
    IsEscalated: Mapped[bool] = mapped_column(Boolean, default=False)
    # people
    OwnerId: Mapped[str] = mapped_column(String(18), index=True)
    """A User Id (005…) or a Queue Id (00G…)."""
    ContactId: Mapped[str | None] = mapped_column(ForeignKey("contact.Id"), index=True)
    AccountId: Mapped[str | None] = mapped_column(ForeignKey("account.Id"), index=True)
    SuppliedName: Mapped[str | None] = mapped_column(String(80))
    SuppliedEmail: Mapped[str | None] = mapped_column(String(80))
    SuppliedPhone: Mapped[str | None] = mapped_column(String(40))
    SuppliedCompany: Mapped[str | None] = mapped_column(String(80))
    # source
    Origin: Mapped[str | None] = mapped_column(String(40))
    SourceId: Mapped[str | None] = mapped_column(String(18))
    """The message the case was opened from (an EmailMessage Id for Email-to-Case)."""
    ConversationKey: Mapped[str | None] = mapped_column(String(320), index=True)
    RoutingAddress: Mapped[str | None] = mapped_column(String(320))
    # SLA
    EntitlementId: Mapped[str | None] = mapped_column(String(18))
    BusinessHoursId: Mapped[str | None] = mapped_column(String(18))
    SlaStartDate: Mapped[datetime | None]
    SlaExitDate: Mapped[datetime | None]
    IsStopped: Mapped[bool] = mapped_column(Boolean, default=False)
    StopStartDate: Mapped[datetime | None]
    MilestoneStatus: Mapped[str | None] = mapped_column(String(40))
    # outcomes and hierarchy
    Comments: Mapped[str | None] = mapped_column(String(4000))
    ParentId: Mapped[str | None] = mapped_column(ForeignKey("case.Id"), index=True)
    MasterRecordId: Mapped[str | None] = mapped_column(String(18))
    AssetId: Mapped[str | None] = mapped_column(String(18))
    Resolution: Mapped[str | None] = mapped_column(Text)
    """How the case was resolved (up to 32,000 characters); `[case] close_requires` it by default."""
    SatisfactionScore: Mapped[int | None] = mapped_column(Integer)
    """The customer's rating of the resolution, 1 (worst) to 5."""
    SatisfactionComment: Mapped[str | None] = mapped_column(String(1000))
    # audit
    CreatedDate: Mapped[datetime] = mapped_column(index=True)
    CreatedById: Mapped[str | None] = mapped_column(String(18))
    """The User who created the case through the API; None for a case a message opened."""
    LastModifiedDate: Mapped[datetime]
    LastModifiedById: Mapped[str | None] = mapped_column(String(18))
    """The User who last changed the case through the API; None when a message last changed it."""


class EmailStatus:
    """EmailMessage.Status values: Salesforce's picklist codes, and two of casegate's own for the mail it
    sends itself, whose Status follows delivery — Queued, then Sent once the relay accepted it, or
    Failed when the outbox gave up (the case feed then says why)."""

    NEW: Final = "0"
    READ: Final = "1"
    REPLIED: Final = "2"
    SENT: Final = "3"
    FORWARDED: Final = "4"
    DRAFT: Final = "5"
    QUEUED: Final = "Q"
    """In the outbox: not yet accepted by the relay (casegate's own value)."""
    FAILED: Final = "F"
    """The outbox gave up on it: refused for good or out of attempts (casegate's own value)."""


class EmailMessage(Base):
    __tablename__ = "email_message"
    Id: Mapped[str] = _id()
    ParentId: Mapped[str] = mapped_column(ForeignKey("case.Id"), index=True)
    Incoming: Mapped[bool] = mapped_column(Boolean)
    Status: Mapped[str] = mapped_column(String(1))
    """0 New, 1 Read, 2 Replied, 3 Sent, 4 Forwarded, 5 Draft (Salesforce codes); Q Queued and F Failed
    for mail casegate sends (`EmailStatus`). Incoming mail is 0; outgoing mail Q, then 3 or F."""
    FromAddress: Mapped[str | None] = mapped_column(String(1000))
    FromName: Mapped[str | None] = mapped_column(String(1000))
    ToAddress: Mapped[str | None] = mapped_column(String(4000))
    CcAddress: Mapped[str | None] = mapped_column(String(4000))
    BccAddress: Mapped[str | None] = mapped_column(String(4000))
    Subject: Mapped[str | None] = mapped_column(String(3000))
    TextBody: Mapped[str | None] = mapped_column(Text)
    HtmlBody: Mapped[str | None] = mapped_column(Text)
    Headers: Mapped[str | None] = mapped_column(Text)
    MessageIdentifier: Mapped[str | None] = mapped_column(String(765), index=True)
    ThreadIdentifier: Mapped[str | None] = mapped_column(String(765))
    ClientThreadIdentifier: Mapped[str | None] = mapped_column(String(765))
    InReplyTo: Mapped[str | None] = mapped_column(String(765))
    References: Mapped[str | None] = mapped_column(Text)
    ReplyToEmailMessageId: Mapped[str | None] = mapped_column(String(18))
    MessageDate: Mapped[datetime | None]
    HasAttachment: Mapped[bool] = mapped_column(Boolean, default=False)
    IsBounced: Mapped[bool] = mapped_column(Boolean, default=False)
    RawSha256: Mapped[str | None] = mapped_column(String(64))
    """The raw original in the blob store."""
    CreatedDate: Mapped[datetime]


class ConversationEntry(Base):
    """A message that is not an email — SMS, WhatsApp, Messenger, Instagram, Telegram, X, chat, a web form
    submission or a phone call — on its case's timeline (Salesforce keeps these as messaging sessions'
    conversation entries, and calls as call activities)."""

    __tablename__ = "conversation_entry"
    Id: Mapped[str] = _id()
    ParentId: Mapped[str] = mapped_column(ForeignKey("case.Id"), index=True)
    Channel: Mapped[str] = mapped_column(String(20))
    EntryType: Mapped[str] = mapped_column(String(20))
    """Text, Media, Form or Call."""
    ActorType: Mapped[str] = mapped_column(String(20))
    """EndUser (the customer) or Agent."""
    ActorName: Mapped[str | None] = mapped_column(String(255))
    ActorIdentifier: Mapped[str | None] = mapped_column(String(255))
    """The customer's phone number (E.164), handle or email on this channel."""
    Message: Mapped[str | None] = mapped_column(Text)
    MessageIdentifier: Mapped[str] = mapped_column(String(765), index=True)
    """The provider's id of the message (MessageSid, wamid, update id, call id ...)."""
    Recipient: Mapped[str | None] = mapped_column(String(255))
    """Our number, page or account the message was sent to."""
    MediaUrls: Mapped[str | None] = mapped_column(Text)
    """JSON list of the media the message carried."""
    Details: Mapped[str | None] = mapped_column(Text)
    """JSON object of channel facts (call duration, disposition, agent, recording URL ...)."""
    Source: Mapped[str | None] = mapped_column(String(20))
    """Who delivered it (twilio, meta, telegram, x, chat, cti ...); for an agent's reply, the provider it
    goes out through."""
    Status: Mapped[str | None] = mapped_column(String(10))
    """An agent's reply: its delivery status, which only moves forward — queued, sent, delivered, read — or
    failed. None for the customer's messages."""
    EntryTime: Mapped[datetime]
    CreatedDate: Mapped[datetime]


class PendingMessage(Base):
    """A message held back (e.g. over the web form's daily cap): kept whole, turned into a case later."""

    __tablename__ = "pending_message"
    Id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    Channel: Mapped[str] = mapped_column(String(20))
    ExternalId: Mapped[str] = mapped_column(String(765))
    Reason: Mapped[str] = mapped_column(String(255))
    Payload: Mapped[str] = mapped_column(Text)
    """The message as JSON (store.inbound)."""
    CreatedDate: Mapped[datetime] = mapped_column(index=True)


class CaseComment(Base):
    __tablename__ = "case_comment"
    Id: Mapped[str] = _id()
    ParentId: Mapped[str] = mapped_column(ForeignKey("case.Id"), index=True)
    CommentBody: Mapped[str] = mapped_column(String(4000))
    IsPublished: Mapped[bool] = mapped_column(Boolean, default=False)
    """True = visible to the customer (public); False = internal."""
    CreatedById: Mapped[str | None] = mapped_column(String(18))
    CreatedDate: Mapped[datetime]


class CaseFeed(Base):
    """The case timeline: every message and every field change, in order."""

    __tablename__ = "case_feed"
    Id: Mapped[str] = _id()
    ParentId: Mapped[str] = mapped_column(ForeignKey("case.Id"), index=True)
    Type: Mapped[str] = mapped_column(String(40))
    """CaseCreated, EmailMessageEvent, TrackedChange, AssignmentRule, ThreadingRule, CaseCommentPost,
    MessagingEvent, CallEvent, OutboundMail (mail casegate did not send, or gave up sending), CaseMerged."""
    Field: Mapped[str | None] = mapped_column(String(80))
    OldValue: Mapped[str | None] = mapped_column(String(255))
    NewValue: Mapped[str | None] = mapped_column(String(255))
    Body: Mapped[str | None] = mapped_column(String(4000))
    RelatedRecordId: Mapped[str | None] = mapped_column(String(18))
    Rule: Mapped[str | None] = mapped_column(String(80))
    """The rule whose decision this entry applies (`closed_case.reopen_within_days`, `assignment.entries`,
    `acknowledgement.send` ...: rules/), its reason in Body; None for an entry no rule decided."""
    Seq: Mapped[int] = mapped_column(Integer, default=0)
    """Order of entries written in the same instant."""
    CreatedById: Mapped[str | None] = mapped_column(String(18))
    """The User whose change the entry records; None for what the daemon did on its own."""
    CreatedDate: Mapped[datetime] = mapped_column(index=True)


class Attachment(Base):
    __tablename__ = "attachment"
    Id: Mapped[str] = _id()
    ParentId: Mapped[str] = mapped_column(ForeignKey("case.Id"), index=True)
    EmailMessageId: Mapped[str | None] = mapped_column(ForeignKey("email_message.Id"))
    Name: Mapped[str] = mapped_column(String(255))
    ContentType: Mapped[str | None] = mapped_column(String(120))
    BodyLength: Mapped[int] = mapped_column(Integer)
    Sha256: Mapped[str] = mapped_column(String(64))
    ContentId: Mapped[str | None] = mapped_column(String(255))
    IsInline: Mapped[bool] = mapped_column(Boolean, default=False)
    CreatedDate: Mapped[datetime]


class ThreadReference(Base):
    """A Message-ID known to belong to a case: its own messages' ids and every id they referenced
    (so two replies to a message we never saw — a "ghost" parent — meet on the same case)."""

    __tablename__ = "thread_reference"
    __table_args__ = (UniqueConstraint("MessageKey", "CaseId"),)
    Id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    MessageKey: Mapped[str] = mapped_column(String(765), index=True)
    CaseId: Mapped[str] = mapped_column(ForeignKey("case.Id"))
    CreatedDate: Mapped[datetime]


UNNORMALISED_ID = '"MessageIdHeader" IS NOT NULL AND "MessageIdentifier" IS NULL'
"""The ledger rows of emails whose Message-ID header names no id (empty, `<>`, words with spaces)."""


class ProcessedMessage(Base):
    """The ledger that makes processing idempotent: one row per (channel, external id) ever handled."""

    __tablename__ = "processed_message"
    Channel: Mapped[str] = mapped_column(String(20), primary_key=True)
    ExternalId: Mapped[str] = mapped_column(String(765), primary_key=True)
    EnvelopeId: Mapped[str] = mapped_column(String(36))
    __table_args__ = (Index("ix_processed_message_sender_received", "Sender", "ReceivedAt"),
                      Index("ix_processed_message_unnormalised_id", "MessageIdHeader",
                            sqlite_where=text(UNNORMALISED_ID), postgresql_where=text(UNNORMALISED_ID)))
    Outcome: Mapped[str] = mapped_column(String(20))
    """created, threaded, suppressed (kept, opened nothing: see Reason) or dead-lettered (see Reason;
    replaced by the real outcome when a replay succeeds)."""
    Rule: Mapped[str | None] = mapped_column(String(40))
    """Which threading rule placed it (token, in-reply-to, references, thread-index, bounce, new)."""
    Reason: Mapped[str | None] = mapped_column(String(1000))
    """Why it was suppressed or dead-lettered, or the closed-case policy that applied."""
    CaseId: Mapped[str | None] = mapped_column(String(18), index=True)
    EmailMessageId: Mapped[str | None] = mapped_column(String(18))
    Sender: Mapped[str | None] = mapped_column(String(320))
    Subject: Mapped[str | None] = mapped_column(String(255))
    MessageIdentifier: Mapped[str | None] = mapped_column(String(765), index=True)
    """The normalised Message-ID of an email (`store.message_ids.message_id`)."""
    MessageIdHeader: Mapped[str | None] = mapped_column(String(255))
    """An email's Message-ID header as written (cut at 255 characters); "" for an empty one. Only the
    rows whose header names no id are indexed (`ix_processed_message_unnormalised_id`): every other
    header is found through its normalised id."""
    RawSha256: Mapped[str | None] = mapped_column(String(64))
    ReceivedAt: Mapped[datetime] = mapped_column(index=True)
    ProcessedAt: Mapped[datetime]


class Outbox(Base):
    """Mail casegate sends (acknowledgements, notices): written in the same transaction as the case
    and its outgoing EmailMessage, delivered afterwards by the outbox sender with retry."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "Status", "NextAttemptAt"),
                      Index("ix_outbox_to_created", "ToAddress", "CreatedDate"))
    Id: Mapped[str] = _id()
    Kind: Mapped[str] = mapped_column(String(20))
    """acknowledgement or notice."""
    CaseId: Mapped[str] = mapped_column(ForeignKey("case.Id"), index=True)
    EmailMessageId: Mapped[str] = mapped_column(String(18))
    FromAddress: Mapped[str] = mapped_column(String(320))
    ToAddress: Mapped[str] = mapped_column(String(320))
    MessageIdentifier: Mapped[str] = mapped_column(String(765))
    Raw: Mapped[bytes] = mapped_column(LargeBinary)
    Status: Mapped[str] = mapped_column(String(10))
    """queued, sent or failed (gave up after the configured attempts; still listed). Its EmailMessage's
    Status follows it (Q, 3, F), changed in the same transaction."""
    Attempts: Mapped[int] = mapped_column(Integer, default=0)
    NextAttemptAt: Mapped[datetime]
    LastError: Mapped[str | None] = mapped_column(Text)
    CreatedDate: Mapped[datetime]
    SentDate: Mapped[datetime | None]


class Counter(Base):
    """Named sequences (the CaseNumber auto-number); incremented inside the writing transaction,
    so a rolled-back transaction gives its numbers back and numbers have no gaps."""

    __tablename__ = "counter"
    Name: Mapped[str] = mapped_column(String(40), primary_key=True)
    Value: Mapped[int] = mapped_column(Integer)


class ReplyOutbox(Base):
    """Agents' replies on messaging channels (store.agent_replies): one row per outgoing ConversationEntry,
    written in the transaction that writes the entry and sent by the reply sender (worker role) through the
    conversation's provider, with retry. Mail goes through `outbox` instead (SMTP, another payload)."""

    __tablename__ = "reply_outbox"
    __table_args__ = (Index("ix_reply_outbox_due", "Status", "NextAttemptAt"),)
    EntryId: Mapped[str] = mapped_column(ForeignKey("conversation_entry.Id"), primary_key=True)
    CaseId: Mapped[str] = mapped_column(ForeignKey("case.Id"), index=True)
    Channel: Mapped[str] = mapped_column(String(20))
    Provider: Mapped[str] = mapped_column(String(20))
    """The route's provider (twilio, meta, telegram, x, chat): with Channel, which sender sends it."""
    Recipient: Mapped[str] = mapped_column(String(255))
    """The customer on the channel: E.164 number, PSID/IGSID, chat id, user id or visitor id."""
    SenderId: Mapped[str | None] = mapped_column(String(255))
    """Ours, where the customer wrote to one of several: the Twilio number, the WhatsApp phone number id."""
    Thread: Mapped[str | None] = mapped_column(String(255))
    """The conversation within the channel: a Telegram forum topic, the chat widget's conversation id."""
    Template: Mapped[str | None] = mapped_column(Text)
    """JSON {"name", "language", "parameters"}: an approved template sent instead of the entry's text."""
    Status: Mapped[str] = mapped_column(String(10))
    """queued, sent (the provider took it) or failed (refused, or out of attempts: still listed)."""
    Attempts: Mapped[int] = mapped_column(Integer, default=0)
    NextAttemptAt: Mapped[datetime]
    LastError: Mapped[str | None] = mapped_column(Text)
    CreatedDate: Mapped[datetime]
    SentDate: Mapped[datetime | None]


class DeliveryReceipt(Base):
    """A provider's delivery status for a message id no reply carries yet (the status arrived before the
    reply sender recorded the provider's answer): applied, and removed, when it does; kept 7 days."""

    __tablename__ = "delivery_receipt"
    Source: Mapped[str] = mapped_column(String(20), primary_key=True)
    MessageIdentifier: Mapped[str] = mapped_column(String(765), primary_key=True)
    Status: Mapped[str] = mapped_column(String(10))
    """The furthest status reported so far (queued, sent, delivered, read, failed)."""
    ErrorCode: Mapped[str | None] = mapped_column(String(40))
    Error: Mapped[str | None] = mapped_column(String(1000))
    ReceivedAt: Mapped[datetime] = mapped_column(index=True)


class PublishStatus:
    """A knowledge article's PublishStatus (Salesforce's values)."""

    DRAFT: Final = "Draft"
    ONLINE: Final = "Online"
    """Published: what suggestions offer."""
    ARCHIVED: Final = "Archived"


class KnowledgeArticle(Base):
    """A Salesforce Knowledge article (the Knowledge__kav object). casegate keeps one version per article:
    an edit changes it in place, and publishing it again counts VersionNumber up. Its words are searched
    through full-text objects migration 0009 makes beside the table (`store.knowledge`)."""

    __tablename__ = "knowledge_article"
    Id: Mapped[str] = _id()
    """The version's id (ka0…)."""
    KnowledgeArticleId: Mapped[str] = mapped_column(String(18), unique=True)
    """The article's id, the same for all its versions (kA0…): what CaseArticle names."""
    ArticleNumber: Mapped[str] = mapped_column(String(30), unique=True)
    """Auto-numbered, nine digits (000001000 the first)."""
    Title: Mapped[str] = mapped_column(String(255))
    Summary: Mapped[str | None] = mapped_column(String(1000))
    UrlName: Mapped[str] = mapped_column(String(255), unique=True)
    Body__c: Mapped[str | None] = mapped_column(Text)
    """The article's text (rich text: HTML). Salesforce's article types have no standard body field: each
    org adds a custom one, so this one carries a custom field's `__c` suffix."""
    PublishStatus: Mapped[str] = mapped_column(String(30))
    """Draft, Online (published) or Archived."""
    Language: Mapped[str] = mapped_column(String(40))
    """A locale code, en_US by default."""
    VersionNumber: Mapped[int] = mapped_column(Integer, default=1)
    CreatedDate: Mapped[datetime]
    CreatedById: Mapped[str | None] = mapped_column(String(18))
    LastModifiedDate: Mapped[datetime]
    LastModifiedById: Mapped[str | None] = mapped_column(String(18))
    LastPublishedDate: Mapped[datetime | None]


class CaseArticle(Base):
    """A knowledge article attached to a case (Salesforce's CaseArticle), e.g. as its resolution. Never
    changed; attaching an article the case has already gives the existing record."""

    __tablename__ = "case_article"
    __table_args__ = (UniqueConstraint("CaseId", "KnowledgeArticleId"),)
    Id: Mapped[str] = _id()
    CaseId: Mapped[str] = mapped_column(ForeignKey("case.Id"))
    KnowledgeArticleId: Mapped[str] = mapped_column(ForeignKey("knowledge_article.KnowledgeArticleId"), index=True)
    KnowledgeArticleVersionId: Mapped[str] = mapped_column(String(18))
    """The version attached (the article's Id then)."""
    ArticleLanguage: Mapped[str] = mapped_column(String(40))
    ArticleVersionNumber: Mapped[int | None] = mapped_column(Integer)
    IsSharedByEmail: Mapped[bool] = mapped_column(Boolean, default=False)
    """The article was sent to the customer by email."""
    CreatedDate: Mapped[datetime]
    CreatedById: Mapped[str | None] = mapped_column(String(18))
