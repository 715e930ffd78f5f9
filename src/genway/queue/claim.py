"""Claiming runnable jobs with a lease, as many as a worker has free slots, fairly across
organizations, in one UPDATE.

Policy: among active organizations with runnable jobs (queued, due, of a kind this worker takes),
slots go round-robin by how many jobs each already runs: the organization with the fewest
running jobs gets the first slot, then the next fewest (counting the slots just given), each
taking its highest-priority, oldest jobs; an organization never goes above its concurrency limit.
An organization with 10,000 queued jobs therefore waits its turn behind one with nothing
running: another organization's first job starts as soon as a worker frees up.
Held queues are part of the choice itself, so every worker process honours them at once: an
organization whose queue is paused (`queue_paused_at`) has no runnable jobs, and neither has a
kind a platform admin paused (`queue_pauses`); jobs already running are not affected.

Cost on PostgreSQL: per organization, one index probe (LATERAL) on `ix_jobs_org_queue (org_id,
status, priority DESC, id)` for its best `n` jobs, plus the running counts; the same with 50 or
50,000 jobs queued. SQLite has no LATERAL: its choice ranks every runnable job (through
`ix_jobs_claim`), so it grows with the backlog. The statements are built once per process and
reused with bind parameters (now, kinds, n).

PostgreSQL: the chosen rows are then locked with `FOR UPDATE SKIP LOCKED` in a statement of
their own (a row another worker is claiming is skipped, never waited for), and the UPDATE takes
those. When a chosen job's organization has a concurrency limit, the claim first locks those
organizations' rows and then chooses again, so two workers (even with different kinds) cannot
both take an organization's last slot.
SQLite: one `UPDATE ... WHERE id IN (SELECT ...)`; SQLite runs one writer at a time, so the
choice and the claim are atomic. An idle SQLite worker first looks (a read) whether anything is
runnable at all, so it never takes the write lock for nothing.
"""

from __future__ import annotations

import functools
from collections.abc import Hashable, Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import (
    BindParameter,
    Integer,
    Select,
    and_,
    bindparam,
    case,
    exists,
    func,
    literal,
    or_,
    select,
    true,
)
from sqlalchemy.ext.asyncio import AsyncSession

from genway.db import utcnow
from genway.jobs.lifecycle import transition
from genway.jobs.models import Job, jobs_table
from genway.jobs.states import JobStatus
from genway.orgs.models import Organization, OrgStatus
from genway.queue.models import PauseScope, queue_pauses
from genway.ratelimit.tiers import current_tier_table

jobs = jobs_table
orgs = Organization.__table__
NOW: BindParameter[Any] = bindparam("now")
KINDS: BindParameter[Any] = bindparam("kinds", expanding=True)
WANTED = bindparam("wanted", type_=Integer)


def _concurrency_limit() -> Any:
    """SQL for an organization's concurrency limit: its override, else its tier's (NULL: none)."""
    by_tier = case(
        *[
            (orgs.c.tier == tier.value, literal(limits.max_concurrent_jobs, Integer))
            for tier, limits in current_tier_table().items()
        ],
        else_=literal(None, Integer),
    )
    return func.coalesce(orgs.c.overrides["max_concurrent_jobs"].as_integer(), by_tier)


_PAUSED_KINDS = select(queue_pauses.c.target).where(queue_pauses.c.scope == PauseScope.KIND)


def _runnable(table: Any) -> Any:
    return and_(
        table.c.status == JobStatus.QUEUED,
        table.c.run_after <= NOW,
        table.c.kind.in_(KINDS),
        table.c.kind.not_in(_PAUSED_KINDS.scalar_subquery()),
    )


def _held_org(table: Any) -> Any:
    """The job's organization has paused its queue."""
    return exists().where(orgs.c.id == table.c.org_id, orgs.c.queue_paused_at.is_not(None))


@functools.cache
def _choice(tiers_id: int, org_filter: bool, lateral: bool) -> Select[Any]:
    """(job id, org id, org's limit) of the jobs to claim, best first. `org_filter` restricts
    it to the organizations in the expanding parameter `orgs`."""
    del tiers_id  # part of the cache key: the tier table's limits are literals in the SQL
    running = (
        select(jobs.c.org_id, func.count().label("n"))
        .where(jobs.c.status == JobStatus.RUNNING)
        .group_by(jobs.c.org_id)
        .subquery("running")
    )
    active = (
        select(
            orgs.c.id,
            func.coalesce(running.c.n, 0).label("in_use"),
            _concurrency_limit().label("max_running"),
        )
        .outerjoin(running, running.c.org_id == orgs.c.id)
        .where(orgs.c.status == OrgStatus.ACTIVE, orgs.c.queue_paused_at.is_(None))
    )
    if org_filter:
        active = active.where(orgs.c.id.in_(bindparam("orgs", expanding=True)))
    org = active.subquery("org")
    if lateral:
        # PostgreSQL: each organization's best `wanted` runnable jobs, one index probe each.
        best = jobs.alias("best")
        picks = (
            select(best.c.id, best.c.priority)
            .where(best.c.org_id == org.c.id, _runnable(best))
            .order_by(best.c.priority.desc(), best.c.id)
            .limit(WANTED)
            .lateral("pick")
        )
        source = (
            select(org, picks.c.id.label("job_id"), picks.c.priority)
            .select_from(org.join(picks, true()))
            .subquery("candidate")
        )
    else:
        # SQLite (no LATERAL): the runnable jobs, found through `ix_jobs_claim`.
        runnable = jobs.alias("runnable")
        source = (
            select(org, runnable.c.id.label("job_id"), runnable.c.priority)
            .join(runnable, runnable.c.org_id == org.c.id)
            .where(_runnable(runnable))
            .subquery("candidate")
        )
    job_id = source.c.job_id
    rank = func.row_number().over(
        partition_by=source.c.id, order_by=(source.c.priority.desc(), job_id)
    )
    ranked = select(
        job_id.label("id"),
        source.c.id.label("org_id"),
        source.c.priority,
        source.c.max_running,
        (source.c.in_use + rank).label("turn"),
    ).subquery("ranked")
    return (
        select(ranked.c.id, ranked.c.org_id, ranked.c.max_running)
        .where(or_(ranked.c.max_running.is_(None), ranked.c.turn <= ranked.c.max_running))
        .order_by(ranked.c.turn, ranked.c.priority.desc(), ranked.c.id)
        .limit(WANTED)
    )


_BY_IDS = jobs.c.id.in_(bindparam("ids", expanding=True))


@functools.cache
def _chosen_fence(tiers_id: int) -> Any:
    """SQLite: the claim's fence, the choice itself (one statement, atomic)."""
    choice = _choice(tiers_id, False, False)
    return jobs.c.id.in_(choice.with_only_columns(choice.selected_columns.id).scalar_subquery())


def _params(kinds: Sequence[str], wanted: int, **extra: Any) -> dict[str, Any]:
    return {"now": utcnow(), "kinds": list(kinds), "wanted": wanted, **extra}


async def claim_jobs(
    session: AsyncSession, worker_id: str, lease_s: float, kinds: Sequence[str], wanted: int
) -> list[Job]:
    """Claim up to `wanted` jobs by the policy above in the caller's transaction; the claimed
    jobs as they now are (detached objects)."""
    if wanted <= 0 or not kinds:
        return []
    postgres = session.bind.dialect.name == "postgresql"  # type: ignore[union-attr]
    if not postgres:
        anything = select(exists().where(_runnable(jobs), ~_held_org(jobs)))
        if not await session.scalar(anything, {"now": utcnow(), "kinds": list(kinds)}):
            return []
    tiers_id = id(current_tier_table())
    choice = _choice(tiers_id, False, postgres)
    params = _params(kinds, wanted)
    if postgres:
        picked = (await session.execute(choice, params)).all()
        limited = sorted({row.org_id for row in picked if row.max_running is not None})
        if limited:
            await session.execute(
                select(orgs.c.id)
                .where(orgs.c.id.in_(limited))
                .order_by(orgs.c.id)
                .with_for_update()
            )
            narrowed = _choice(tiers_id, True, True)
            # Decided again now that no other claimer can take these organizations' slots.
            unlimited = [row.id for row in picked if row.max_running is None]
            again = (await session.execute(narrowed, _params(kinds, wanted, orgs=limited))).all()
            ids = (unlimited + [row.id for row in again])[:wanted]
        else:
            ids = [row.id for row in picked]
        if not ids:
            return []
        # Locked first, in a statement of its own: as a subquery of the UPDATE, PostgreSQL
        # runs a locking sublink once per row it scans.
        locked = await session.scalars(
            select(jobs.c.id)
            .where(jobs.c.id.in_(ids), jobs.c.status == JobStatus.QUEUED)
            .with_for_update(skip_locked=True)
        )
        ids = list(locked)
        if not ids:
            return []
        where, params = _BY_IDS, {"ids": ids}
        shape: Hashable = "claim"
    else:
        where, shape = _chosen_fence(tiers_id), ("claim", tiers_id)
    now = utcnow()
    rows = await transition(
        session,
        JobStatus.QUEUED,
        JobStatus.RUNNING,
        where,
        values={"worker_id": worker_id, "lease_expires_at": now + timedelta(seconds=lease_s)},
        event={"worker_id": worker_id},
        returning=tuple(jobs.c),
        now=now,
        params=params,
        shape=shape,
    )
    return [Job(**{column.name: row._mapping[column.name] for column in jobs.c}) for row in rows]
