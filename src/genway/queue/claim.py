"""Claiming the next runnable job with a lease, fairly across organizations.

Policy: among runnable jobs (queued, due, of a kind this worker takes, of an active organization
below its concurrency limit), take the organization with the fewest running jobs first, then the
highest priority, then the oldest. An organization with 10,000 queued jobs therefore waits its
turn behind one that has nothing running: another organization's first job starts as soon as a
worker frees up, at most one job-duration later.

PostgreSQL: the candidate row is locked with `FOR UPDATE SKIP LOCKED`, so concurrent workers never
block on or double-claim it; when the organization has a concurrency limit its row is locked
too and the running count re-read, so two workers cannot both take its last slot. SQLite: one
`UPDATE ... WHERE id = (SELECT ...)` statement; SQLite runs one writer at a time, so the check
and the claim are atomic.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Integer, and_, case, func, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from genway.db import utcnow
from genway.jobs.events import EventType, append_event
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
    override = orgs.c.overrides["max_concurrent_jobs"].as_integer()
    return func.coalesce(override, by_tier)


def _candidate_query(now: datetime, kinds: Sequence[str] | None, skip_orgs: set[int]) -> Any:
    jobs = jobs_table
    orgs = Organization.__table__
    running = (
        select(jobs.c.org_id, func.count().label("n"))
        .where(jobs.c.status == JobStatus.RUNNING)
        .group_by(jobs.c.org_id)
        .subquery("running")
    )
    in_use = func.coalesce(running.c.n, 0)
    limit = _concurrency_limit()
    query = (
        select(jobs.c.id, jobs.c.org_id, limit.label("limit"))
        .join(orgs, orgs.c.id == jobs.c.org_id)
        .outerjoin(running, running.c.org_id == jobs.c.org_id)
        .where(
            jobs.c.status == JobStatus.QUEUED,
            jobs.c.run_after <= now,
            orgs.c.status == OrgStatus.ACTIVE,
            or_(limit.is_(None), in_use < limit),
        )
        .order_by(in_use, jobs.c.priority.desc(), jobs.c.id)
        .limit(1)
    )
    if kinds:
        query = query.where(jobs.c.kind.in_(list(kinds)))
    if skip_orgs:
        query = query.where(jobs.c.org_id.not_in(skip_orgs))
    return query


def _claim_values(worker_id: str, lease_s: float, now: datetime) -> dict[str, Any]:
    return {
        "status": JobStatus.RUNNING,
        "attempts": jobs_table.c.attempts + 1,
        "worker_id": worker_id,
        "lease_expires_at": now + timedelta(seconds=lease_s),
        "started_at": now,
        "progress": 0.0,
        "progress_message": None,
        "updated_at": now,
    }


async def _claim_postgres(
    session: AsyncSession, worker_id: str, lease_s: float, kinds: Sequence[str] | None
) -> int | None:
    jobs = jobs_table
    skip: set[int] = set()
    for _ in range(MAX_CANDIDATES):
        now = utcnow()
        query = _candidate_query(now, kinds, skip).with_for_update(of=jobs, skip_locked=True)
        row = (await session.execute(query)).first()
        if row is None:
            return None
        job_id, org_id, limit = row
        if limit is not None:
            await session.execute(
                select(Organization.id).where(Organization.id == org_id).with_for_update()
            )
            running = await session.scalar(
                select(func.count()).where(
                    jobs.c.org_id == org_id, jobs.c.status == JobStatus.RUNNING
                )
            )
            if int(running or 0) >= limit:
                skip.add(org_id)  # another worker just took its last slot
                continue
        await session.execute(
            update(jobs).where(jobs.c.id == job_id).values(**_claim_values(worker_id, lease_s, now))
        )
        return int(job_id)
    return None


async def _claim_sqlite(
    session: AsyncSession, worker_id: str, lease_s: float, kinds: Sequence[str] | None
) -> int | None:
    jobs = jobs_table
    now = utcnow()
    candidate = _candidate_query(now, kinds, set()).with_only_columns(jobs.c.id)
    claimed = await session.scalar(
        update(jobs)
        .where(and_(jobs.c.id == candidate.scalar_subquery(), jobs.c.status == JobStatus.QUEUED))
        .values(**_claim_values(worker_id, lease_s, now))
        .returning(jobs.c.id)
    )
    return int(claimed) if claimed is not None else None


async def claim_next_job(
    session: AsyncSession,
    worker_id: str,
    lease_s: float,
    kinds: Sequence[str] | None = None,
) -> Job | None:
    """Claim the next job by the fairness policy above; None when there is none. Commits."""
    if session.bind.dialect.name == "postgresql":  # type: ignore[union-attr]
        claimed_id = await _claim_postgres(session, worker_id, lease_s, kinds)
    else:
        claimed_id = await _claim_sqlite(session, worker_id, lease_s, kinds)
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
