"""Platform maintenance holds on the queue: a job kind no worker claims, a ComfyUI backend
that gets no new prompts. (An organization's own pause is `organizations.queue_paused_at`.)"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Integer, String, Table, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from genway.db import Base, UTCDateTime, utcnow


class PauseScope(StrEnum):
    KIND = "kind"
    BACKEND = "backend"


class QueuePause(Base):
    __tablename__ = "queue_pauses"
    __table_args__ = (UniqueConstraint("scope", "target"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scope: Mapped[str] = mapped_column(String(16))
    # A job kind, or a backend's id (`backend_id`: a digest of its URL, never the URL itself).
    target: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(String(500), nullable=True)
    paused_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    paused_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


queue_pauses: Table = QueuePause.__table__  # type: ignore[assignment]
