"""agents' replies on messaging channels, queued and delivered through the providers

`conversation_entry` gains Source (who delivered the message: twilio, meta, telegram ...; for an agent's
reply the provider it goes out through) and Status (an agent's reply's delivery status: queued, sent,
delivered, read, failed; NULL for the customer's messages). Entries written before this revision get the
Source their channel and details say (WhatsApp via Meta carries a phone_number_id, via Twilio it does
not; a Twilio call carries a call_sid). `reply_outbox` holds each agent's reply until its provider took
it; `delivery_receipt` holds a provider's status that arrived before its reply was recorded as sent.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 13:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

entry = sa.table("conversation_entry", sa.column("Channel", sa.String()), sa.column("Details", sa.Text()),
                 sa.column("Source", sa.String()))
SOURCES = {"sms": "twilio", "messenger": "meta", "instagram": "meta", "telegram": "telegram", "x": "x",
           "chat": "chat", "web": "web_form"}


def upgrade() -> None:
    with op.batch_alter_table("conversation_entry", schema=None) as batch_op:
        batch_op.add_column(sa.Column("Source", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("Status", sa.String(length=10), nullable=True))
    source = sa.case(
        *((entry.c.Channel == channel, provider) for channel, provider in SOURCES.items()),
        (sa.and_(entry.c.Channel == "whatsapp", entry.c.Details.like('%"phone_number_id"%')), "meta"),
        (entry.c.Channel == "whatsapp", "twilio"),
        (sa.and_(entry.c.Channel == "phone", entry.c.Details.like('%"call_sid"%')), "twilio"),
        (entry.c.Channel == "phone", "cti"),
        else_=None)
    op.execute(entry.update().values(Source=source))
    op.create_table(
        "reply_outbox",
        sa.Column("EntryId", sa.String(length=18), nullable=False),
        sa.Column("CaseId", sa.String(length=18), nullable=False),
        sa.Column("Channel", sa.String(length=20), nullable=False),
        sa.Column("Provider", sa.String(length=20), nullable=False),
        sa.Column("Recipient", sa.String(length=255), nullable=False),
        sa.Column("SenderId", sa.String(length=255), nullable=True),
        sa.Column("Thread", sa.String(length=255), nullable=True),
        sa.Column("Template", sa.Text(), nullable=True),
        sa.Column("Status", sa.String(length=10), nullable=False),
        sa.Column("Attempts", sa.Integer(), nullable=False),
        sa.Column("NextAttemptAt", sa.DateTime(timezone=True), nullable=False),
        sa.Column("LastError", sa.Text(), nullable=True),
        sa.Column("CreatedDate", sa.DateTime(timezone=True), nullable=False),
        sa.Column("SentDate", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["CaseId"], ["case.Id"], name=op.f("fk_reply_outbox_CaseId_case")),
        sa.ForeignKeyConstraint(["EntryId"], ["conversation_entry.Id"],
                                name=op.f("fk_reply_outbox_EntryId_conversation_entry")),
        sa.PrimaryKeyConstraint("EntryId", name=op.f("pk_reply_outbox")),
    )
    op.create_index("ix_reply_outbox_CaseId", "reply_outbox", ["CaseId"])
    op.create_index("ix_reply_outbox_due", "reply_outbox", ["Status", "NextAttemptAt"])
    op.create_table(
        "delivery_receipt",
        sa.Column("Source", sa.String(length=20), nullable=False),
        sa.Column("MessageIdentifier", sa.String(length=765), nullable=False),
        sa.Column("Status", sa.String(length=10), nullable=False),
        sa.Column("ErrorCode", sa.String(length=40), nullable=True),
        sa.Column("Error", sa.String(length=1000), nullable=True),
        sa.Column("ReceivedAt", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("Source", "MessageIdentifier", name=op.f("pk_delivery_receipt")),
    )
    op.create_index("ix_delivery_receipt_ReceivedAt", "delivery_receipt", ["ReceivedAt"])


def downgrade() -> None:
    op.drop_index("ix_delivery_receipt_ReceivedAt", table_name="delivery_receipt")
    op.drop_table("delivery_receipt")
    op.drop_index("ix_reply_outbox_due", table_name="reply_outbox")
    op.drop_index("ix_reply_outbox_CaseId", table_name="reply_outbox")
    op.drop_table("reply_outbox")
    with op.batch_alter_table("conversation_entry", schema=None) as batch_op:
        batch_op.drop_column("Status")
        batch_op.drop_column("Source")
