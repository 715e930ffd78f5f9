"""Usage metering: exact under concurrency (one upsert per increment), by UTC day."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from genway.ratelimit.models import NO_USER, UsageCounter, usage_table


class Metric:
    """Metric names; per-kind and per-model metrics are suffixed with `:<kind>` / `:<model>`."""

    REQUESTS = "requests"
    JOBS = "jobs"  # jobs:<kind>
    IMAGES = "images"
    AGENT_RUNS = "agent_runs"
    COMPUTE_MS = "compute_ms"  # milliseconds, so sub-second jobs add up exactly
    TOKENS_IN = "tokens_in"  # tokens_in:<provider:model>
    TOKENS_OUT = "tokens_out"  # tokens_out:<provider:model>
    COST = "cost_microusd"  # cost_microusd:<provider:model>, millionths of a US dollar


def utc_today() -> date:
    return datetime.now(UTC).date()


async def record_usage(
    session: AsyncSession,
    org_id: int,
    metric: str,
    amount: int = 1,
    *,
    user_id: int | None = None,
    day: date | None = None,
) -> None:
    """Add `amount` to a counter in the caller's transaction (the caller commits)."""
    if amount == 0:
        return
    values = {
        "org_id": org_id,
        "user_id": user_id or NO_USER,
        "metric": metric,
        "day": day or utc_today(),
        "value": amount,
    }
    table = usage_table
    dialect = session.bind.dialect.name  # type: ignore[union-attr]
    insert = pg_insert(table) if dialect == "postgresql" else sqlite_insert(table)
    statement = insert.values(**values).on_conflict_do_update(
        index_elements=["org_id", "user_id", "metric", "day"],
        set_={"value": table.c.value + insert.excluded.value},
    )
    await session.execute(statement)


async def usage_total(
    session: AsyncSession, org_id: int, metric: str, day: date, *, prefix: bool = False
) -> int:
    """The organization's total for a metric (or every metric starting with it) on a day."""
    condition = UsageCounter.metric.startswith(metric) if prefix else UsageCounter.metric == metric
    total = await session.scalar(
        select(func.coalesce(func.sum(UsageCounter.value), 0)).where(
            UsageCounter.org_id == org_id, UsageCounter.day == day, condition
        )
    )
    return int(total or 0)


async def usage_series(
    session: AsyncSession, org_id: int, start: date, end: date
) -> Sequence[tuple[date, str, int]]:
    """(day, metric, value) summed over users, for days in [start, end]."""
    rows = await session.execute(
        select(UsageCounter.day, UsageCounter.metric, func.sum(UsageCounter.value))
        .where(UsageCounter.org_id == org_id, UsageCounter.day >= start, UsageCounter.day <= end)
        .group_by(UsageCounter.day, UsageCounter.metric)
        .order_by(UsageCounter.day, UsageCounter.metric)
    )
    return [(day, metric, int(value)) for day, metric, value in rows]
