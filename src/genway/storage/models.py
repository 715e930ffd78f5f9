"""Artifacts: uploaded inputs and produced outputs of an organization, content-addressed.

A row names a blob (by SHA-256) for one organization; the same content uploaded twice, or by two
organizations, is stored once on disk and appears as separate rows. Rows are never changed in
place: a new upload under an existing name is a new row, and lookups by name take the newest.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from genway.db import Base, UTCDateTime, utcnow


class ArtifactKind(StrEnum):
    UPLOAD = "upload"
    OUTPUT = "output"


class Artifact(Base):
    __tablename__ = "artifacts"
    __table_args__ = (
        Index("ix_artifacts_org_kind_name", "org_id", "kind", "name"),
        Index("ix_artifacts_kind_referenced", "kind", "last_referenced_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    job_id: Mapped[int | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="CASCADE"), nullable=True, index=True
    )
    kind: Mapped[str] = mapped_column(String(16))
    # A relative path: "photo.png", or "sub/photo.png" when a client gave a subfolder.
    name: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    content_type: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Uploads not referenced by a job for the upload TTL are deleted by the cleanup loop.
    last_referenced_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def basename(self) -> str:
        return self.name.rsplit("/", 1)[-1]

    @property
    def folder(self) -> str:
        return self.name.rsplit("/", 1)[0] if "/" in self.name else ""
