"""index for the fair claim: an organization's best runnable job

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_jobs_org_queue", "jobs", ["org_id", "status", sa.text("priority DESC"), "id"]
    )


def downgrade() -> None:
    op.drop_index("ix_jobs_org_queue", table_name="jobs")
