"""Plan, confirm, carry out. A run asked to plan first writes its plan and waits, queued with
no claim before the wait's end, holding no worker; confirming it (possibly with an edited plan)
makes it due at once, and the next worker to claim it carries the plan out on the same branch.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from genway.agents.models import CONFIRMED, PENDING, AgentPlan
from genway.db import on_commit, utcnow
from genway.errors import Conflict
from genway.jobs.events import EventType, append_event
from genway.jobs.models import Job, jobs_table
from genway.jobs.states import JobStatus

PLAN_READY = "PLAN_READY"
AWAITING = "awaiting plan confirmation"


async def plans_of(session: AsyncSession, job_ids: Sequence[int]) -> dict[int, AgentPlan]:
    """The plans of these runs, by run id (runs without a plan are absent)."""
    if not job_ids:
        return {}
    rows = await session.scalars(select(AgentPlan).where(AgentPlan.job_id.in_(job_ids)))
    return {row.job_id: row for row in rows}


def store_plan(session: AsyncSession, job: Job, plan: str, *, confirmed: bool) -> AgentPlan:
    """Record the run's plan; confirmed at once when the project confirms plans itself."""
    now = utcnow()
    row = AgentPlan(
        job_id=job.id,
        org_id=job.org_id,
        plan=plan,
        status=CONFIRMED if confirmed else PENDING,
        created_at=now,
        confirmed_at=now if confirmed else None,
        edited=False,
    )
    session.add(row)
    return row


def waiting_s(row: AgentPlan, wait_s: float) -> float:
    """Seconds the plan may still wait for confirmation (≤ 0: it waited too long)."""
    deadline = row.created_at + timedelta(seconds=wait_s)
    return (deadline - utcnow()).total_seconds()


async def confirm_plan(
    session: AsyncSession, job: Job, user_id: int | None, edited_plan: str | None
) -> AgentPlan:
    """Confirm the run's pending plan (replaced by `edited_plan` when given) and make the run
    due now. Raises Conflict when the run has no plan waiting."""
    row = await session.get(AgentPlan, job.id, with_for_update=True)
    if row is None or row.status != PENDING or job.status != JobStatus.QUEUED:
        raise Conflict(f"Agent run {job.id} has no plan waiting for confirmation")
    if edited_plan is not None and edited_plan != row.plan:
        row.plan, row.edited = edited_plan, True
    row.status, row.confirmed_at, row.confirmed_by = CONFIRMED, utcnow(), user_id
    jobs = jobs_table
    await session.execute(
        update(jobs)
        .where(jobs.c.id == job.id, jobs.c.status == JobStatus.QUEUED)
        .values(run_after=utcnow())
    )
    data = {"name": "plan_confirmed", "edited": row.edited, "confirmed_by": user_id}
    await append_event(session, job.id, job.org_id, EventType.OUTPUT, data)
    on_commit(session, wake=True)
    await session.flush()
    return row
