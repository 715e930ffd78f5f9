"""Recording job events (numbered per job, in the same transaction as the change they describe)
and reading them back for replay."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select, update
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


def payload(
    job_id: int, org_id: int, seq: int, type_: str, data: dict[str, Any], created_at: datetime
) -> dict[str, Any]:
    """An event as streams, replays and the fan-out carry it."""
    return {
        "job_id": job_id,
        "org_id": org_id,
        "seq": seq,
        "type": type_,
        "data": data,
        "created_at": created_at.isoformat().replace("+00:00", "Z"),
    }


def event_payload(event: JobEvent, org_id: int) -> dict[str, Any]:
    return payload(event.job_id, org_id, event.seq, event.type, event.data, event.created_at)


def is_final(payload: dict[str, Any]) -> bool:
    """Whether this event ends the job's stream (a terminal status)."""
    if payload["type"] != EventType.STATUS:
        return False
    return JobStatus(payload["data"]["status"]).is_terminal


async def append_event(
    session: AsyncSession, job_id: int, org_id: int, type_: EventType, data: dict[str, Any]
) -> JobEvent:
    """Add the job's next event; it is published once the transaction commits."""
    jobs = jobs_table
    seq = await session.scalar(
        update(jobs)
        .where(jobs.c.id == job_id)
        .values(last_event_seq=jobs.c.last_event_seq + 1, updated_at=utcnow())
        .returning(jobs.c.last_event_seq)
    )
    assert seq is not None
    return add_event(session, job_id, org_id, seq, type_, data)


def add_event(
    session: AsyncSession,
    job_id: int,
    org_id: int,
    seq: int,
    type_: EventType,
    data: dict[str, Any],
) -> JobEvent:
    """Add an event whose `seq` the caller already took from the job row (by incrementing
    `last_event_seq` in the same UPDATE that changed the job, saving a statement)."""
    event = JobEvent(job_id=job_id, seq=seq, type=type_, data=data, created_at=utcnow())
    session.add(event)
    on_commit(session, [event_payload(event, org_id)])
    return event


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
