"""Claiming the next runnable job with a lease, in one statement.

PostgreSQL: `UPDATE ... WHERE id = (SELECT ... FOR UPDATE SKIP LOCKED)`, so concurrent workers
never block on or double-claim the same row. SQLite: the same statement without the lock clause;
SQLite runs one writer at a time, so the statement is atomic on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from genway.db import utcnow
from genway.jobs.events import EventType, append_event
from genway.jobs.models import Job, jobs_table
from genway.jobs.states import JobStatus, check_transition


async def claim_next_job(
    session: AsyncSession,
    worker_id: str,
    lease_s: float,
    kinds: Sequence[str] | None = None,
) -> Job | None:
    """Claim the highest-priority, oldest runnable job; None when there is none. Commits."""
    jobs = jobs_table
    now = utcnow()
    candidate = (
        select(jobs.c.id)
        .where(jobs.c.status == JobStatus.QUEUED, jobs.c.run_after <= now)
        .order_by(jobs.c.priority.desc(), jobs.c.id)
        .limit(1)
    )
    if kinds:
        candidate = candidate.where(jobs.c.kind.in_(list(kinds)))
    if session.bind.dialect.name == "postgresql":  # type: ignore[union-attr]
        candidate = candidate.with_for_update(skip_locked=True)
    claimed_id = await session.scalar(
        update(jobs)
        .where(jobs.c.id == candidate.scalar_subquery(), jobs.c.status == JobStatus.QUEUED)
        .values(
            status=JobStatus.RUNNING,
            attempts=jobs.c.attempts + 1,
            worker_id=worker_id,
            lease_expires_at=now + timedelta(seconds=lease_s),
            started_at=now,
            progress=0.0,
            progress_message=None,
            updated_at=now,
        )
        .returning(jobs.c.id)
    )
    if claimed_id is None:
        await session.rollback()
        return None
    job = await session.get(Job, claimed_id, populate_existing=True)
    assert job is not None
    reason = check_transition(JobStatus.QUEUED, JobStatus.RUNNING)
    await append_event(
        session,
        job.id,
        job.org_id,
        EventType.STATUS,
        {
            "status": JobStatus.RUNNING,
            "reason": reason,
            "attempt": job.attempts,
            "worker_id": worker_id,
        },
    )
    await session.commit()
    return job
