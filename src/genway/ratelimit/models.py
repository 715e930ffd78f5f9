"""Usage counters: one row per (organization, user, metric, UTC day), incremented atomically."""

from __future__ import annotations

from datetime import date

from sqlalchemy import BigInteger, Date, ForeignKey, Integer, String, Table, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from genway.db import Base

NO_USER = 0


class UsageCounter(Base):
    __tablename__ = "usage_counters"
    __table_args__ = (UniqueConstraint("org_id", "user_id", "metric", "day"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    # 0 when no user is involved (a plain integer, so the unique key has no NULLs in it).
    user_id: Mapped[int] = mapped_column(Integer, default=NO_USER)
    metric: Mapped[str] = mapped_column(String(100))
    day: Mapped[date] = mapped_column(Date)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


usage_table: Table = UsageCounter.__table__  # type: ignore[assignment]
