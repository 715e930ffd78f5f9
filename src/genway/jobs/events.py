"""Recording job events (numbered per job, in the same transaction as the change they describe)
and reading them back for replay."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Table, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from genway.db import on_commit, utcnow
from genway.jobs.models import JobEvent, jobs_table
from genway.jobs.states import JobStatus


class EventType(StrEnum):
    STATUS = "status"
    PROGRESS = "progress"
    LOG = "log"
    OUTPUT = "output"
    CANCEL_REQUESTED = "cancel_requested"


# An event to insert: (job id, org id, seq, type, data).
EventRow = tuple[int, int, int, str, dict[str, Any]]


def payload(
    job_id: int,
    org_id: int,
    seq: int,
    type_: str,
    data: dict[str, Any],
    created_at: datetime,
    event_id: int,
) -> dict[str, Any]:
    """An event as streams, replays and the fan-out carry it. `id` is the event's row id: it
    orders an organization's events (the organization stream resumes after it)."""
    return {
        "id": event_id,
        "job_id": job_id,
        "org_id": org_id,
        "seq": seq,
        "type": type_,
        "data": data,
        "created_at": created_at.isoformat().replace("+00:00", "Z"),
    }


def event_payload(event: JobEvent, org_id: int) -> dict[str, Any]:
    return payload(
        event.job_id, org_id, event.seq, event.type, event.data, event.created_at, event.id
    )


def is_final(payload: dict[str, Any]) -> bool:
    """Whether this event ends the job's stream (a terminal status)."""
    if payload["type"] != EventType.STATUS:
        return False
    return JobStatus(payload["data"]["status"]).is_terminal


job_events: Table = JobEvent.__table__  # type: ignore[assignment]
_INSERT_EVENTS = insert(job_events).returning(job_events.c.id, sort_by_parameter_order=True)


async def record_events(session: AsyncSession, events: Sequence[EventRow], now: datetime) -> None:
    """Insert events (job id, org id, seq, type, data) in one statement; they are published
    once the transaction commits. The only writer of `job_events`."""
    if not events:
        return
    rows = [
        {"job_id": job_id, "seq": seq, "type": type_, "data": data, "created_at": now}
        for job_id, _org_id, seq, type_, data in events
    ]
    ids = (await session.scalars(_INSERT_EVENTS, rows if len(rows) > 1 else rows[0])).all()
    on_commit(
        session,
        [
            payload(job_id, org_id, seq, type_, data, now, event_id)
            for (job_id, org_id, seq, type_, data), event_id in zip(events, ids, strict=True)
        ],
    )


async def append_event(
    session: AsyncSession, job_id: int, org_id: int, type_: EventType, data: dict[str, Any]
) -> None:
    """Add the job's next event; it is published once the transaction commits."""
    await append_events(session, job_id, org_id, [(type_, data)])


async def append_events(
    session: AsyncSession,
    job_id: int,
    org_id: int,
    events: Sequence[tuple[str, dict[str, Any]]],
) -> bool:
    """Add the job's next events in order, with one sequence-number update; False (nothing
    written) when the job no longer exists."""
    jobs = jobs_table
    now = utcnow()
    last = await session.scalar(
        update(jobs)
        .where(jobs.c.id == job_id)
        .values(last_event_seq=jobs.c.last_event_seq + len(events), updated_at=now)
        .returning(jobs.c.last_event_seq)
    )
    if last is None:
        return False
    first = last - len(events) + 1
    rows = [
        (job_id, org_id, seq, type_, data) for seq, (type_, data) in enumerate(events, start=first)
    ]
    await record_events(session, rows, now)
    return True


async def read_events(
    session: AsyncSession, job_id: int, org_id: int, after: int = 0, limit: int = 1000
) -> Sequence[dict[str, Any]]:
    rows = (
        await session.scalars(
            select(JobEvent)
            .where(JobEvent.job_id == job_id, JobEvent.seq > after)
            .order_by(JobEvent.seq)
            .limit(limit)
        )
    ).all()
    return [event_payload(row, org_id) for row in rows]
