"""Request counts per organization and user, kept in memory and flushed every few seconds.

One database write per request would cost more than the request itself; a flush every
`GENWAY_USAGE_FLUSH_INTERVAL_S` bounds what a crash can lose to those seconds of counts, and the
final flush at shutdown loses nothing."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from datetime import date

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from genway.ratelimit.usage import Metric, record_usage, utc_today

log = structlog.get_logger("genway.usage")


class RequestMeter:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions
        self._counts: Counter[tuple[int, int | None, date]] = Counter()

    def count(self, org_id: int, user_id: int | None) -> None:
        self._counts[(org_id, user_id, utc_today())] += 1

    async def run_once(self) -> int:
        """Write the counts gathered so far; returns how many requests were written."""
        counts, self._counts = self._counts, Counter()
        if not counts:
            return 0
        try:
            async with self.sessions() as session:
                for (org_id, user_id, day), value in counts.items():
                    await record_usage(
                        session, org_id, Metric.REQUESTS, value, user_id=user_id, day=day
                    )
                await session.commit()
        except Exception as exc:  # keep the counts for the next flush rather than lose them
            log.error("usage_flush_failed", error=str(exc))
            self._counts.update(counts)
            return 0
        return sum(counts.values())


@contextlib.asynccontextmanager
async def metering(meter: RequestMeter, interval_s: float) -> AsyncIterator[RequestMeter]:
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
