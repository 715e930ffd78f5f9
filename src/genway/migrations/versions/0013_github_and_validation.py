"""github and validation: connections, deliveries, pull requests, validations; project pins
and write-only secrets

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import genway.db

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "github_connections",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("app_id", sa.BigInteger(), nullable=True),
        sa.Column("installation_id", sa.BigInteger(), nullable=True),
        sa.Column("account", sa.String(length=255), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", genway.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", genway.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_github_connections_created_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_github_connections_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_github_connections")),
        sa.UniqueConstraint("org_id", name=op.f("uq_github_connections_org_id")),
    )
    op.create_table(
        "github_deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("delivery_id", sa.String(length=64), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=True),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=True),
        sa.Column("outcome", sa.String(length=64), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("received_at", genway.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_github_deliveries_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_github_deliveries_project_id_projects"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_github_deliveries")),
        sa.UniqueConstraint("delivery_id", name=op.f("uq_github_deliveries_delivery_id")),
    )
    with op.batch_alter_table("github_deliveries", schema=None) as batch_op:
        batch_op.create_index("ix_github_deliveries_org_id_id", ["org_id", "id"], unique=False)

    op.create_table(
        "pull_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("github_id", sa.BigInteger(), nullable=False),
        sa.Column("title", sa.String(length=500), nullable=False),
        sa.Column("url", sa.String(length=500), nullable=False),
        sa.Column("head_branch", sa.String(length=255), nullable=False),
        sa.Column("head_sha", sa.String(length=64), nullable=False),
        sa.Column("base_branch", sa.String(length=255), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("from_fork", sa.Boolean(), nullable=False),
        sa.Column("agent_run_id", sa.Integer(), nullable=True),
        sa.Column("fix_attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", genway.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", genway.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_pull_requests_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_pull_requests_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pull_requests")),
        sa.UniqueConstraint("project_id", "number", name="uq_pull_requests_project_id_number"),
    )
    with op.batch_alter_table("pull_requests", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_pull_requests_agent_run_id"), ["agent_run_id"], unique=False
        )
        batch_op.create_index("ix_pull_requests_org_id_id", ["org_id", "id"], unique=False)

    op.create_table(
        "validations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("pull_request_id", sa.Integer(), nullable=False),
        sa.Column("pr_number", sa.Integer(), nullable=False),
        sa.Column("agent_run_id", sa.Integer(), nullable=True),
        sa.Column("head_sha", sa.String(length=64), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("snapshot_id", sa.String(length=64), nullable=True),
        sa.Column("deployment_status", sa.String(length=16), nullable=False),
        sa.Column("test_results", sa.JSON(), nullable=False),
        sa.Column("auto_merge_eligible", sa.Boolean(), nullable=False),
        sa.Column("merged", sa.Boolean(), nullable=False),
        sa.Column("fix_run_id", sa.Integer(), nullable=True),
        sa.Column("check_run_id", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", genway.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("started_at", genway.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", genway.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", genway.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_validations_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_validations_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["pull_request_id"],
            ["pull_requests.id"],
            name=op.f("fk_validations_pull_request_id_pull_requests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_validations")),
    )
    with op.batch_alter_table("validations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_validations_job_id"), ["job_id"], unique=False)
        batch_op.create_index("ix_validations_org_id_id", ["org_id", "id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_validations_pull_request_id"), ["pull_request_id"], unique=False
        )

    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.add_column(sa.Column("secrets_encrypted", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("secret_names", sa.JSON(), nullable=False, server_default="[]")
        )
        batch_op.add_column(sa.Column("github_repo", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("github_repo_id", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("github_hook_id", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("github_webhook_secret", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("github_default_branch", sa.String(length=255), nullable=True)
        )
        batch_op.add_column(sa.Column("github_clone_url", sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column("github_pinned_by", sa.Integer(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_projects_github_hook_id"), ["github_hook_id"], unique=False
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_projects_github_pinned_by_users"),
            "users",
            ["github_pinned_by"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_projects_github_pinned_by_users"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_projects_github_hook_id"))
        batch_op.drop_column("github_pinned_by")
        batch_op.drop_column("github_clone_url")
        batch_op.drop_column("github_default_branch")
        batch_op.drop_column("github_webhook_secret")
        batch_op.drop_column("github_hook_id")
        batch_op.drop_column("github_repo_id")
        batch_op.drop_column("github_repo")
        batch_op.drop_column("secret_names")
        batch_op.drop_column("secrets_encrypted")

    with op.batch_alter_table("validations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_validations_pull_request_id"))
        batch_op.drop_index("ix_validations_org_id_id")
        batch_op.drop_index(batch_op.f("ix_validations_job_id"))

    op.drop_table("validations")
    with op.batch_alter_table("pull_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_pull_requests_org_id_id")
        batch_op.drop_index(batch_op.f("ix_pull_requests_agent_run_id"))

    op.drop_table("pull_requests")
    with op.batch_alter_table("github_deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_github_deliveries_org_id_id")

    op.drop_table("github_deliveries")
    op.drop_table("github_connections")
