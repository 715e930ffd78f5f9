"""New prompts and the queue count of an organization, polled once per process for all of its
`/ws` sockets (instead of once per socket), and at once when a prompt is queued here.

A subscriber registers before it reads its own starting point, and a new feed reads its
starting point before the first subscriber is told it is ready, so no prompt created in between
is missed (a prompt seen twice is harmless: subscribers remember what they follow).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import structlog

from genway.db import Database
from genway.engines.comfyui import prompts
from genway.jobs.models import Job

log = structlog.get_logger("genway.engines.comfyui")


@dataclass(frozen=True)
class FeedUpdate:
    new_prompts: Sequence[Job]
    queue_remaining: int


@dataclass
class _OrgFeed:
    org_id: int
    last_job_id: int
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    subscribers: set[asyncio.Queue[FeedUpdate]] = field(default_factory=set)
    task: asyncio.Task[None] | None = None


class PromptFeeds:
    def __init__(self, database: Database, interval_s: float = 0.5) -> None:
        self.database = database
        self.interval_s = interval_s
        self._feeds: dict[int, _OrgFeed] = {}
        self._lock = asyncio.Lock()

    def notify(self, org_id: int) -> None:
        """Something changed in the organization's queue: poll now."""
        feed = self._feeds.get(org_id)
        if feed is not None:
            feed.wake.set()

    @contextlib.asynccontextmanager
    async def subscribe(self, org_id: int) -> AsyncIterator[asyncio.Queue[FeedUpdate]]:
        updates: asyncio.Queue[FeedUpdate] = asyncio.Queue()
        async with self._lock:
            feed = self._feeds.get(org_id)
            if feed is None:
                async with self.database.sessions() as session:
                    latest = await prompts.latest_prompt_id(session, org_id)
                feed = self._feeds[org_id] = _OrgFeed(org_id, latest)
                feed.task = asyncio.create_task(self._poll(feed), name=f"prompt-feed-{org_id}")
            feed.subscribers.add(updates)
        try:
            yield updates
        finally:
            feed.subscribers.discard(updates)
            if not feed.subscribers and self._feeds.get(org_id) is feed:
                del self._feeds[org_id]
                if feed.task is not None:
                    feed.task.cancel()

    async def _poll(self, feed: _OrgFeed) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(feed.wake.wait(), self.interval_s)
            feed.wake.clear()
            try:
                async with self.database.sessions() as session:
                    new = await prompts.prompts_after(session, feed.org_id, feed.last_job_id)
                    remaining = await prompts.queue_remaining(session, feed.org_id)
            except Exception as exc:  # a database hiccup: try again on the next round
                log.error("prompt_feed_failed", org_id=feed.org_id, error=str(exc))
                continue
            if new:
                feed.last_job_id = max(job.id for job in new)
            update = FeedUpdate(new, remaining)
            for subscriber in list(feed.subscribers):
                subscriber.put_nowait(update)
