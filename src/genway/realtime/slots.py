"""How many streams each organization holds open: in this process, or in every process sharing
a Redis (a sorted set per organization of leases that the holders renew, so the streams of a
process that died stop counting once their leases lapse)."""

from __future__ import annotations

import time
import uuid
from collections import Counter

import structlog
from redis.asyncio import Redis

log = structlog.get_logger("genway.streams")

LEASE_S = 30.0


class StreamSlots:
    """Per-process counts; `RedisStreamSlots` shares them between processes."""

    renew_every_s = LEASE_S / 3

    def __init__(self) -> None:
        self._open: Counter[int] = Counter()

    async def acquire(self, org_id: int, cap: int) -> str | None:
        """A slot's token, or None when the organization already holds `cap` streams."""
        if self._open[org_id] >= cap:
            return None
        self._open[org_id] += 1
        return uuid.uuid4().hex

    async def release(self, org_id: int, token: str) -> None:
        self._open[org_id] -= 1
        if self._open[org_id] <= 0:
            del self._open[org_id]

    async def renew(self, held: list[tuple[int, str]]) -> None:
        return None


class RedisStreamSlots(StreamSlots):
    """If Redis fails, streams are let through (as rate limits fail open), with a log line."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        super().__init__()
        self.redis = redis
        self.prefix = prefix

    def _key(self, org_id: int) -> str:
        return f"{self.prefix}:streams:{org_id}"

    async def acquire(self, org_id: int, cap: int) -> str | None:
        token = await super().acquire(org_id, cap)
        if token is None:
            return None
        key, now = self._key(org_id), time.time()
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.zremrangebyscore(key, "-inf", now)
                pipe.zadd(key, {token: now + LEASE_S})
                pipe.zcard(key)
                pipe.expire(key, int(LEASE_S * 2))
                _removed, _added, count, _expiry = await pipe.execute()
            if count <= cap:
                return token
            await self.redis.zrem(key, token)
        except Exception as exc:
            log.error("stream_slots_unavailable", error=f"{type(exc).__name__}: {exc}")
            return token
        await super().release(org_id, token)
        return None

    async def release(self, org_id: int, token: str) -> None:
        await super().release(org_id, token)
        try:
            await self.redis.zrem(self._key(org_id), token)
        except Exception as exc:  # the lease lapses on its own
            log.error("stream_slots_unavailable", error=f"{type(exc).__name__}: {exc}")

    async def renew(self, held: list[tuple[int, str]]) -> None:
        if not held:
            return
        until = time.time() + LEASE_S
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for org_id, token in held:
                    pipe.zadd(self._key(org_id), {token: until}, xx=True)
                    pipe.expire(self._key(org_id), int(LEASE_S * 2))
                await pipe.execute()
        except Exception as exc:
            log.error("stream_slots_unavailable", error=f"{type(exc).__name__}: {exc}")
