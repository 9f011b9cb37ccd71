"""users' roles, queue members and API tokens

`user.Role` says what a user may do (integration, agent, supervisor, admin; rules/access.py); users that
existed before are agents. `queue_member` lists who works a queue's cases (Salesforce's GroupMember).
`api_token` keeps the SHA-256 of each bearer token with its user, kind (api, access, refresh), a hint of
its first characters, and when it was made, expires, was revoked and last used.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 13:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("user", schema=None) as batch_op:
        batch_op.add_column(sa.Column("Role", sa.String(length=20), nullable=False, server_default="agent"))
    op.create_table(
        "queue_member",
        sa.Column("Id", sa.String(length=18), nullable=False),
        sa.Column("QueueId", sa.String(length=18), nullable=False),
        sa.Column("UserId", sa.String(length=18), nullable=False),
        sa.Column("CreatedDate", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["QueueId"], ["queue.Id"], name="fk_queue_member_QueueId_queue"),
        sa.ForeignKeyConstraint(["UserId"], ["user.Id"], name="fk_queue_member_UserId_user"),
        sa.PrimaryKeyConstraint("Id", name="pk_queue_member"),
        sa.UniqueConstraint("QueueId", "UserId", name="uq_queue_member_QueueId"),
    )
    op.create_index("ix_queue_member_QueueId", "queue_member", ["QueueId"])
    op.create_index("ix_queue_member_UserId", "queue_member", ["UserId"])
    op.create_table(
        "api_token",
        sa.Column("TokenHash", sa.String(length=64), nullable=False),
        sa.Column("UserId", sa.String(length=18), nullable=False),
        sa.Column("Kind", sa.String(length=10), nullable=False),
        sa.Column("Hint", sa.String(length=12), nullable=False),
        sa.Column("CreatedDate", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ExpiresDate", sa.DateTime(timezone=True), nullable=True),
        sa.Column("RevokedDate", sa.DateTime(timezone=True), nullable=True),
        sa.Column("LastUsedDate", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["UserId"], ["user.Id"], name="fk_api_token_UserId_user"),
        sa.PrimaryKeyConstraint("TokenHash", name="pk_api_token"),
    )
    op.create_index("ix_api_token_UserId", "api_token", ["UserId"])


def downgrade() -> None:
    op.drop_index("ix_api_token_UserId", table_name="api_token")
    op.drop_table("api_token")
    op.drop_index("ix_queue_member_UserId", table_name="queue_member")
    op.drop_index("ix_queue_member_QueueId", table_name="queue_member")
    op.drop_table("queue_member")
    with op.batch_alter_table("user", schema=None) as batch_op:
        batch_op.drop_column("Role")
