"""Recording an organization event that is not a job's: one row, published (to the
organization stream, and to webhook endpoints) once the transaction commits."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from genway.db import on_commit, utcnow
from genway.orgevents.models import OrgEvent

org_events: Table = OrgEvent.__table__  # type: ignore[assignment]
_INSERT = insert(org_events).returning(org_events.c.id, sort_by_parameter_order=True)
# An event to record: (type, data, the one user it is for or None).
OrgEventRow = tuple[str, dict[str, Any], int | None]


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


def record_org_events(session: Session, org_id: int, events: Sequence[OrgEventRow]) -> list[int]:
    """Insert events of the organization in one statement, in the caller's transaction
    (synchronous: also for hooks run just before a commit); they are published once it
    commits. Returns their ids. The only writer of `org_events`."""
    if not events:
        return []
    now = utcnow()
    rows = [
        {"org_id": org_id, "user_id": user_id, "type": type_, "data": data, "created_at": now}
        for type_, data, user_id in events
    ]
    ids = list(session.scalars(_INSERT, rows if len(rows) > 1 else rows[0]).all())
    on_commit(
        session,
        [
            org_payload(event_id, org_id, type_, data, now, user_id)
            for event_id, (type_, data, user_id) in zip(ids, events, strict=True)
        ],
    )
    return ids


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
    ids = await session.run_sync(record_org_events, org_id, [(type_, data, user_id)])
    return ids[0]
