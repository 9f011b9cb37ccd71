"""the case lifecycle of the REST API: who changed what, resolutions, satisfaction, assets

`case` gains Resolution (text), SatisfactionScore (1-5) and SatisfactionComment, and CreatedById and
LastModifiedById (the User who created and last changed it through the API; NULL for cases messages
opened, and for every case written before this revision). `case_feed.CreatedById` is the User whose change
an entry records (NULL for what the daemon did on its own). `asset` is Salesforce's Asset, which
Case.AssetId names.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("case", schema=None) as batch_op:
        batch_op.add_column(sa.Column("Resolution", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("SatisfactionScore", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("SatisfactionComment", sa.String(length=1000), nullable=True))
        batch_op.add_column(sa.Column("CreatedById", sa.String(length=18), nullable=True))
        batch_op.add_column(sa.Column("LastModifiedById", sa.String(length=18), nullable=True))
    with op.batch_alter_table("case_feed", schema=None) as batch_op:
        batch_op.add_column(sa.Column("CreatedById", sa.String(length=18), nullable=True))
    op.create_table(
        "asset",
        sa.Column("Id", sa.String(length=18), nullable=False),
        sa.Column("Name", sa.String(length=255), nullable=False),
        sa.Column("AccountId", sa.String(length=18), nullable=True),
        sa.Column("ContactId", sa.String(length=18), nullable=True),
        sa.Column("SerialNumber", sa.String(length=80), nullable=True),
        sa.Column("Status", sa.String(length=40), nullable=True),
        sa.Column("InstallDate", sa.Date(), nullable=True),
        sa.Column("Description", sa.Text(), nullable=True),
        sa.Column("CreatedDate", sa.DateTime(timezone=True), nullable=False),
        sa.Column("LastModifiedDate", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["AccountId"], ["account.Id"], name="fk_asset_AccountId_account"),
        sa.ForeignKeyConstraint(["ContactId"], ["contact.Id"], name="fk_asset_ContactId_contact"),
        sa.PrimaryKeyConstraint("Id", name="pk_asset"),
    )
    op.create_index("ix_asset_AccountId", "asset", ["AccountId"])
    op.create_index("ix_asset_ContactId", "asset", ["ContactId"])
    op.create_index("ix_asset_SerialNumber", "asset", ["SerialNumber"])


def downgrade() -> None:
    op.drop_index("ix_asset_SerialNumber", table_name="asset")
    op.drop_index("ix_asset_ContactId", table_name="asset")
    op.drop_index("ix_asset_AccountId", table_name="asset")
    op.drop_table("asset")
    with op.batch_alter_table("case_feed", schema=None) as batch_op:
        batch_op.drop_column("CreatedById")
    with op.batch_alter_table("case", schema=None) as batch_op:
        batch_op.drop_column("LastModifiedById")
        batch_op.drop_column("CreatedById")
        batch_op.drop_column("SatisfactionComment")
        batch_op.drop_column("SatisfactionScore")
        batch_op.drop_column("Resolution")
