"""an index for the REST API's commonest lookup: an owner's open cases, newest first

`case` (OwnerId, IsClosed, CreatedDate): at a million cases it turned a 70-670 ms scan into under a
millisecond. (`ix_case_CreatedDate` serves ORDER BY CreatedDate in both directions, now that the query
translation writes plain DESC for a column that is never null.)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 10:00:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_case_OwnerId_IsClosed_CreatedDate", "case", ["OwnerId", "IsClosed", "CreatedDate"],
                    unique=False)


def downgrade() -> None:
    op.drop_index("ix_case_OwnerId_IsClosed_CreatedDate", table_name="case")
