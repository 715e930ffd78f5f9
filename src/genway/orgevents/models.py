"""An organization's events that are not a job's (a job's are its `job_events`): endpoint
disabled, quota warnings, notifications. Kept for replay of the organization stream."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from genway.db import Base, UTCDateTime, utcnow


class OrgEvent(Base):
    __tablename__ = "org_events"
    __table_args__ = (Index("ix_org_events_org_id_id", "org_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    # Set for an event meant for one user (a notification): only that user's streams see it.
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=True
    )
    type: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
