"""Projects, the index of their files and the revision history of those files.

The files themselves live in a bare git repository per project (`projects/repos.py`). A write
(one file, or a batch such as an agent's edits) is one commit on the default branch and one
project revision: `head_revision` goes up by one, a `ProjectCommit` maps the number to the
commit, and every file it changed gets a `FileRevision` row (metadata only since revision 0009;
older rows still carry their content, which the conversion replays into commits).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from genway.db import Base, UTCDateTime, utcnow


class Project(Base):
    __tablename__ = "projects"
    __table_args__ = (Index("ix_projects_org_id_id", "org_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    repository_url: Mapped[str | None] = mapped_column(String(500), nullable=True)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    head_revision: Mapped[int] = mapped_column(Integer, default=0)
    total_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    # Write-only secrets: one encrypted JSON map (`projects/pipeline.py`), and their names.
    secrets_encrypted: Mapped[str | None] = mapped_column(Text, nullable=True)
    secret_names: Mapped[list[str]] = mapped_column(JSON, default=list)
    # The GitHub repository it is pinned to, and the webhook Genway registered there.
    github_repo: Mapped[str | None] = mapped_column(String(200), nullable=True)
    github_repo_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    github_hook_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True, index=True)
    github_webhook_secret: Mapped[str | None] = mapped_column(Text, nullable=True)  # encrypted
    github_default_branch: Mapped[str | None] = mapped_column(String(255), nullable=True)
    github_clone_url: Mapped[str | None] = mapped_column(String(500), nullable=True)
    github_pinned_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ProjectFile(Base):
    """A file as it is now; `revision` is the project revision that last wrote it."""

    __tablename__ = "project_files"
    __table_args__ = (UniqueConstraint("project_id", "path"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(String(512))
    content: Mapped[str] = mapped_column(Text, default="")
    language: Mapped[str | None] = mapped_column(String(50), nullable=True)
    size_bytes: Mapped[int] = mapped_column(Integer, default=0)
    sha256: Mapped[str] = mapped_column(String(64))
    revision: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class FileRevision(Base):
    """One file's change in one project revision: its content after a write, or a deletion."""

    __tablename__ = "file_revisions"
    __table_args__ = (
        UniqueConstraint("project_id", "revision", "path"),
        Index("ix_file_revisions_project_id_path", "project_id", "path", "revision"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    revision: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(String(512))
    action: Mapped[str] = mapped_column(String(10))
    content: Mapped[str | None] = mapped_column(Text, nullable=True)
    language: Mapped[str | None] = mapped_column(String(50), nullable=True)
    size_bytes: Mapped[int] = mapped_column(Integer, default=0)
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    author_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    job_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    message: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ProjectCommit(Base):
    """Revision `revision` of the project is the commit `sha` on its default branch."""

    __tablename__ = "project_commits"
    __table_args__ = (
        UniqueConstraint("project_id", "revision", name="uq_project_commits_project_id_revision"),
        UniqueConstraint("project_id", "sha", name="uq_project_commits_project_id_sha"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    revision: Mapped[int] = mapped_column(Integer)
    sha: Mapped[str] = mapped_column(String(40))
    author_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    job_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    message: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# Core-level handle for single-statement counters (typed as a Table).
projects_table: Table = Project.__table__  # type: ignore[assignment]
