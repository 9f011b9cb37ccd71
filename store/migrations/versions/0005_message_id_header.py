"""the Message-ID header as written, in the ledger

The ledger kept only the normalised Message-ID, so a mail whose header had no angle brackets
(`abc@host`), missed one (`<abc@host`) or was empty showed no Message-ID in the message trace.
`processed_message.MessageIdHeader` keeps the header as the mail wrote it (cut at 255 characters). Only
the rows whose header names no id are indexed (a partial index): every other header is found through
its normalised id. Rows written before this revision have no MessageIdHeader (NULL).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 12:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

UNNORMALISED_ID = '"MessageIdHeader" IS NOT NULL AND "MessageIdentifier" IS NULL'


def upgrade() -> None:
    with op.batch_alter_table("processed_message", schema=None) as batch_op:
        batch_op.add_column(sa.Column("MessageIdHeader", sa.String(length=255), nullable=True))
        batch_op.create_index("ix_processed_message_unnormalised_id", ["MessageIdHeader"], unique=False,
                              sqlite_where=sa.text(UNNORMALISED_ID), postgresql_where=sa.text(UNNORMALISED_ID))


def downgrade() -> None:
    with op.batch_alter_table("processed_message", schema=None) as batch_op:
        batch_op.drop_index("ix_processed_message_unnormalised_id")
        batch_op.drop_column("MessageIdHeader")
