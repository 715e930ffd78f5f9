"""Recording an organization event that is not a job's: one row, published (to the
organization stream, and to webhook endpoints) once the transaction commits."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Table, insert
from sqlalchemy.ext.asyncio import AsyncSession

from genway.db import on_commit, utcnow
from genway.orgevents.models import OrgEvent

org_events: Table = OrgEvent.__table__  # type: ignore[assignment]
_INSERT = insert(org_events).returning(org_events.c.id)


def org_payload(
    event_id: int,
    org_id: int,
    type_: str,
    data: dict[str, Any],
    created_at: datetime,
    user_id: int | None = None,
) -> dict[str, Any]:
    """An organization event as the fan-out and replays carry it (`org_event_id` tells it
    from a job event, which has `job_id`)."""
    return {
        "org_event_id": event_id,
        "org_id": org_id,
        "user_id": user_id,
        "type": type_,
        "data": data,
        "created_at": created_at.isoformat().replace("+00:00", "Z"),
    }


async def emit(
    session: AsyncSession,
    org_id: int,
    type_: str,
    data: dict[str, Any],
    *,
    user_id: int | None = None,
) -> int:
    """Record an event of the organization (for one user only when `user_id` is set) in the
    caller's transaction; returns its id."""
    now = utcnow()
    event_id = await session.scalar(
        _INSERT,
        {"org_id": org_id, "user_id": user_id, "type": type_, "data": data, "created_at": now},
    )
    assert isinstance(event_id, int)
    on_commit(session, [org_payload(event_id, org_id, type_, data, now, user_id)])
    return event_id
