"""Rate-limit counters from the `limits` library: in memory when embedded, Redis when shared."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import structlog
from limits import RateLimitItem, parse
from limits.aio.storage import Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

from genway.config import Settings

log = structlog.get_logger("genway.ratelimit")


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    reset_at: float

    @property
    def retry_after_s(self) -> int:
        return max(1, math.ceil(self.reset_at - time.time()))


def storage_uri(settings: Settings) -> str:
    if settings.redis_url:
        return "async+" + settings.redis_url
    return "async+memory://"


class RateLimiter:
    """Moving-window counters keyed by (limit, identifiers); shared by all processes on Redis."""

    def __init__(self, storage: Storage, *, fail_open: bool = True) -> None:
        self.storage = storage
        self.strategy = MovingWindowRateLimiter(storage)
        self.fail_open = fail_open

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimiter:
        storage = storage_from_string(storage_uri(settings))
        assert isinstance(storage, Storage)
        return cls(storage)

    async def hit(self, limit: RateLimitItem | str, *identifiers: str) -> Verdict:
        """Count one request and say whether it is within the limit."""
        item = parse(limit) if isinstance(limit, str) else limit
        allowed = await self.strategy.hit(item, *identifiers)
        return await self._verdict(item, allowed, identifiers)

    async def test(self, limit: RateLimitItem | str, *identifiers: str) -> Verdict:
        """Whether one more request would be allowed, without counting it."""
        item = parse(limit) if isinstance(limit, str) else limit
        allowed = await self.strategy.test(item, *identifiers)
        return await self._verdict(item, allowed, identifiers)

    async def _verdict(
        self, item: RateLimitItem, allowed: bool, identifiers: tuple[str, ...]
    ) -> Verdict:
        stats = await self.strategy.get_window_stats(item, *identifiers)
        return Verdict(allowed, item.amount, max(0, stats.remaining), stats.reset_time)

    async def clear(self, limit: RateLimitItem | str, *identifiers: str) -> None:
        item = parse(limit) if isinstance(limit, str) else limit
        await self.strategy.clear(item, *identifiers)
