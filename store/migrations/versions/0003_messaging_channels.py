"""messaging channels

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 20:31:42.607011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pending_message",
        sa.Column("Id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("Channel", sa.String(length=20), nullable=False),
        sa.Column("ExternalId", sa.String(length=765), nullable=False),
        sa.Column("Reason", sa.String(length=255), nullable=False),
        sa.Column("Payload", sa.Text(), nullable=False),
        sa.Column("CreatedDate", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("Id", name=op.f("pk_pending_message")),
    )
    with op.batch_alter_table("pending_message", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_pending_message_CreatedDate"), ["CreatedDate"], unique=False)

    op.create_table(
        "contact_handle",
        sa.Column("Id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("Channel", sa.String(length=20), nullable=False),
        sa.Column("Handle", sa.String(length=255), nullable=False),
        sa.Column("ContactId", sa.String(length=18), nullable=False),
        sa.Column("CreatedDate", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["ContactId"], ["contact.Id"], name=op.f("fk_contact_handle_ContactId_contact")),
        sa.PrimaryKeyConstraint("Id", name=op.f("pk_contact_handle")),
        sa.UniqueConstraint("Channel", "Handle", name=op.f("uq_contact_handle_Channel")),
    )
    with op.batch_alter_table("contact_handle", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_contact_handle_ContactId"), ["ContactId"], unique=False)

    op.create_table(
        "conversation_entry",
        sa.Column("Id", sa.String(length=18), nullable=False),
        sa.Column("ParentId", sa.String(length=18), nullable=False),
        sa.Column("Channel", sa.String(length=20), nullable=False),
        sa.Column("EntryType", sa.String(length=20), nullable=False),
        sa.Column("ActorType", sa.String(length=20), nullable=False),
        sa.Column("ActorName", sa.String(length=255), nullable=True),
        sa.Column("ActorIdentifier", sa.String(length=255), nullable=True),
        sa.Column("Message", sa.Text(), nullable=True),
        sa.Column("MessageIdentifier", sa.String(length=765), nullable=False),
        sa.Column("Recipient", sa.String(length=255), nullable=True),
        sa.Column("MediaUrls", sa.Text(), nullable=True),
        sa.Column("Details", sa.Text(), nullable=True),
        sa.Column("EntryTime", sa.DateTime(timezone=True), nullable=False),
        sa.Column("CreatedDate", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["ParentId"], ["case.Id"], name=op.f("fk_conversation_entry_ParentId_case")),
        sa.PrimaryKeyConstraint("Id", name=op.f("pk_conversation_entry")),
    )
    with op.batch_alter_table("conversation_entry", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_conversation_entry_MessageIdentifier"), ["MessageIdentifier"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_conversation_entry_ParentId"), ["ParentId"], unique=False)

    with op.batch_alter_table("contact", schema=None) as batch_op:
        batch_op.add_column(sa.Column("PhoneKey", sa.String(length=40), nullable=True))
        batch_op.create_index(batch_op.f("ix_contact_PhoneKey"), ["PhoneKey"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("contact", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_contact_PhoneKey"))
        batch_op.drop_column("PhoneKey")

    with op.batch_alter_table("conversation_entry", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_conversation_entry_ParentId"))
        batch_op.drop_index(batch_op.f("ix_conversation_entry_MessageIdentifier"))

    op.drop_table("conversation_entry")
    with op.batch_alter_table("contact_handle", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_contact_handle_ContactId"))

    op.drop_table("contact_handle")
    with op.batch_alter_table("pending_message", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pending_message_CreatedDate"))

    op.drop_table("pending_message")
