"""Daily quotas (images, agent runs), consumed atomically at job submission.

The organization-level counter row is incremented with an upsert that returns the new total, in
the submitting transaction: concurrent submissions serialize on that row, so the quota is exact
(the 11th image job of a free organization is refused even when all 11 arrive at once)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from genway.errors import TooManyRequests
from genway.notifications.quota import quota_reached
from genway.orgs.models import Organization
from genway.ratelimit.models import NO_USER, usage_table
from genway.ratelimit.tiers import TierLimits
from genway.ratelimit.usage import Metric, usage_total, utc_today

QUOTA_LIMIT_FIELDS = {Metric.IMAGES: "images_per_day", Metric.AGENT_RUNS: "agent_runs_per_day"}
# Shares of a quota whose reaching is announced (to the organization and its admins).
ALERT_PERCENTS = (80, 100)


def quota_metric(kind: str) -> str | None:
    """Which daily quota a job kind draws on, if any."""
    if kind.startswith("comfy."):
        return Metric.IMAGES
    if kind in ("agent.run", "promode.session"):
        return Metric.AGENT_RUNS
    return None


def quota_amount(kind: str, job_input: dict[str, Any]) -> int:
    batch = job_input.get("batch_size", 1) if kind.startswith("comfy.") else 1
    return batch if isinstance(batch, int) and batch > 0 else 1


def next_reset() -> datetime:
    """Quotas reset at UTC midnight."""
    return datetime.combine(utc_today() + timedelta(days=1), time.min, tzinfo=UTC)


class QuotaExceeded(TooManyRequests):
    def __init__(self, quota: str, limit: int, used: int) -> None:
        reset = next_reset()
        super().__init__(
            f"Daily {quota} quota exceeded: {used} of {limit} used; resets at "
            f"{reset.isoformat().replace('+00:00', 'Z')}",
            headers={"Retry-After": str(int((reset - datetime.now(UTC)).total_seconds()) + 1)},
            extra={
                "quota": quota,
                "limit": limit,
                "used": used,
                "resets_at": reset.isoformat().replace("+00:00", "Z"),
            },
        )


async def consume_quota(
    session: AsyncSession,
    org: Organization,
    limits: TierLimits,
    kind: str,
    job_input: dict[str, Any],
) -> None:
    """Count a submission against its daily quota, announcing it when it reaches 80 % or 100 %
    (`notifications/quota.py`). Raises QuotaExceeded (the caller rolls back)."""
    metric = quota_metric(kind)
    if metric is None:
        return
    amount = quota_amount(kind, job_input)
    table = usage_table
    dialect = session.bind.dialect.name  # type: ignore[union-attr]
    insert = pg_insert(table) if dialect == "postgresql" else sqlite_insert(table)
    statement = (
        insert.values(org_id=org.id, user_id=NO_USER, metric=metric, day=utc_today(), value=amount)
        .on_conflict_do_update(
            index_elements=["org_id", "user_id", "metric", "day"],
            set_={"value": table.c.value + insert.excluded.value},
        )
        .returning(table.c.value)
    )
    used = int((await session.execute(statement)).scalar_one())
    limit: int | None = getattr(limits, QUOTA_LIMIT_FIELDS[metric])
    if limit is None:
        return
    if used > limit:
        raise QuotaExceeded(metric, limit, used - amount)
    reached = crossed_percent(limit, used - amount, used)
    if reached is not None:
        await quota_reached(session, org, metric, limit, used, reached, next_reset())


def crossed_percent(limit: int, before: int, after: int) -> int | None:
    """The highest alert share that going from `before` to `after` crossed, if any. The counter
    is upserted atomically, so exactly one submission of the day crosses each share."""
    crossed = [p for p in ALERT_PERCENTS if before * 100 < p * limit <= after * 100]
    return crossed[-1] if crossed else None


async def quota_state(
    session: AsyncSession, org: Organization, limits: TierLimits, running_jobs: int
) -> dict[str, Any]:
    """Today's quota use, limits and reset time, and the concurrency in use."""
    today = utc_today()
    reset = next_reset().isoformat().replace("+00:00", "Z")
    state: dict[str, Any] = {}
    for metric, field in QUOTA_LIMIT_FIELDS.items():
        used = await usage_total(session, org.id, metric, today)
        limit = getattr(limits, field)
        state[metric] = {
            "limit": limit,
            "used": used,
            "remaining": None if limit is None else max(0, limit - used),
            "resets_at": reset,
        }
    state["concurrent_jobs"] = {"limit": limits.max_concurrent_jobs, "running": running_jobs}
    return state
