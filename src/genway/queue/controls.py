"""Steering the queue: an organization pauses and resumes its own queue and reorders its queued
jobs; platform admins hold a job kind or a ComfyUI backend for maintenance.

Every hold lives in the database and the claim (`claim.py`) reads it in the statement that
chooses jobs, so it holds in every worker process at once. Reordering changes only a job's
`priority`, which orders an organization's own jobs: the fair share between organizations
(fewest running first) is decided before priority and does not move.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from genway.db import utcnow
from genway.engines.comfyui.pool import BackendPool, backend_id
from genway.errors import Conflict, Forbidden, NotFound
from genway.jobs.models import Job, jobs_table
from genway.jobs.service import get_job, org_jobs
from genway.jobs.states import JobStatus
from genway.kit.redact import redact_urls
from genway.orgevents.emit import emit
from genway.orgevents.types import QUEUE_PAUSED, QUEUE_PRIORITY_CHANGED, QUEUE_RESUMED
from genway.orgs.models import Organization
from genway.queue.models import PauseScope, QueuePause
from genway.queue.schemas import (
    PRIORITY_MAX,
    BackendView,
    MaintenanceView,
    OrgQueue,
    QueuedJob,
    QueuePauseView,
    WaitingFor,
)
from genway.queue.wakeup import notify_queued
from genway.worker.registry import known_kinds


class JobNotQueued(Conflict):
    detail = "Only a queued job can be reordered"


class UnknownKind(NotFound):
    detail = "Unknown job kind"


class UnknownBackend(NotFound):
    detail = "Unknown ComfyUI backend"


@dataclass(frozen=True)
class Reorderer:
    """Who asks to reorder a job: a queue manager (admin, owner) may reorder any job of the
    organization, anyone else who may submit jobs only their own."""

    user_id: int
    manages_queue: bool
    submits_jobs: bool


async def pause_org_queue(session: AsyncSession, org_id: int, user_id: int) -> None:
    """Hold the organization's queued jobs (running ones finish); a no-op when already held."""
    if await _set_paused(session, org_id, utcnow()):
        await emit(session, org_id, QUEUE_PAUSED, {"paused": True, "by_user_id": user_id})


async def resume_org_queue(session: AsyncSession, org_id: int, user_id: int) -> None:
    """Let the organization's queued jobs start again; a no-op when not held."""
    if await _set_paused(session, org_id, None):
        await emit(session, org_id, QUEUE_RESUMED, {"paused": False, "by_user_id": user_id})
        await notify_queued(session)


async def _set_paused(session: AsyncSession, org_id: int, moment: datetime | None) -> bool:
    """Whether the organization's hold changed (one statement: two managers pausing at once
    record one event)."""
    held = Organization.queue_paused_at
    changed = await session.scalar(
        update(Organization)
        .where(Organization.id == org_id, held.is_(None) if moment else held.is_not(None))
        .values(queue_paused_at=moment)
        .returning(Organization.id)
        .execution_options(synchronize_session=False)
    )
    return changed is not None


async def org_queue(session: AsyncSession, org_id: int, limit: int) -> OrgQueue:
    """The organization's queue: held or not, jobs by status, and its first `limit` queued
    jobs in the order they will start."""
    paused_at = await session.scalar(
        select(Organization.queue_paused_at).where(Organization.id == org_id)
    )
    by_status = await session.execute(
        select(Job.status, func.count(Job.id)).where(Job.org_id == org_id).group_by(Job.status)
    )
    counts = {status.value: 0 for status in JobStatus} | {s: int(n) for s, n in by_status}
    paused_kinds = set(await _targets(session, PauseScope.KIND))
    queued = (
        await session.scalars(
            org_jobs(org_id)
            .where(Job.status == JobStatus.QUEUED)
            .order_by(Job.priority.desc(), Job.id)
            .limit(limit)
        )
    ).all()
    now = utcnow()

    def waiting_for(job: Job) -> WaitingFor | None:
        if paused_at is not None:
            return "queue_paused"
        if job.kind in paused_kinds:
            return "kind_paused"
        return "retry_delay" if job.run_after > now else None

    return OrgQueue(
        org_id=org_id,
        paused=paused_at is not None,
        paused_at=paused_at,
        counts=counts,
        paused_kinds=sorted(paused_kinds),
        pending=[_queued(job, n, waiting_for(job)) for n, job in enumerate(queued, start=1)],
    )


def _queued(job: Job, position: int, waiting_for: WaitingFor | None) -> QueuedJob:
    return QueuedJob(
        position=position,
        id=job.id,
        kind=job.kind,
        priority=job.priority,
        user_id=job.user_id,
        created_at=job.created_at,
        run_after=job.run_after,
        waiting_for=waiting_for,
    )


async def set_priority(
    session: AsyncSession, org_id: int, job_id: int, who: Reorderer, priority: int
) -> QueuedJob:
    """Change a queued job's priority. Raises JobNotFound, Forbidden, JobNotQueued."""
    job = await _reorderable(session, org_id, job_id, who)
    return await _reprioritize(session, job, priority, who, moved_to_front=False)


async def move_to_front(
    session: AsyncSession, org_id: int, job_id: int, who: Reorderer
) -> QueuedJob:
    """Put a queued job ahead of the organization's other queued jobs (priority: their highest
    plus one). Raises JobNotFound, Forbidden, JobNotQueued, and Conflict when jobs queued
    before it already have the highest priority allowed."""
    job = await _reorderable(session, org_id, job_id, who)
    others = org_jobs(org_id).where(Job.status == JobStatus.QUEUED, Job.id != job.id)
    top = await session.scalar(others.with_only_columns(func.max(Job.priority)))
    if top is None or job.priority > top:
        return _queued(job, 1, None)
    if top >= PRIORITY_MAX:
        first = await session.scalar(
            others.with_only_columns(func.min(Job.id)).where(Job.priority == PRIORITY_MAX)
        )
        if first is not None and first < job.id:
            raise Conflict(
                f"Jobs queued before {job.id} already have the highest priority "
                f"({PRIORITY_MAX}); lower theirs to move this one ahead"
            )
    return await _reprioritize(session, job, min(top + 1, PRIORITY_MAX), who, moved_to_front=True)


async def _reorderable(session: AsyncSession, org_id: int, job_id: int, who: Reorderer) -> Job:
    job = await get_job(session, org_id, job_id)
    mine = job.user_id is not None and job.user_id == who.user_id and who.submits_jobs
    if not (who.manages_queue or mine):
        raise Forbidden("Only an admin, an owner or the job's submitter may reorder it")
    if job.status != JobStatus.QUEUED:
        raise JobNotQueued(f"Job {job.id} is {job.status}; only a queued job can be reordered")
    return job


async def _reprioritize(
    session: AsyncSession, job: Job, priority: int, who: Reorderer, *, moved_to_front: bool
) -> QueuedJob:
    previous = job.priority
    # Fenced on the status: a worker that claimed the job meanwhile wins, and this is a 409.
    changed = await session.scalar(
        update(jobs_table)
        .where(jobs_table.c.id == job.id, jobs_table.c.status == JobStatus.QUEUED)
        .values(priority=priority, updated_at=utcnow())
        .returning(jobs_table.c.id)
    )
    if changed is None:
        raise JobNotQueued(f"Job {job.id} started meanwhile; only a queued job can be reordered")
    await session.refresh(job)
    data = {
        "job_id": job.id,
        "priority": priority,
        "previous_priority": previous,
        "moved_to_front": moved_to_front,
        "by_user_id": who.user_id,
    }
    await emit(session, job.org_id, QUEUE_PRIORITY_CHANGED, data)
    return _queued(job, await _position(session, job), None)


async def _position(session: AsyncSession, job: Job) -> int:
    """1 + the organization's queued jobs that start before it."""
    ahead = await session.scalar(
        org_jobs(job.org_id)
        .with_only_columns(func.count(Job.id))
        .where(
            Job.status == JobStatus.QUEUED,
            or_(
                Job.priority > job.priority,
                and_(Job.priority == job.priority, Job.id < job.id),
            ),
        )
    )
    return int(ahead or 0) + 1


async def _targets(session: AsyncSession, scope: PauseScope) -> Sequence[str]:
    query = select(QueuePause.target).where(QueuePause.scope == scope)
    return (await session.scalars(query)).all()


async def pause_kind(
    session: AsyncSession, kind: str, user_id: int, reason: str | None
) -> QueuePause:
    """No worker claims jobs of `kind` until it is resumed. Raises UnknownKind."""
    if kind not in known_kinds():
        raise UnknownKind(f"Unknown job kind '{kind}'; known kinds: {', '.join(known_kinds())}")
    return await _hold(session, PauseScope.KIND, kind, user_id, reason)


async def resume_kind(session: AsyncSession, kind: str) -> None:
    """Let workers claim jobs of `kind` again (a no-op when not held)."""
    await _release(session, PauseScope.KIND, kind)
    await notify_queued(session)


async def pause_backend(
    session: AsyncSession, pool: BackendPool | None, id_: str, user_id: int, reason: str | None
) -> QueuePause:
    """No new prompt goes to the backend `id_` (prompts there finish). Raises UnknownBackend."""
    _check_backend(pool, id_)
    return await _hold(session, PauseScope.BACKEND, id_, user_id, reason)


async def resume_backend(session: AsyncSession, pool: BackendPool | None, id_: str) -> None:
    """The backend `id_` takes new prompts again. Raises UnknownBackend."""
    _check_backend(pool, id_)
    await _release(session, PauseScope.BACKEND, id_)


def _check_backend(pool: BackendPool | None, id_: str) -> None:
    if pool is None or id_ not in {backend_id(url) for url in pool.backends}:
        raise UnknownBackend(f"No ComfyUI backend '{id_}' is configured")


async def _hold(
    session: AsyncSession, scope: PauseScope, target: str, user_id: int, reason: str | None
) -> QueuePause:
    held = await session.scalar(
        select(QueuePause).where(QueuePause.scope == scope, QueuePause.target == target)
    )
    if held is None:
        held = QueuePause(scope=scope, target=target, reason=reason, paused_by=user_id)
        session.add(held)
        await session.flush()
    return held


async def _release(session: AsyncSession, scope: PauseScope, target: str) -> None:
    await session.execute(
        delete(QueuePause).where(QueuePause.scope == scope, QueuePause.target == target)
    )


async def maintenance(session: AsyncSession) -> MaintenanceView:
    """Every hold on the queue: paused kinds and backends, organizations that paused theirs."""
    holds = (await session.scalars(select(QueuePause).order_by(QueuePause.id))).all()
    orgs = await session.scalars(
        select(Organization.id)
        .where(Organization.queue_paused_at.is_not(None))
        .order_by(Organization.id)
    )
    views = [QueuePauseView.model_validate(hold) for hold in holds]
    return MaintenanceView(
        paused_kinds=[v for v in views if v.scope == PauseScope.KIND],
        paused_backends=[v for v in views if v.scope == PauseScope.BACKEND],
        paused_org_ids=list(orgs),
    )


async def backends(session: AsyncSession, pool: BackendPool | None) -> list[BackendView]:
    """The configured ComfyUI backends with their health and whether they are paused."""
    if pool is None:
        return []
    paused = set(await _targets(session, PauseScope.BACKEND))
    snapshots = pool.snapshot()
    return [
        BackendView(
            id=backend_id(url),
            url=redact_urls(url),
            state=snapshot.state,
            queue_length=snapshot.queue_length,
            paused=backend_id(url) in paused,
        )
        for url, snapshot in zip(pool.backends, snapshots, strict=True)
    ]
