"""Fan-out of job and organization events to live subscribers: in process, or across processes
through Redis."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from typing import Any

import structlog
from redis.asyncio import Redis

from genway.kit import fastjson

log = structlog.get_logger("genway.broadcast")

SUBSCRIBER_BUFFER = 1000


AUTH_CHANGED = {"auth_changed": True}


class Subscription(asyncio.Queue[dict[str, Any]]):
    """A subscriber's queue of events; `missed` says some were dropped (the queue was full, or
    news from other processes may have been lost), so the subscriber re-reads the database."""

    missed = False


class Broadcaster:
    """In-process fan-out; `RedisBroadcaster` extends it to every process sharing a Redis.

    Besides job events it carries one more piece of news: "rows authentication depends on
    changed" (a key revoked, a member removed...), for the principal caches of other processes.
    """

    # Whether other processes hear of this process's auth changes (and this one of theirs).
    shares_auth_changes = False

    def __init__(self) -> None:
        self._subscribers: dict[int, set[Subscription]] = defaultdict(set)
        self._org_subscribers: dict[int, set[Subscription]] = defaultdict(set)
        self.on_auth_change: Callable[[], None] | None = None

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def publish(self, events: list[dict[str, Any]]) -> None:
        """Hand committed events to subscribers; never blocks the caller."""
        for event in events:
            self._deliver(event)

    def publish_auth_change(self) -> None:
        """This process committed an auth change (its own caches already know)."""

    def _heard_auth_change(self) -> None:
        if self.on_auth_change is not None:
            self.on_auth_change()

    def _deliver(self, event: dict[str, Any]) -> None:
        """A job event goes to the job's subscribers and its organization's; an organization
        event (`org_event_id`) to the organization's. A full queue is skipped: a slow consumer
        sees a gap and re-reads from the database."""
        job_id = event.get("job_id")
        if job_id is not None:
            for queue in self._subscribers.get(job_id, ()):
                if not queue.full():
                    queue.put_nowait(event)
        for queue in self._org_subscribers.get(event["org_id"], ()):
            if queue.full():
                queue.missed = True
            else:
                queue.put_nowait(event)

    def _may_have_missed(self) -> None:
        """Events may have been lost (a broken link to other processes): every organization
        stream re-reads the database. (A job stream re-reads on its own every few seconds.)"""
        for subscribers in self._org_subscribers.values():
            for queue in subscribers:
                queue.missed = True

    @contextlib.asynccontextmanager
    async def subscribe(self, job_id: int) -> AsyncIterator[Subscription]:
        async with _subscription(self._subscribers, job_id) as queue:
            yield queue

    @contextlib.asynccontextmanager
    async def subscribe_org(self, org_id: int) -> AsyncIterator[Subscription]:
        """Every event of an organization: its jobs' and its own."""
        async with _subscription(self._org_subscribers, org_id) as queue:
            yield queue


@contextlib.asynccontextmanager
async def _subscription(
    registry: dict[int, set[Subscription]], key: int
) -> AsyncIterator[Subscription]:
    queue = Subscription(SUBSCRIBER_BUFFER)
    registry[key].add(queue)
    try:
        yield queue
    finally:
        subscribers = registry.get(key)
        if subscribers is not None:
            subscribers.discard(queue)
            if not subscribers:
                del registry[key]


class RedisBroadcaster(Broadcaster):
    """Publishes through one Redis channel, in order (one pipelined round trip per committed
    batch); relays what arrives to local subscribers."""

    shares_auth_changes = True

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

    def publish_auth_change(self) -> None:
        self._outbox.put_nowait([fastjson.dumps(AUTH_CHANGED)])

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
                    # News sent while this process was not listening is lost: assume the worst.
                    self._heard_auth_change()
                    self._may_have_missed()
                    self._listening.set()
                    async for message in pubsub.listen():
                        if message.get("type") != "message":
                            continue
                        data = fastjson.loads(message["data"])
                        if "org_id" in data:
                            self._deliver(data)
                        elif data.get("auth_changed"):
                            self._heard_auth_change()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error("broadcast_listen_failed", error=str(exc))
                await asyncio.sleep(1)


def create_broadcaster(redis_url: str | None, channel: str = "genway:job-events") -> Broadcaster:
    return RedisBroadcaster(redis_url, channel) if redis_url else Broadcaster()
