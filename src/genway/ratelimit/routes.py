"""`GET /v1/organizations/{org_id}/usage`: the usage series and the current quota state."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy import func, select

from genway.auth.deps import OrgReader
from genway.db import SessionDep
from genway.engines.llm.prices import MICRO
from genway.errors import InvalidInput
from genway.jobs.models import Job
from genway.jobs.states import JobStatus
from genway.ratelimit.quotas import quota_state
from genway.ratelimit.tiers import limits_for
from genway.ratelimit.usage import Metric, usage_series, utc_today

router = APIRouter(tags=["usage"])

MAX_RANGE_DAYS = 366


@router.get("/v1/organizations/{org_id}/usage")
async def get_usage(
    context: OrgReader,
    session: SessionDep,
    from_: Annotated[date | None, Query(alias="from", description="First UTC day")] = None,
    to: Annotated[date | None, Query(description="Last UTC day (default today)")] = None,
) -> dict[str, Any]:
    """Daily counters per metric (requests, jobs:<kind>, images, agent_runs, compute_ms,
    tokens_in/out:<model>, cost_microusd:<model>) summed over users, the range's model cost in
    dollars, plus today's quotas and concurrency."""
    end = to or utc_today()
    start = from_ or end - timedelta(days=29)
    if start > end:
        raise InvalidInput("'from' must not be after 'to'")
    if (end - start).days >= MAX_RANGE_DAYS:
        raise InvalidInput(f"A usage range covers at most {MAX_RANGE_DAYS} days")
    series = await usage_series(session, context.org_id, start, end)
    running = await session.scalar(
        select(func.count(Job.id)).where(
            Job.org_id == context.org_id, Job.status == JobStatus.RUNNING
        )
    )
    limits = limits_for(context.org)
    totals: dict[str, int] = {}
    for _day, metric, value in series:
        totals[metric] = totals.get(metric, 0) + value
    cost = sum(value for metric, value in totals.items() if metric.startswith(f"{Metric.COST}:"))
    return {
        "org_id": context.org_id,
        "tier": context.org.tier,
        "from": start.isoformat(),
        "to": end.isoformat(),
        "series": [{"day": d.isoformat(), "metric": m, "value": v} for d, m, v in series],
        "totals": totals,
        "cost_usd": cost / MICRO,
        "quotas": await quota_state(session, context.org, limits, int(running or 0)),
        "limits": limits.as_dict(),
    }
