"""Usage counters that no quota depends on (requests, jobs by kind, compute time), kept in memory
and flushed every few seconds.

One database write per request or job would cost more than the work itself; a flush every
`GENWAY_USAGE_FLUSH_INTERVAL_S` bounds what a crash can lose to those seconds of counts, and the
final flush at shutdown loses nothing. Counters a quota reads are written in the transaction that
consumes them (ratelimit/quotas.py), never here."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from datetime import date

import structlog

from genway.db import Database
from genway.ratelimit.usage import Metric, record_usage, utc_today

log = structlog.get_logger("genway.usage")


class UsageBuffer:
    def __init__(self, database: Database) -> None:
        self.database = database
        self._counts: Counter[tuple[int, int | None, str, date]] = Counter()

    def count(
        self, org_id: int, user_id: int | None, metric: str = Metric.REQUESTS, amount: int = 1
    ) -> None:
        self._counts[(org_id, user_id, metric, utc_today())] += amount

    def add(self, increments: list[tuple[int, int | None, str, int]]) -> None:
        """(org id, user id, metric, amount) increments committed elsewhere (see db.on_commit)."""
        for org_id, user_id, metric, amount in increments:
            self.count(org_id, user_id, metric, amount)

    async def run_once(self) -> int:
        """Write the counts gathered so far; returns the sum of what was written."""
        counts, self._counts = self._counts, Counter()
        if not counts:
            return 0
        try:
            async with self.database.transaction() as session:
                # One lock order for every writer: sorted keys.
                for (org_id, user_id, metric, day), value in sorted(counts.items(), key=str):
                    await record_usage(session, org_id, metric, value, user_id=user_id, day=day)
        except Exception as exc:  # keep the counts for the next flush rather than lose them
            log.error("usage_flush_failed", error=str(exc))
            self._counts.update(counts)
            return 0
        return sum(counts.values())


@contextlib.asynccontextmanager
async def metering(meter: UsageBuffer, interval_s: float) -> AsyncIterator[UsageBuffer]:
    """Flush `meter` every `interval_s` while the block runs, and once more at its end."""

    async def loop() -> None:
        while True:
            await asyncio.sleep(interval_s)
            await meter.run_once()

    task = asyncio.create_task(loop(), name="usage-flush")
    try:
        yield meter
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await meter.run_once()
