"""case store: cases, contacts, messages, feed, ledger

Revision ID: 0001
Revises:
Create Date: 2026-11-27 18:38:10.701220
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "account",
        sa.Column("Id", sa.String(length=18), nullable=False),
        sa.Column("Name", sa.String(length=255), nullable=False),
        sa.Column("Domain", sa.String(length=255), nullable=True),
        sa.Column("CreatedDate", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("Id", name=op.f("pk_account")),
    )
    with op.batch_alter_table("account", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_account_Domain"), ["Domain"], unique=False)

    counter = op.create_table(
        "counter",
        sa.Column("Name", sa.String(length=40), nullable=False),
        sa.Column("Value", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("Name", name=op.f("pk_counter")),
    )
    # CaseNumber: the last number given; the first case is 00001000.
    op.bulk_insert(counter, [{"Name": "CaseNumber", "Value": 999}])
    op.create_table(
        "processed_message",
        sa.Column("Channel", sa.String(length=20), nullable=False),
        sa.Column("ExternalId", sa.String(length=765), nullable=False),
        sa.Column("EnvelopeId", sa.String(length=36), nullable=False),
        sa.Column("Outcome", sa.String(length=20), nullable=False),
        sa.Column("Rule", sa.String(length=40), nullable=True),
        sa.Column("CaseId", sa.String(length=18), nullable=True),
        sa.Column("EmailMessageId", sa.String(length=18), nullable=True),
        sa.Column("ReceivedAt", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ProcessedAt", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("Channel", "ExternalId", name=op.f("pk_processed_message")),
    )
    with op.batch_alter_table("processed_message", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_processed_message_CaseId"), ["CaseId"], unique=False)

    op.create_table(
        "queue",
        sa.Column("Id", sa.String(length=18), nullable=False),
        sa.Column("Name", sa.String(length=80), nullable=False),
        sa.Column("Email", sa.String(length=80), nullable=True),
        sa.Column("CreatedDate", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("Id", name=op.f("pk_queue")),
        sa.UniqueConstraint("Name", name=op.f("uq_queue_Name")),
    )
    op.create_table(
        "user",
        sa.Column("Id", sa.String(length=18), nullable=False),
        sa.Column("Name", sa.String(length=121), nullable=False),
        sa.Column("Email", sa.String(length=128), nullable=False),
        sa.Column("IsActive", sa.Boolean(), nullable=False),
        sa.Column("CreatedDate", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("Id", name=op.f("pk_user")),
        sa.UniqueConstraint("Email", name=op.f("uq_user_Email")),
    )
    op.create_table(
        "contact",
        sa.Column("Id", sa.String(length=18), nullable=False),
        sa.Column("AccountId", sa.String(length=18), nullable=True),
        sa.Column("FirstName", sa.String(length=40), nullable=True),
        sa.Column("LastName", sa.String(length=80), nullable=False),
        sa.Column("Email", sa.String(length=80), nullable=True),
        sa.Column("EmailKey", sa.String(length=320), nullable=True),
        sa.Column("Phone", sa.String(length=40), nullable=True),
        sa.Column("MobilePhone", sa.String(length=40), nullable=True),
        sa.Column("CreatedDate", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["AccountId"], ["account.Id"], name=op.f("fk_contact_AccountId_account")),
        sa.PrimaryKeyConstraint("Id", name=op.f("pk_contact")),
    )
    with op.batch_alter_table("contact", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_contact_EmailKey"), ["EmailKey"], unique=False)

    op.create_table(
        "case",
        sa.Column("Id", sa.String(length=18), nullable=False),
        sa.Column("CaseNumber", sa.String(length=30), nullable=False),
        sa.Column("Subject", sa.String(length=255), nullable=True),
        sa.Column("Description", sa.Text(), nullable=True),
        sa.Column("Type", sa.String(length=40), nullable=True),
        sa.Column("Reason", sa.String(length=40), nullable=True),
        sa.Column("Language", sa.String(length=40), nullable=True),
        sa.Column("Status", sa.String(length=40), nullable=False),
        sa.Column("Priority", sa.String(length=40), nullable=False),
        sa.Column("IsClosed", sa.Boolean(), nullable=False),
        sa.Column("IsClosedOnCreate", sa.Boolean(), nullable=False),
        sa.Column("ClosedDate", sa.DateTime(timezone=True), nullable=True),
        sa.Column("IsEscalated", sa.Boolean(), nullable=False),
        sa.Column("OwnerId", sa.String(length=18), nullable=False),
        sa.Column("ContactId", sa.String(length=18), nullable=True),
        sa.Column("AccountId", sa.String(length=18), nullable=True),
        sa.Column("SuppliedName", sa.String(length=80), nullable=True),
        sa.Column("SuppliedEmail", sa.String(length=80), nullable=True),
        sa.Column("SuppliedPhone", sa.String(length=40), nullable=True),
        sa.Column("SuppliedCompany", sa.String(length=80), nullable=True),
        sa.Column("Origin", sa.String(length=40), nullable=True),
        sa.Column("SourceId", sa.String(length=18), nullable=True),
        sa.Column("ConversationKey", sa.String(length=320), nullable=True),
        sa.Column("RoutingAddress", sa.String(length=320), nullable=True),
        sa.Column("EntitlementId", sa.String(length=18), nullable=True),
        sa.Column("BusinessHoursId", sa.String(length=18), nullable=True),
        sa.Column("SlaStartDate", sa.DateTime(timezone=True), nullable=True),
        sa.Column("SlaExitDate", sa.DateTime(timezone=True), nullable=True),
        sa.Column("IsStopped", sa.Boolean(), nullable=False),
        sa.Column("StopStartDate", sa.DateTime(timezone=True), nullable=True),
        sa.Column("MilestoneStatus", sa.String(length=40), nullable=True),
        sa.Column("Comments", sa.String(length=4000), nullable=True),
        sa.Column("ParentId", sa.String(length=18), nullable=True),
        sa.Column("MasterRecordId", sa.String(length=18), nullable=True),
        sa.Column("AssetId", sa.String(length=18), nullable=True),
        sa.Column("CreatedDate", sa.DateTime(timezone=True), nullable=False),
        sa.Column("LastModifiedDate", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["AccountId"], ["account.Id"], name=op.f("fk_case_AccountId_account")),
        sa.ForeignKeyConstraint(["ContactId"], ["contact.Id"], name=op.f("fk_case_ContactId_contact")),
        sa.ForeignKeyConstraint(["ParentId"], ["case.Id"], name=op.f("fk_case_ParentId_case")),
        sa.PrimaryKeyConstraint("Id", name=op.f("pk_case")),
        sa.UniqueConstraint("CaseNumber", name=op.f("uq_case_CaseNumber")),
    )
    with op.batch_alter_table("case", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_case_AccountId"), ["AccountId"], unique=False)
        batch_op.create_index(batch_op.f("ix_case_ContactId"), ["ContactId"], unique=False)
        batch_op.create_index(batch_op.f("ix_case_ConversationKey"), ["ConversationKey"], unique=False)
        batch_op.create_index(batch_op.f("ix_case_CreatedDate"), ["CreatedDate"], unique=False)
        batch_op.create_index(batch_op.f("ix_case_OwnerId"), ["OwnerId"], unique=False)
        batch_op.create_index(batch_op.f("ix_case_ParentId"), ["ParentId"], unique=False)
        batch_op.create_index("ix_case_Status_IsClosed", ["IsClosed", "Status"], unique=False)

    op.create_table(
        "case_comment",
        sa.Column("Id", sa.String(length=18), nullable=False),
        sa.Column("ParentId", sa.String(length=18), nullable=False),
        sa.Column("CommentBody", sa.String(length=4000), nullable=False),
        sa.Column("IsPublished", sa.Boolean(), nullable=False),
        sa.Column("CreatedById", sa.String(length=18), nullable=True),
        sa.Column("CreatedDate", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["ParentId"], ["case.Id"], name=op.f("fk_case_comment_ParentId_case")),
        sa.PrimaryKeyConstraint("Id", name=op.f("pk_case_comment")),
    )
    with op.batch_alter_table("case_comment", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_case_comment_ParentId"), ["ParentId"], unique=False)

    op.create_table(
        "case_feed",
        sa.Column("Id", sa.String(length=18), nullable=False),
        sa.Column("ParentId", sa.String(length=18), nullable=False),
        sa.Column("Type", sa.String(length=40), nullable=False),
        sa.Column("Field", sa.String(length=80), nullable=True),
        sa.Column("OldValue", sa.String(length=255), nullable=True),
        sa.Column("NewValue", sa.String(length=255), nullable=True),
        sa.Column("Body", sa.String(length=4000), nullable=True),
        sa.Column("RelatedRecordId", sa.String(length=18), nullable=True),
        sa.Column("Seq", sa.Integer(), nullable=False),
        sa.Column("CreatedDate", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["ParentId"], ["case.Id"], name=op.f("fk_case_feed_ParentId_case")),
        sa.PrimaryKeyConstraint("Id", name=op.f("pk_case_feed")),
    )
    with op.batch_alter_table("case_feed", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_case_feed_CreatedDate"), ["CreatedDate"], unique=False)
        batch_op.create_index(batch_op.f("ix_case_feed_ParentId"), ["ParentId"], unique=False)

    op.create_table(
        "email_message",
        sa.Column("Id", sa.String(length=18), nullable=False),
        sa.Column("ParentId", sa.String(length=18), nullable=False),
        sa.Column("Incoming", sa.Boolean(), nullable=False),
        sa.Column("Status", sa.String(length=1), nullable=False),
        sa.Column("FromAddress", sa.String(length=1000), nullable=True),
        sa.Column("FromName", sa.String(length=1000), nullable=True),
        sa.Column("ToAddress", sa.String(length=4000), nullable=True),
        sa.Column("CcAddress", sa.String(length=4000), nullable=True),
        sa.Column("BccAddress", sa.String(length=4000), nullable=True),
        sa.Column("Subject", sa.String(length=3000), nullable=True),
        sa.Column("TextBody", sa.Text(), nullable=True),
        sa.Column("HtmlBody", sa.Text(), nullable=True),
        sa.Column("Headers", sa.Text(), nullable=True),
        sa.Column("MessageIdentifier", sa.String(length=765), nullable=True),
        sa.Column("ThreadIdentifier", sa.String(length=765), nullable=True),
        sa.Column("ClientThreadIdentifier", sa.String(length=765), nullable=True),
        sa.Column("InReplyTo", sa.String(length=765), nullable=True),
        sa.Column("References", sa.Text(), nullable=True),
        sa.Column("ReplyToEmailMessageId", sa.String(length=18), nullable=True),
        sa.Column("MessageDate", sa.DateTime(timezone=True), nullable=True),
        sa.Column("HasAttachment", sa.Boolean(), nullable=False),
        sa.Column("IsBounced", sa.Boolean(), nullable=False),
        sa.Column("RawSha256", sa.String(length=64), nullable=True),
        sa.Column("CreatedDate", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["ParentId"], ["case.Id"], name=op.f("fk_email_message_ParentId_case")),
        sa.PrimaryKeyConstraint("Id", name=op.f("pk_email_message")),
    )
    with op.batch_alter_table("email_message", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_email_message_MessageIdentifier"), ["MessageIdentifier"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_email_message_ParentId"), ["ParentId"], unique=False)

    op.create_table(
        "thread_reference",
        sa.Column("Id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("MessageKey", sa.String(length=765), nullable=False),
        sa.Column("CaseId", sa.String(length=18), nullable=False),
        sa.Column("CreatedDate", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["CaseId"], ["case.Id"], name=op.f("fk_thread_reference_CaseId_case")),
        sa.PrimaryKeyConstraint("Id", name=op.f("pk_thread_reference")),
        sa.UniqueConstraint("MessageKey", "CaseId", name=op.f("uq_thread_reference_MessageKey")),
    )
    with op.batch_alter_table("thread_reference", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_thread_reference_MessageKey"), ["MessageKey"], unique=False)

    op.create_table(
        "attachment",
        sa.Column("Id", sa.String(length=18), nullable=False),
        sa.Column("ParentId", sa.String(length=18), nullable=False),
        sa.Column("EmailMessageId", sa.String(length=18), nullable=True),
        sa.Column("Name", sa.String(length=255), nullable=False),
        sa.Column("ContentType", sa.String(length=120), nullable=True),
        sa.Column("BodyLength", sa.Integer(), nullable=False),
        sa.Column("Sha256", sa.String(length=64), nullable=False),
        sa.Column("ContentId", sa.String(length=255), nullable=True),
        sa.Column("IsInline", sa.Boolean(), nullable=False),
        sa.Column("CreatedDate", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["EmailMessageId"], ["email_message.Id"], name=op.f("fk_attachment_EmailMessageId_email_message")
        ),
        sa.ForeignKeyConstraint(["ParentId"], ["case.Id"], name=op.f("fk_attachment_ParentId_case")),
        sa.PrimaryKeyConstraint("Id", name=op.f("pk_attachment")),
    )
    with op.batch_alter_table("attachment", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_attachment_ParentId"), ["ParentId"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("attachment", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_attachment_ParentId"))

    op.drop_table("attachment")
    with op.batch_alter_table("thread_reference", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_thread_reference_MessageKey"))

    op.drop_table("thread_reference")
    with op.batch_alter_table("email_message", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_email_message_ParentId"))
        batch_op.drop_index(batch_op.f("ix_email_message_MessageIdentifier"))

    op.drop_table("email_message")
    with op.batch_alter_table("case_feed", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_case_feed_ParentId"))
        batch_op.drop_index(batch_op.f("ix_case_feed_CreatedDate"))

    op.drop_table("case_feed")
    with op.batch_alter_table("case_comment", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_case_comment_ParentId"))

    op.drop_table("case_comment")
    with op.batch_alter_table("case", schema=None) as batch_op:
        batch_op.drop_index("ix_case_Status_IsClosed")
        batch_op.drop_index(batch_op.f("ix_case_ParentId"))
        batch_op.drop_index(batch_op.f("ix_case_OwnerId"))
        batch_op.drop_index(batch_op.f("ix_case_CreatedDate"))
        batch_op.drop_index(batch_op.f("ix_case_ConversationKey"))
        batch_op.drop_index(batch_op.f("ix_case_ContactId"))
        batch_op.drop_index(batch_op.f("ix_case_AccountId"))

    op.drop_table("case")
    with op.batch_alter_table("contact", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_contact_EmailKey"))

    op.drop_table("contact")
    op.drop_table("user")
    op.drop_table("queue")
    with op.batch_alter_table("processed_message", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_processed_message_CaseId"))

    op.drop_table("processed_message")
    op.drop_table("counter")
    with op.batch_alter_table("account", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_account_Domain"))

    op.drop_table("account")
