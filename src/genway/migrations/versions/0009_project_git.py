"""project git repositories: the revision ↔ commit mapping of each project's default branch

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-08

The files of existing projects are converted into commits by
`genway.projects.legacy.convert_legacy_projects` (and lazily on first access), not here: a
migration must not depend on the data directory.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from genway.db import UTCDateTime

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "project_commits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("sha", sa.String(length=40), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=True),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("message", sa.String(length=500), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_project_commits_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["author_id"],
            ["users.id"],
            name=op.f("fk_project_commits_author_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_project_commits")),
        sa.UniqueConstraint(
            "project_id", "revision", name="uq_project_commits_project_id_revision"
        ),
        sa.UniqueConstraint("project_id", "sha", name="uq_project_commits_project_id_sha"),
    )


def downgrade() -> None:
    op.drop_table("project_commits")
