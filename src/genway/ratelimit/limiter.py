"""Rate-limit counters from the `limits` library: in memory when embedded, Redis when shared.

If the storage fails (Redis down), requests are let through when `fail_open` (the default), with
an error log line and a metric, rather than answering 500."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import structlog
from limits import RateLimitItem, parse
from limits.aio.storage import Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string
from prometheus_client import Counter

from genway.config import Settings
from genway.errors import GenwayError

log = structlog.get_logger("genway.ratelimit")


class RateLimitUnavailable(GenwayError):
    status_code = 503
    detail = "Rate limiting is unavailable; try again shortly"


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    reset_at: float
    window_s: int
    scope: str = "default"

    @property
    def retry_after_s(self) -> int:
        return max(1, math.ceil(self.reset_at - time.time()))


def storage_uri(settings: Settings) -> str:
    if settings.redis_url:
        return "async+" + settings.redis_url
    return "async+memory://"


class RateLimiter:
    """Moving-window counters keyed by (limit, identifiers); shared by all processes on Redis."""

    def __init__(
        self, storage: Storage, *, fail_open: bool = True, errors: Counter | None = None
    ) -> None:
        self.storage = storage
        # A moving window is exact (a sliding-window counter lets a few extra requests through
        # when a burst straddles its window boundary), at the price of an O(limit) stats read.
        self.strategy = MovingWindowRateLimiter(storage)
        self.fail_open = fail_open
        self.errors = errors

    @classmethod
    def from_settings(cls, settings: Settings, errors: Counter | None = None) -> RateLimiter:
        options: dict[str, Any] = {}
        if settings.redis_url:
            # redis-py (already a dependency) with short timeouts, so a dead Redis costs a
            # request at most a second before failing open.
            options = {
                "implementation": "redispy",
                "key_prefix": settings.ratelimit_key_prefix,
                "socket_connect_timeout": 1.0,
                "socket_timeout": 1.0,
            }
        storage = storage_from_string(storage_uri(settings), **options)
        assert isinstance(storage, Storage)
        return cls(storage, fail_open=settings.ratelimit_fail_open, errors=errors)

    async def hit(self, limit: RateLimitItem | str, *identifiers: str) -> Verdict | None:
        """Count one request and say whether it is within the limit; None if the storage
        failed and the limiter fails open."""
        item = parse(limit) if isinstance(limit, str) else limit
        try:
            allowed = await self.strategy.hit(item, *identifiers)
            return await self._verdict(item, allowed, identifiers)
        except Exception as exc:
            return self._storage_failed(exc)

    async def test(self, limit: RateLimitItem | str, *identifiers: str) -> Verdict | None:
        """Whether one more request would be allowed, without counting it."""
        item = parse(limit) if isinstance(limit, str) else limit
        try:
            allowed = await self.strategy.test(item, *identifiers)
            return await self._verdict(item, allowed, identifiers)
        except Exception as exc:
            return self._storage_failed(exc)

    def _storage_failed(self, exc: Exception) -> Verdict | None:
        log.error("ratelimit_storage_failed", error=f"{type(exc).__name__}: {exc}")
        if self.errors is not None:
            self.errors.inc()
        if not self.fail_open:
            raise RateLimitUnavailable(headers={"Retry-After": "1"}) from exc
        return None

    async def _verdict(
        self, item: RateLimitItem, allowed: bool, identifiers: tuple[str, ...]
    ) -> Verdict:
        stats = await self.strategy.get_window_stats(item, *identifiers)
        return Verdict(
            allowed,
            item.amount,
            max(0, stats.remaining),
            stats.reset_time,
            item.get_expiry(),
            identifiers[0] if identifiers else "default",
        )
