"""the deciding rule's name on the case feed

The feed entries a decision of `rules/` produces (a case reopened, a follow-up case with ParentId, mail
kept on a closed case, the owner a new case was assigned, an acknowledgement queued or withheld) said
why in their Body, but not which rule decided, or only inside the words. `case_feed.Rule` holds the
rule's dotted name (`closed_case.reopen_within_days`, `assignment.entries` …, at most 80 characters).
Entries written before this revision, and entries no rule decided, have no Rule (NULL).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 12:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("case_feed", schema=None) as batch_op:
        batch_op.add_column(sa.Column("Rule", sa.String(length=80), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("case_feed", schema=None) as batch_op:
        batch_op.drop_column("Rule")
