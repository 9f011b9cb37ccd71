"""outbox, suppression and message trace in the ledger

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 20:16:46.223061
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column("Id", sa.String(length=18), nullable=False),
        sa.Column("Kind", sa.String(length=20), nullable=False),
        sa.Column("CaseId", sa.String(length=18), nullable=False),
        sa.Column("EmailMessageId", sa.String(length=18), nullable=False),
        sa.Column("FromAddress", sa.String(length=320), nullable=False),
        sa.Column("ToAddress", sa.String(length=320), nullable=False),
        sa.Column("MessageIdentifier", sa.String(length=765), nullable=False),
        sa.Column("Raw", sa.LargeBinary(), nullable=False),
        sa.Column("Status", sa.String(length=10), nullable=False),
        sa.Column("Attempts", sa.Integer(), nullable=False),
        sa.Column("NextAttemptAt", sa.DateTime(timezone=True), nullable=False),
        sa.Column("LastError", sa.Text(), nullable=True),
        sa.Column("CreatedDate", sa.DateTime(timezone=True), nullable=False),
        sa.Column("SentDate", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["CaseId"], ["case.Id"], name=op.f("fk_outbox_CaseId_case")),
        sa.PrimaryKeyConstraint("Id", name=op.f("pk_outbox")),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_outbox_CaseId"), ["CaseId"], unique=False)
        batch_op.create_index("ix_outbox_due", ["Status", "NextAttemptAt"], unique=False)
        batch_op.create_index("ix_outbox_to_created", ["ToAddress", "CreatedDate"], unique=False)

    with op.batch_alter_table("processed_message", schema=None) as batch_op:
        batch_op.add_column(sa.Column("Reason", sa.String(length=1000), nullable=True))
        batch_op.add_column(sa.Column("Sender", sa.String(length=320), nullable=True))
        batch_op.add_column(sa.Column("Subject", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("MessageIdentifier", sa.String(length=765), nullable=True))
        batch_op.add_column(sa.Column("RawSha256", sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f("ix_processed_message_MessageIdentifier"), ["MessageIdentifier"], unique=False)
        batch_op.create_index(batch_op.f("ix_processed_message_ReceivedAt"), ["ReceivedAt"], unique=False)
        batch_op.create_index("ix_processed_message_sender_received", ["Sender", "ReceivedAt"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("processed_message", schema=None) as batch_op:
        batch_op.drop_index("ix_processed_message_sender_received")
        batch_op.drop_index(batch_op.f("ix_processed_message_ReceivedAt"))
        batch_op.drop_index(batch_op.f("ix_processed_message_MessageIdentifier"))
        batch_op.drop_column("RawSha256")
        batch_op.drop_column("MessageIdentifier")
        batch_op.drop_column("Subject")
        batch_op.drop_column("Sender")
        batch_op.drop_column("Reason")

    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_to_created")
        batch_op.drop_index("ix_outbox_due")
        batch_op.drop_index(batch_op.f("ix_outbox_CaseId"))

    op.drop_table("outbox")
