"""A user's notifications, their preferences, and the outbox of emails owed to them."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Table
from sqlalchemy.orm import Mapped, mapped_column

from genway.db import Base, UTCDateTime, utcnow


class NotificationKind(StrEnum):
    QUOTA_WARNING = "quota_warning"
    QUOTA_EXCEEDED = "quota_exceeded"
    KEY_EXPIRING = "key_expiring"
    WEBHOOK_DISABLED = "webhook_disabled"
    JOB_FAILED = "job_failed"
    INVITATION = "invitation"  # in-app only: an invitation to join an organization

    @property
    def category(self) -> Category:
        """The preference that governs this kind."""
        if self in (NotificationKind.QUOTA_WARNING, NotificationKind.QUOTA_EXCEEDED):
            return Category.QUOTA
        return Category(self.value)


class Category(StrEnum):
    """What a user turns email on or off for."""

    QUOTA = "quota"
    KEY_EXPIRING = "key_expiring"
    WEBHOOK_DISABLED = "webhook_disabled"
    JOB_FAILED = "job_failed"


class EmailStatus(StrEnum):
    PENDING = "pending"  # due at `next_attempt_at` (moved ahead while a sender holds it)
    SENT = "sent"
    FAILED = "failed"  # refused for good, or out of attempts


class Notification(Base):
    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_user_id_id", "user_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(String(2000))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class NotificationPreference(Base):
    """A user's choices; no row means the defaults (`schemas.NotificationPreferences`)."""

    __tablename__ = "notification_preferences"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    email_quota: Mapped[bool] = mapped_column(Boolean)
    email_key_expiring: Mapped[bool] = mapped_column(Boolean)
    email_webhook_disabled: Mapped[bool] = mapped_column(Boolean)
    email_job_failed: Mapped[bool] = mapped_column(Boolean)
    in_app_job_failed: Mapped[bool] = mapped_column(Boolean)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class OutboundEmail(Base):
    """One email owed to one user, written in the transaction that causes it and rendered
    from its template when sent."""

    __tablename__ = "email_outbox"
    __table_args__ = (Index("ix_email_outbox_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    to_address: Mapped[str] = mapped_column(String(320))
    kind: Mapped[str] = mapped_column(String(32))
    context: Mapped[dict[str, Any]] = mapped_column(JSON)  # what the templates render
    status: Mapped[str] = mapped_column(String(16), default=EmailStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_error: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


notifications_table: Table = Notification.__table__  # type: ignore[assignment]
email_outbox_table: Table = OutboundEmail.__table__  # type: ignore[assignment]
