"""Claiming the next runnable job with a lease, fairly across organizations.

Policy: among organizations that are active, below their concurrency limit and have a runnable
job (queued, due, of a kind this worker takes), take the one with the fewest running jobs first,
then its highest-priority, oldest job. An organization with 10,000 queued jobs therefore waits
its turn behind one that has nothing running: another organization's first job starts as soon
as a worker frees up, at most one job-duration later.

Cost: one index probe per organization (its best runnable job, on
`ix_jobs_org_queue (org_id, status, priority DESC, id)`) plus the running counts, so a claim
costs the same with 50 or 50,000 jobs in the backlog.

PostgreSQL: the chosen row is locked with `FOR UPDATE SKIP LOCKED` (a row another worker is
claiming is skipped, never waited for); when the organization has a concurrency limit its row is
locked too and the running count re-read, so two workers cannot both take its last slot.
SQLite: one `UPDATE ... WHERE id = (SELECT ...)` statement; SQLite runs one writer at a time, so
the check and the claim are atomic.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Integer, case, func, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from genway.db import utcnow
from genway.jobs.events import EventType, add_event
from genway.jobs.models import Job, jobs_table
from genway.jobs.states import JobStatus, check_transition
from genway.orgs.models import Organization, OrgStatus
from genway.ratelimit.tiers import current_tier_table

MAX_CANDIDATES = 5


def _concurrency_limit() -> Any:
    """SQL for an organization's concurrency limit: its override, else its tier's (NULL: none)."""
    orgs = Organization.__table__
    by_tier = case(
        *[
            (orgs.c.tier == tier.value, literal(limits.max_concurrent_jobs, Integer))
            for tier, limits in current_tier_table().items()
        ],
        else_=literal(None, Integer),
    )
    return func.coalesce(orgs.c.overrides["max_concurrent_jobs"].as_integer(), by_tier)


def _candidate_query(
    now: datetime, kinds: Sequence[str] | None, skip_jobs: set[int], skip_orgs: set[int]
) -> Any:
    """(job id, org id, org's concurrency limit) of the next job by the policy above."""
    jobs = jobs_table
    orgs = Organization.__table__
    inner = jobs.alias("best")
    best_job = (
        select(inner.c.id)
        .where(
            inner.c.org_id == orgs.c.id,
            inner.c.status == JobStatus.QUEUED,
            inner.c.run_after <= now,
        )
        .order_by(inner.c.priority.desc(), inner.c.id)
        .limit(1)
    )
    if kinds:
        best_job = best_job.where(inner.c.kind.in_(list(kinds)))
    if skip_jobs:
        best_job = best_job.where(inner.c.id.not_in(skip_jobs))
    running = (
        select(jobs.c.org_id, func.count().label("n"))
        .where(jobs.c.status == JobStatus.RUNNING)
        .group_by(jobs.c.org_id)
        .subquery("running")
    )
    limit = _concurrency_limit()
    candidates = (
        select(
            orgs.c.id.label("org_id"),
            func.coalesce(running.c.n, 0).label("in_use"),
            limit.label("max_running"),
            best_job.scalar_subquery().label("job_id"),
        )
        .outerjoin(running, running.c.org_id == orgs.c.id)
        .where(orgs.c.status == OrgStatus.ACTIVE)
    )
    if skip_orgs:
        candidates = candidates.where(orgs.c.id.not_in(skip_orgs))
    cand = candidates.subquery("candidates")
    # Aliased, so that inside `UPDATE jobs ... WHERE id = (this)` nothing correlates to the
    # table being updated.
    picked = jobs.alias("picked")
    return (
        select(cand.c.job_id, cand.c.org_id, cand.c.max_running)
        .join(picked, picked.c.id == cand.c.job_id)
        .where(or_(cand.c.max_running.is_(None), cand.c.in_use < cand.c.max_running))
        .order_by(cand.c.in_use, picked.c.priority.desc(), picked.c.id)
        .limit(1)
    )


def _claim(job_id: Any, worker_id: str, lease_s: float, now: datetime) -> Any:
    """The UPDATE that makes a queued job running, taking its next event number in passing."""
    return (
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.QUEUED)
        .values(
            status=JobStatus.RUNNING,
            attempts=Job.attempts + 1,
            worker_id=worker_id,
            lease_expires_at=now + timedelta(seconds=lease_s),
            started_at=now,
            progress=0.0,
            progress_message=None,
            updated_at=now,
            last_event_seq=Job.last_event_seq + 1,
        )
        .returning(Job)
        .execution_options(synchronize_session=False)
    )


async def _claim_postgres(
    session: AsyncSession, worker_id: str, lease_s: float, kinds: Sequence[str] | None
) -> Job | None:
    jobs = jobs_table
    skip_jobs: set[int] = set()
    skip_orgs: set[int] = set()
    for _ in range(MAX_CANDIDATES):
        now = utcnow()
        row = (await session.execute(_candidate_query(now, kinds, skip_jobs, skip_orgs))).first()
        if row is None:
            return None
        job_id, org_id, max_running = row
        locked = await session.scalar(
            select(jobs.c.id)
            .where(jobs.c.id == job_id, jobs.c.status == JobStatus.QUEUED)
            .with_for_update(skip_locked=True)
        )
        if locked is None:
            skip_jobs.add(job_id)  # another worker is claiming it right now
            continue
        if max_running is not None:
            await session.execute(
                select(Organization.id).where(Organization.id == org_id).with_for_update()
            )
            running = await session.scalar(
                select(func.count()).where(
                    jobs.c.org_id == org_id, jobs.c.status == JobStatus.RUNNING
                )
            )
            if int(running or 0) >= max_running:
                skip_orgs.add(org_id)  # another worker just took its last slot
                continue
        job: Job | None = await session.scalar(_claim(job_id, worker_id, lease_s, now))
        return job
    return None


async def _claim_sqlite(
    session: AsyncSession, worker_id: str, lease_s: float, kinds: Sequence[str] | None
) -> Job | None:
    now = utcnow()
    query = _candidate_query(now, kinds, set(), set())
    candidate = query.with_only_columns(query.selected_columns.job_id)
    job: Job | None = await session.scalar(
        _claim(candidate.scalar_subquery(), worker_id, lease_s, now)
    )
    return job


async def claim_next_job(
    session: AsyncSession,
    worker_id: str,
    lease_s: float,
    kinds: Sequence[str] | None = None,
) -> Job | None:
    """Claim the next job by the fairness policy above; None when there is none. Commits."""
    if session.bind.dialect.name == "postgresql":  # type: ignore[union-attr]
        job = await _claim_postgres(session, worker_id, lease_s, kinds)
    else:
        job = await _claim_sqlite(session, worker_id, lease_s, kinds)
    if job is None:
        await session.rollback()
        return None
    add_event(
        session,
        job.id,
        job.org_id,
        job.last_event_seq,
        EventType.STATUS,
        {
            "status": JobStatus.RUNNING,
            "reason": check_transition(JobStatus.QUEUED, JobStatus.RUNNING),
            "attempt": job.attempts,
            "worker_id": worker_id,
        },
    )
    await session.commit()
    return job
