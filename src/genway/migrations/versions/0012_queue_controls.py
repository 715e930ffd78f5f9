"""queue controls: an organization's queue pause, platform holds on kinds and backends

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from genway.db import UTCDateTime

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "organizations", sa.Column("queue_paused_at", UTCDateTime(timezone=True), nullable=True)
    )
    op.create_table(
        "queue_pauses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("target", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("paused_by", sa.Integer(), nullable=True),
        sa.Column("paused_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["paused_by"],
            ["users.id"],
            name=op.f("fk_queue_pauses_paused_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_queue_pauses")),
        sa.UniqueConstraint("scope", "target", name=op.f("uq_queue_pauses_scope")),
    )


def downgrade() -> None:
    op.drop_table("queue_pauses")
    if op.get_bind().dialect.name == "sqlite":
        # Natively (SQLite 3.35+): a batch copy would drop and re-create `organizations`, and
        # with foreign keys on, dropping it deletes every row that cascades from it.
        op.execute("ALTER TABLE organizations DROP COLUMN queue_paused_at")
    else:
        op.drop_column("organizations", "queue_paused_at")
