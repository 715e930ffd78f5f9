"""What a worker records about the jobs it holds: events and progress, the end, a retry, lease
renewals. None of these commit: the worker's writer (worker/writer.py) batches them.

Every write is fenced by `worker_id` and `status = running`: a worker whose lease expired (and
whose job another worker now holds) cannot overwrite the newer attempt.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from genway.db import utcnow
from genway.jobs.events import EventRow, EventType
from genway.jobs.lifecycle import transition
from genway.jobs.models import Job, jobs_table
from genway.jobs.states import JobStatus

jobs = jobs_table


# The fence of a worker's writes, built once: the job (`b_job_id`) is still running under the
# worker's (`b_worker_id`) lease.
HELD: ColumnElement[bool] = (
    (jobs.c.id == bindparam("b_job_id"))
    & (jobs.c.worker_id == bindparam("b_worker_id"))
    & (jobs.c.status == JobStatus.RUNNING)
)
_NUMBER_EVENTS = (
    update(jobs)
    .where(HELD)
    .values(last_event_seq=jobs.c.last_event_seq + bindparam("n"), updated_at=bindparam("at"))
    .returning(jobs.c.last_event_seq)
)
_NUMBER_EVENTS_WITH_PROGRESS = _NUMBER_EVENTS.values(
    progress=bindparam("b_progress"), progress_message=bindparam("b_progress_message")
)


async def record_job_events(
    session: AsyncSession,
    job: Job,
    worker_id: str,
    events: Sequence[tuple[EventType, dict[str, Any]]],
    progress: tuple[float, str | None] | None,
    out: list[EventRow],
) -> bool:
    """Number a held job's new events (and store its latest progress) in one UPDATE, adding
    them to `out` for the batch's INSERT; False when the worker no longer holds the job."""
    params: dict[str, Any] = {
        "b_job_id": job.id,
        "b_worker_id": worker_id,
        "n": len(events),
        "at": utcnow(),
    }
    statement = _NUMBER_EVENTS
    if progress is not None:
        statement = _NUMBER_EVENTS_WITH_PROGRESS
        params["b_progress"], params["b_progress_message"] = progress
    last = await session.scalar(statement, params)
    if last is None:
        return False
    first = last - len(events) + 1
    out.extend(
        (job.id, job.org_id, seq, type_, data)
        for seq, (type_, data) in enumerate(events, start=first)
    )
    return True


async def finish_job(
    session: AsyncSession,
    job: Job,
    worker_id: str,
    status: JobStatus,
    out: list[EventRow] | None,
    *,
    result: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
) -> datetime | None:
    """Move a held job to a terminal status; when it ended (None: the worker no longer held
    it). Its status event goes to `out` (None: inserted here)."""
    now = utcnow()
    rows = await transition(
        session,
        JobStatus.RUNNING,
        status,
        HELD,
        values={"result": result, "error": error},
        event={"error": error} if error is not None else None,
        now=now,
        params={"b_job_id": job.id, "b_worker_id": worker_id},
        events_out=out,
        shape="held",
    )
    return now if rows else None


async def requeue_job(
    session: AsyncSession,
    job: Job,
    worker_id: str,
    out: list[EventRow],
    *,
    run_after: datetime,
    why: str,
    error: dict[str, Any] | None = None,
    refund_attempt: bool = False,
) -> bool:
    """Return a held job to the queue (running → queued) for another attempt;
    `refund_attempt` gives the attempt back (a worker shutting down is not the job's fault)."""
    rows = await transition(
        session,
        JobStatus.RUNNING,
        JobStatus.QUEUED,
        HELD,
        values={
            "run_after": run_after,
            "error": error,
            "attempts": jobs.c.attempts - 1 if refund_attempt else jobs.c.attempts,
        },
        why=why,
        event={"error": error} if error is not None else None,
        params={"b_job_id": job.id, "b_worker_id": worker_id},
        events_out=out,
        shape=("held", refund_attempt),
    )
    return bool(rows)


async def renew_leases(
    session: AsyncSession, worker_id: str, job_ids: Sequence[int], lease_s: float
) -> set[int]:
    """Extend the leases of the worker's running jobs; returns the ids still held."""
    if not job_ids:
        return set()
    renewed = await session.execute(
        update(jobs)
        .where(
            jobs.c.id.in_(list(job_ids)),
            jobs.c.worker_id == worker_id,
            jobs.c.status == JobStatus.RUNNING,
        )
        .values(lease_expires_at=utcnow() + timedelta(seconds=lease_s))
        .returning(jobs.c.id)
    )
    return {row[0] for row in renewed}


async def cancel_requests(session: AsyncSession, job_ids: Sequence[int]) -> set[int]:
    """Which of these jobs a client asked to cancel."""
    if not job_ids:
        return set()
    rows = await session.execute(
        select(jobs.c.id).where(jobs.c.id.in_(list(job_ids)), jobs.c.cancel_requested.is_(True))
    )
    return {row[0] for row in rows}
