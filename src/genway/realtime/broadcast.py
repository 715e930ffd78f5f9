"""Fan-out of job events to live subscribers: in process, or across processes through Redis."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

import structlog
from redis.asyncio import Redis

from genway.kit import fastjson

log = structlog.get_logger("genway.broadcast")

SUBSCRIBER_BUFFER = 1000


class Broadcaster:
    """In-process fan-out; `RedisBroadcaster` extends it to every process sharing a Redis."""

    def __init__(self) -> None:
        self._subscribers: dict[int, set[asyncio.Queue[dict[str, Any]]]] = defaultdict(set)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def publish(self, events: list[dict[str, Any]]) -> None:
        """Hand committed events to subscribers; never blocks the caller."""
        for event in events:
            self._deliver(event)

    def _deliver(self, event: dict[str, Any]) -> None:
        for queue in list(self._subscribers.get(event["job_id"], ())):
            if queue.full():
                # A slow consumer sees a gap and re-reads from the database.
                continue
            queue.put_nowait(event)

    @contextlib.asynccontextmanager
    async def subscribe(self, job_id: int) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(SUBSCRIBER_BUFFER)
        self._subscribers[job_id].add(queue)
        try:
            yield queue
        finally:
            subscribers = self._subscribers.get(job_id)
            if subscribers is not None:
                subscribers.discard(queue)
                if not subscribers:
                    del self._subscribers[job_id]


class RedisBroadcaster(Broadcaster):
    """Publishes through one Redis channel, in order (one pipelined round trip per committed
    batch); relays what arrives to local subscribers."""

    def __init__(self, url: str, channel: str = "genway:job-events") -> None:
        super().__init__()
        self.redis = Redis.from_url(url)
        self.channel = channel
        self._outbox: asyncio.Queue[list[bytes]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._listening = asyncio.Event()

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._send_loop(), name="broadcast-send"),
            asyncio.create_task(self._listen_loop(), name="broadcast-listen"),
        ]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._listening.wait(), timeout=5)

    async def stop(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._outbox.join(), timeout=2)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.redis.aclose()

    def publish(self, events: list[dict[str, Any]]) -> None:
        if events:
            self._outbox.put_nowait([fastjson.dumps(event) for event in events])

    async def _send_loop(self) -> None:
        while True:
            batch = await self._outbox.get()
            taken = 1
            # Everything committed meanwhile goes in the same round trip, in order.
            while not self._outbox.empty():
                batch.extend(self._outbox.get_nowait())
                taken += 1
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for message in batch:
                        pipe.publish(self.channel, message)
                    await pipe.execute()
            except Exception as exc:  # Redis down: subscribers fall back to database polling
                log.error("broadcast_publish_failed", error=str(exc))
            finally:
                for _ in range(taken):
                    self._outbox.task_done()

    async def _listen_loop(self) -> None:
        while True:
            try:
                async with self.redis.pubsub() as pubsub:
                    await pubsub.subscribe(self.channel)
                    self._listening.set()
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            self._deliver(fastjson.loads(message["data"]))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error("broadcast_listen_failed", error=str(exc))
                await asyncio.sleep(1)


def create_broadcaster(redis_url: str | None, channel: str = "genway:job-events") -> Broadcaster:
    return RedisBroadcaster(redis_url, channel) if redis_url else Broadcaster()
