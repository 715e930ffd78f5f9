"""What a worker records about a job it holds: progress, the end, a retry, lease renewals.

Every write is fenced by `worker_id` and `status = running`: a worker whose lease expired (and
whose job another worker now holds) cannot overwrite the newer attempt.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from genway.db import utcnow
from genway.jobs.events import EventType, add_event, append_event
from genway.jobs.models import Job, jobs_table
from genway.jobs.states import JobStatus, check_transition
from genway.ratelimit.usage import Metric, record_usage


def _held(job_id: int, worker_id: str) -> Any:
    jobs = jobs_table
    return (
        (jobs.c.id == job_id)
        & (jobs.c.worker_id == worker_id)
        & (jobs.c.status == JobStatus.RUNNING)
    )


async def _update_with_event(
    session: AsyncSession, condition: Any, values: dict[str, Any]
) -> int | None:
    """Apply `values` where `condition` holds, taking the job's next event number in the same
    statement; the event's seq, or None (after a rollback) when no row matched."""
    jobs = jobs_table
    seq: int | None = await session.scalar(
        update(jobs)
        .where(condition)
        .values(**values, last_event_seq=jobs.c.last_event_seq + 1)
        .returning(jobs.c.last_event_seq)
    )
    if seq is None:
        await session.rollback()
    return seq


async def record_progress(
    session: AsyncSession, job: Job, worker_id: str, fraction: float, message: str | None
) -> bool:
    """Store progress and its event; False when the worker no longer holds the job."""
    fraction = min(1.0, max(0.0, fraction))
    seq = await _update_with_event(
        session,
        _held(job.id, worker_id),
        {"progress": fraction, "progress_message": message, "updated_at": utcnow()},
    )
    if seq is None:
        return False
    add_event(
        session,
        job.id,
        job.org_id,
        seq,
        EventType.PROGRESS,
        {"progress": fraction, "message": message},
    )
    await session.commit()
    return True


async def record_event(
    session: AsyncSession, job: Job, type_: EventType, data: dict[str, Any]
) -> None:
    await append_event(session, job.id, job.org_id, type_, data)
    await session.commit()


async def finish_job(
    session: AsyncSession,
    job: Job,
    worker_id: str,
    status: JobStatus,
    *,
    result: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
) -> bool:
    """Move a held job to a terminal status; False when the worker no longer holds it."""
    reason = check_transition(JobStatus.RUNNING, status)
    now = utcnow()
    values: dict[str, Any] = {
        "status": status,
        "result": result,
        "error": error,
        "finished_at": now,
        "lease_expires_at": None,
        "updated_at": now,
    }
    if status is JobStatus.SUCCEEDED:
        values["progress"] = 1.0
    seq = await _update_with_event(session, _held(job.id, worker_id), values)
    if seq is None:
        return False
    data: dict[str, Any] = {"status": status, "reason": reason, "attempt": job.attempts}
    if error is not None:
        data["error"] = error
    add_event(session, job.id, job.org_id, seq, EventType.STATUS, data)
    if job.started_at is not None:
        compute_ms = int((now - job.started_at).total_seconds() * 1000)
        await record_usage(session, job.org_id, Metric.COMPUTE_MS, compute_ms, user_id=job.user_id)
    await session.commit()
    return True


async def requeue_job(
    session: AsyncSession,
    job_id: int,
    org_id: int,
    *,
    run_after: datetime,
    why: str,
    error: dict[str, Any] | None = None,
    worker_id: str | None = None,
    refund_attempt: bool = False,
) -> bool:
    """Return a running job to the queue (running → queued) for another attempt.

    `refund_attempt` gives back the attempt (a worker shutting down is not the job's fault)."""
    reason = check_transition(JobStatus.RUNNING, JobStatus.QUEUED)
    jobs = jobs_table
    condition = (jobs.c.id == job_id) & (jobs.c.status == JobStatus.RUNNING)
    if worker_id is not None:
        condition = _held(job_id, worker_id)
    else:
        # The reaper: only while the lease is still expired, so a worker that renewed in the
        # meantime keeps its job (otherwise it would run twice).
        condition = condition & (jobs.c.lease_expires_at < utcnow())
    seq = await _update_with_event(
        session,
        condition,
        {
            "status": JobStatus.QUEUED,
            "worker_id": None,
            "lease_expires_at": None,
            "run_after": run_after,
            "error": error,
            "updated_at": utcnow(),
            "attempts": jobs.c.attempts - 1 if refund_attempt else jobs.c.attempts,
        },
    )
    if seq is None:
        return False
    data: dict[str, Any] = {"status": JobStatus.QUEUED, "reason": f"{reason}: {why}"}
    if error is not None:
        data["error"] = error
    add_event(session, job_id, org_id, seq, EventType.STATUS, data)
    await session.commit()
    return True


async def renew_leases(
    session: AsyncSession, worker_id: str, job_ids: Sequence[int], lease_s: float
) -> set[int]:
    """Extend the leases of the worker's running jobs; returns the ids still held."""
    if not job_ids:
        return set()
    jobs = jobs_table
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
    held = {row[0] for row in renewed}
    await session.commit()
    return held


async def cancel_requests(session: AsyncSession, job_ids: Sequence[int]) -> set[int]:
    """Which of these jobs a client asked to cancel."""
    if not job_ids:
        return set()
    jobs = jobs_table
    rows = await session.execute(
        select(jobs.c.id).where(jobs.c.id.in_(list(job_ids)), jobs.c.cancel_requested.is_(True))
    )
    return {row[0] for row in rows}
