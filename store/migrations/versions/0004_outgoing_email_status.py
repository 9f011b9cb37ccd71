"""outgoing EmailMessage Status follows delivery

Mail casegate sends was stored with Status 3 (Sent) while still in the outbox. From this revision its
Status is Q (Queued) until the relay takes it, then 3, or F (Failed) when the outbox gives up
(`store.models.EmailStatus`). No column changes: this brings the rows written before in line with
their outbox row (queued → Q, failed → F); downgrading gives them back the 3 the older code wrote.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

email_message = sa.table("email_message", sa.column("Id", sa.String()), sa.column("Status", sa.String()))
outbox = sa.table("outbox", sa.column("EmailMessageId", sa.String()), sa.column("Status", sa.String()))


def upgrade() -> None:
    for outbox_status, email_status in (("queued", "Q"), ("failed", "F")):
        of_outbox = sa.select(outbox.c.EmailMessageId).where(outbox.c.Status == outbox_status)
        op.execute(email_message.update().where(email_message.c.Id.in_(of_outbox)).values(Status=email_status))


def downgrade() -> None:
    op.execute(email_message.update().where(email_message.c.Status.in_(("Q", "F"))).values(Status="3"))
