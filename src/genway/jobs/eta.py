"""When will a job run: `estimated_start_at` of a queued job, `estimated_finish_at` of a running
one, from its kind's recent run times and the capacity it waits for. Estimates, not promises.

Run time of a kind: the median duration (`started_at` → `finished_at`) of its last 50 succeeded
jobs in the job's organization when it has at least 5 of them, else of every organization's,
else 60 s. (An executor's `default_timeout_s` bounds a run; it does not estimate one.)

Capacity: Genway keeps no registry of worker processes, so the worker slots are what is
knowable: `GENWAY_WORKER_CONCURRENCY` slots for each worker holding a job right now (at least
one worker, and never fewer slots than jobs running). Workers started with another
`--concurrency`, or idle ones, are not seen. An organization gets the share of those slots the
claim's fairness gives it (water-filled across the organizations with work, each capped by its
concurrency limit), at most its own limit and at least one slot.

Start of a queued job: the claim played forward over its organization's queue in the claim's
order (priority, then age) on the organization's slots. A slot frees when the running job that
holds it is expected to finish; each queued job takes the first free slot once it is due
(`run_after`: a retry's back-off, a deferral, a plan waiting for confirmation) and holds it for
its kind's run time. Beyond the first `QUEUE_HORIZON` queued jobs, the rest of the queue is
counted, not played.

Finish of a running job: `started_at` + its kind's run time. A job that has run longer than that
is overdue: its estimate stays `OVERDUE_MARGIN_S` ahead of now ("any moment"), never in the
past. Finished jobs, and queued jobs of a suspended organization, of a paused queue or of a
kind paused for maintenance, have neither (null).

Run times and the other organizations' demand are cached per process for `ttl_s`
(`GENWAY_ETA_CACHE_S`); the job's own organization's queue and running jobs are read fresh.
"""

from __future__ import annotations

import heapq
import statistics
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from genway.db import utcnow
from genway.jobs.models import Job
from genway.jobs.service import org_jobs
from genway.jobs.states import JobStatus
from genway.orgs.models import Organization, OrgStatus
from genway.queue.models import PauseScope, QueuePause
from genway.ratelimit.tiers import limits_for

DEFAULT_RUN_S = 60.0
SAMPLE = 50
ORG_MIN_SAMPLES = 5
OVERDUE_MARGIN_S = 1.0
QUEUE_HORIZON = 1000


@dataclass(frozen=True)
class RunTime:
    seconds: float
    samples: int
    scope: str  # "organization", "all" or "default"


@dataclass(frozen=True)
class Eta:
    start_at: datetime | None = None
    finish_at: datetime | None = None


async def typical_run_time(
    session: AsyncSession, org_id: int, kind: str, *, variant: tuple[str, str] | None = None
) -> RunTime:
    """How long a job of `kind` (whose input has `variant` = (key, value), when given) runs,
    by the rule in the module's docstring. Uncached: `Estimator.run_time` caches it."""
    own = await _durations(session, kind, variant, org_id)
    if len(own) >= ORG_MIN_SAMPLES:
        return RunTime(statistics.median(own), len(own), "organization")
    everyone = await _durations(session, kind, variant, None)
    if everyone:
        return RunTime(statistics.median(everyone), len(everyone), "all")
    return RunTime(DEFAULT_RUN_S, 0, "default")


async def _durations(
    session: AsyncSession, kind: str, variant: tuple[str, str] | None, org_id: int | None
) -> list[float]:
    query = org_jobs(org_id) if org_id is not None else select(Job)
    query = query.where(
        Job.kind == kind,
        Job.status == JobStatus.SUCCEEDED,
        Job.started_at.is_not(None),
        Job.finished_at.is_not(None),
    )
    if variant is not None:
        query = query.where(Job.input[variant[0]].as_string() == variant[1])
    columns = query.with_only_columns(Job.started_at, Job.finished_at)
    rows = (await session.execute(columns.order_by(Job.id.desc()).limit(SAMPLE))).all()
    return [max(0.0, (done - start).total_seconds()) for start, done in rows if start and done]


@dataclass
class Demand:
    """Every organization's claim on the worker slots: running jobs and jobs due now."""

    slots: int
    running: list[tuple[int, str, datetime]]  # (org id, kind, started_at)
    wanted: dict[int, int]  # org id -> running + due jobs, capped by its limit
    limits: dict[int, int | None] = field(default_factory=dict)
    active: set[int] = field(default_factory=set)  # neither suspended nor paused
    paused_kinds: frozenset[str] = frozenset()  # held for maintenance: nobody claims them


class Estimator:
    """The estimates of one process (one per app), with its caches."""

    def __init__(self, worker_concurrency: int, ttl_s: float) -> None:
        self.worker_concurrency = worker_concurrency
        self.ttl_s = ttl_s
        self._run_times: dict[tuple[int, str], tuple[float, RunTime]] = {}
        self._demand: tuple[float, Demand] | None = None

    async def run_time(self, session: AsyncSession, org_id: int, kind: str) -> RunTime:
        """`typical_run_time`, cached for `ttl_s`."""
        cached = self._run_times.get((org_id, kind))
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        found = await typical_run_time(session, org_id, kind)
        if len(self._run_times) > 10_000:
            self._run_times.clear()
        self._run_times[(org_id, kind)] = (time.monotonic() + self.ttl_s, found)
        return found

    async def estimate(self, session: AsyncSession, jobs: Iterable[Job]) -> dict[int, Eta]:
        """The estimates of `jobs` (queued and running ones; others get none), by job id, in a
        few queries for the whole batch."""
        now = utcnow()
        estimates: dict[int, Eta] = {}
        queued: dict[int, list[Job]] = {}
        for job in jobs:
            if job.status == JobStatus.RUNNING and job.started_at is not None:
                run_s = (await self.run_time(session, job.org_id, job.kind)).seconds
                estimates[job.id] = Eta(finish_at=_finish(job.started_at, run_s, now))
            elif job.status == JobStatus.QUEUED:
                queued.setdefault(job.org_id, []).append(job)
        if queued:
            demand = await self._current_demand(session, now, set(queued))
            for org_id, waiting in queued.items():
                starts = await self._starts(session, org_id, waiting, demand, now)
                estimates.update({i: Eta(start_at=at) for i, at in starts.items()})
        return estimates

    async def _current_demand(self, session: AsyncSession, now: datetime, orgs: set[int]) -> Demand:
        cached = self._demand
        if cached is None or cached[0] <= time.monotonic() or not orgs <= cached[1].limits.keys():
            cached = (time.monotonic() + self.ttl_s, await self._read_demand(session, now, orgs))
            self._demand = cached
        return cached[1]

    async def _read_demand(self, session: AsyncSession, now: datetime, orgs: set[int]) -> Demand:
        running_rows = (
            await session.execute(
                select(Job.org_id, Job.kind, Job.started_at, Job.worker_id).where(
                    Job.status == JobStatus.RUNNING
                )
            )
        ).all()
        due = (
            await session.execute(
                select(Job.org_id, func.count())
                .where(Job.status == JobStatus.QUEUED, Job.run_after <= now)
                .group_by(Job.org_id)
            )
        ).all()
        wanted: dict[int, int] = {org_id: int(n) for org_id, n in due}
        for row in running_rows:
            wanted[row.org_id] = wanted.get(row.org_id, 0) + 1
        involved = orgs | wanted.keys()
        rows = await session.scalars(select(Organization).where(Organization.id.in_(involved)))
        limits, active = {}, set()
        for org in rows:
            limits[org.id] = limits_for(org).max_concurrent_jobs
            if org.status == OrgStatus.ACTIVE and org.queue_paused_at is None:
                active.add(org.id)
        workers = {row.worker_id for row in running_rows if row.worker_id is not None}
        held = await session.scalars(
            select(QueuePause.target).where(QueuePause.scope == PauseScope.KIND)
        )
        return Demand(
            slots=max(self.worker_concurrency * max(1, len(workers)), len(running_rows)),
            running=[(r.org_id, r.kind, r.started_at) for r in running_rows if r.started_at],
            wanted={o: min(n, limits.get(o) or n) for o, n in wanted.items() if o in active},
            limits=limits,
            active=active,
            paused_kinds=frozenset(held),
        )

    async def _starts(
        self,
        session: AsyncSession,
        org_id: int,
        waiting: list[Job],
        demand: Demand,
        now: datetime,
    ) -> dict[int, datetime]:
        """Start estimates of an organization's queued `waiting` jobs (none while it is
        suspended or its queue is paused, nor for a kind paused for maintenance)."""
        if org_id not in demand.active:
            return {}
        waiting = [job for job in waiting if job.kind not in demand.paused_kinds]
        own_running = (
            await session.execute(
                org_jobs(org_id)
                .with_only_columns(Job.kind, Job.started_at)
                .where(Job.status == JobStatus.RUNNING)
            )
        ).all()
        queue = (
            await session.execute(
                org_jobs(org_id)
                .with_only_columns(Job.id, Job.kind, Job.priority, Job.run_after)
                .where(Job.status == JobStatus.QUEUED, Job.kind.not_in(demand.paused_kinds))
                .order_by(Job.priority.desc(), Job.id)
                .limit(QUEUE_HORIZON)
            )
        ).all()
        run_s = {
            kind: (await self.run_time(session, org_id, kind)).seconds
            for kind in {row.kind for row in (*own_running, *queue)} | {j.kind for j in waiting}
        }
        slots = org_slots(demand, org_id)
        own = [_remaining(started, run_s[kind], now) for kind, started in own_running if started]
        idle = max(0, demand.slots - len(demand.running))
        others = []
        if len(own) + idle < slots:  # it waits for other organizations' jobs to end
            others = [
                _remaining(started, (await self.run_time(session, o, kind)).seconds, now)
                for o, kind, started in demand.running
                if o != org_id
            ]
        free = initial_slots(slots, own, others, idle)
        played = [
            Queued(row.id, row.priority, (row.run_after - now).total_seconds(), run_s[row.kind])
            for row in queue
        ]
        starts, next_free = play_queue(free, played)
        # Exact at the datetime's resolution: never a microsecond before `run_after`.
        due_at = {row.id: row.run_after for row in queue}
        at = {i: max(now + timedelta(seconds=s), due_at[i]) for i, s in starts.items()}
        # Not in a queue read whole: no longer queued. Past the horizon: counted, not played.
        beyond = [job for job in waiting if job.id not in at and len(queue) == QUEUE_HORIZON]
        if beyond:
            mean_s = statistics.fmean(q.run_s for q in played) if played else DEFAULT_RUN_S
            for job in beyond:
                extra = await _ahead(session, job) - len(played)
                seconds = max(next_free + extra * mean_s / slots, job_due_s(job, now))
                at[job.id] = now + timedelta(seconds=seconds)
        return {job.id: at[job.id] for job in waiting if job.id in at}


def _finish(started_at: datetime, run_s: float, now: datetime) -> datetime:
    expected = started_at + timedelta(seconds=run_s)
    return max(expected, now + timedelta(seconds=OVERDUE_MARGIN_S))


def _remaining(started_at: datetime, run_s: float, now: datetime) -> float:
    """Seconds until a running job is expected to free its slot (overdue: the margin)."""
    return (_finish(started_at, run_s, now) - now).total_seconds()


def job_due_s(job: Job, now: datetime) -> float:
    return max(0.0, (job.run_after - now).total_seconds())


async def _ahead(session: AsyncSession, job: Job) -> int:
    """Queued jobs of the job's organization the claim takes before it."""
    ahead = await session.scalar(
        org_jobs(job.org_id)
        .with_only_columns(func.count())
        .where(
            Job.status == JobStatus.QUEUED,
            or_(Job.priority > job.priority, and_(Job.priority == job.priority, Job.id < job.id)),
        )
    )
    return int(ahead or 0)


def org_slots(demand: Demand, org_id: int) -> int:
    """The slots the claim's fairness leaves `org_id` while it has work waiting: the worker
    slots water-filled over the other organizations' demand (its own taken as unbounded),
    capped by its concurrency limit; at least one."""
    remaining, sharers = float(demand.slots), 1
    others = sorted(n for o, n in demand.wanted.items() if o != org_id)
    sharers += len(others)
    for wanted in others:
        if wanted >= remaining / sharers:
            break
        remaining -= wanted
        sharers -= 1
    share = max(1, int(remaining / sharers + 0.5))
    limit = demand.limits.get(org_id)
    return share if limit is None else max(1, min(share, limit))


def initial_slots(
    slots: int, own: list[float], others: list[float], idle_slots: int
) -> list[float]:
    """When each of an organization's `slots` frees, in seconds from now: its own running jobs'
    ends (beyond its share, the last to end: it gets a slot back only once under its share),
    then idle worker slots (now), then the ends of other organizations' running jobs."""
    own = sorted(own)
    if len(own) >= slots:
        return own[len(own) - slots :]
    wanted = slots - len(own)
    idle = [0.0] * min(wanted, idle_slots)
    freed = sorted(others)[: wanted - len(idle)]
    return own + idle + freed + [0.0] * (wanted - len(idle) - len(freed))


@dataclass(frozen=True)
class Queued:
    id: int
    priority: int
    due_s: float  # seconds from now until `run_after` (≤ 0: due)
    run_s: float


def play_queue(free: list[float], queue: Sequence[Queued]) -> tuple[dict[int, float], float]:
    """The claim played forward: each job, in the claim's order among those due, takes the first
    slot to free (not before it is due) for its run time. The start of each job in seconds from
    now, and when the next slot frees after them all."""
    slots = list(free)
    heapq.heapify(slots)
    pending = sorted(queue, key=lambda q: q.due_s)
    ready: list[tuple[int, int, Queued]] = []
    starts: dict[int, float] = {}
    taken = 0
    while taken < len(pending) or ready:
        at = heapq.heappop(slots)
        if not ready and pending[taken].due_s > at:
            at = pending[taken].due_s
        while taken < len(pending) and pending[taken].due_s <= at:
            job = pending[taken]
            heapq.heappush(ready, (-job.priority, job.id, job))
            taken += 1
        job = heapq.heappop(ready)[2]
        starts[job.id] = at
        heapq.heappush(slots, at + job.run_s)
    return starts, slots[0] if slots else 0.0
