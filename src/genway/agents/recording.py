"""Job events, progress, usage counters and other small writes, batched off the executor's
critical path.

An agent streams text a few words at a time and a Pro Mode session produces dozens of events a
second; one transaction per event would put a database round trip between every model call and
the next, and on SQLite many concurrent writers queue on the single write lock, each retry
sleeping in SQLite's busy handler. The recorder queues the writes and a single writer task
commits whatever accumulated in one transaction, in order, merging consecutive text deltas of a
job. `flush()` (and leaving the `async with` block) waits until everything queued is
committed, so an executor's events always precede the final status the worker writes after it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import structlog
from sqlalchemy import update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from genway.db import Database, utcnow
from genway.jobs.events import EventType, append_event, append_events
from genway.jobs.models import jobs_table
from genway.jobs.states import JobStatus
from genway.ratelimit.usage import record_usage
from genway.realtime.broadcast import Broadcaster

log = structlog.get_logger("genway.agents")

DELTA = "delta"
WRITE_ATTEMPTS = 3


@dataclass
class _Event:
    job_id: int
    org_id: int
    type: EventType
    data: dict[str, Any]


@dataclass(frozen=True)
class _Usage:
    org_id: int
    user_id: int | None
    metric: str
    amount: int


Write = Callable[[AsyncSession], Awaitable[None]]
_Item = _Event | _Usage | Write


def _is_delta(item: _Item) -> bool:
    return isinstance(item, _Event) and item.type is EventType.OUTPUT and item.data["name"] == DELTA


def _coalesce(items: list[_Item]) -> list[_Item]:
    """Fewer statements for the same outcome: a job's text deltas with no other event of that
    job between them become one event, and increments of one counter are summed."""
    merged: list[_Item] = []
    open_delta: dict[int, int] = {}  # job id -> index of its latest delta, while extendable
    counters: dict[tuple[int, int | None, str], int] = {}
    for item in items:
        if isinstance(item, _Usage):
            key = (item.org_id, item.user_id, item.metric)
            if key in counters:
                previous = merged[counters[key]]
                assert isinstance(previous, _Usage)
                merged[counters[key]] = _Usage(*key, previous.amount + item.amount)
                continue
            counters[key] = len(merged)
        elif isinstance(item, _Event):
            index = open_delta.pop(item.job_id, None)
            if _is_delta(item):
                if index is not None:
                    earlier = merged[index]
                    assert isinstance(earlier, _Event)
                    earlier.data = {
                        **earlier.data,
                        "text": earlier.data["text"] + item.data["text"],
                    }
                    open_delta[item.job_id] = index
                    continue
                open_delta[item.job_id] = len(merged)
        else:
            open_delta.clear()  # a write may touch any job's events: keep everything in order
        merged.append(item)
    return merged


async def _append_events(session: AsyncSession, events: list[_Event]) -> None:
    """Like `append_event` for each event, with one sequence-number update per job instead of
    one per event (the events of a job keep their order)."""
    by_job: dict[int, list[_Event]] = {}
    for event in events:
        by_job.setdefault(event.job_id, []).append(event)
    for job_id, own in sorted(by_job.items()):  # one lock order for every writer: by job id
        # False: the job was deleted (its project or organization went away).
        await append_events(session, job_id, own[0].org_id, [(e.type, e.data) for e in own])


class EventRecorder:
    def __init__(
        self, database: Database, broadcaster: Broadcaster, *, linger_s: float = 0.05
    ) -> None:
        self.database = database
        self.broadcaster = broadcaster
        self.linger_s = linger_s
        self._items: list[_Item] = []
        self._ready = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    def event(self, job_id: int, org_id: int, type_: EventType, data: dict[str, Any]) -> None:
        """Queue an event of a job; never blocks."""
        self._items.append(_Event(job_id, org_id, type_, data))
        self._ready.set()

    def output(self, job_id: int, org_id: int, name: str, data: dict[str, Any]) -> None:
        self.event(job_id, org_id, EventType.OUTPUT, {"name": name, **data})

    def usage(self, org_id: int, user_id: int | None, metric: str, amount: int) -> None:
        """Queue a usage increment (organization and user, today)."""
        if amount:
            self._items.append(_Usage(org_id, user_id, metric, amount))
            self._ready.set()

    def write(self, write: Write) -> None:
        """Queue any other write (it must not commit): it runs in the next batch, in order."""
        self._items.append(write)
        self._ready.set()

    def progress(self, job_id: int, org_id: int, fraction: float, message: str) -> None:
        """Queue a running job's progress (its column and its event)."""

        async def record(session: AsyncSession) -> None:
            jobs = jobs_table
            held = await session.execute(
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.status == JobStatus.RUNNING)
                .values(progress=fraction, progress_message=message, updated_at=utcnow())
            )
            if held.rowcount == 1:  # type: ignore[attr-defined]
                data = {"progress": fraction, "message": message}
                await append_event(session, job_id, org_id, EventType.PROGRESS, data)

        self.write(record)

    async def flush(self) -> None:
        """Commit everything queued so far."""
        async with self._lock:
            while self._items:
                batch, self._items = _coalesce(self._items), []
                await self._write(batch)

    async def _write(self, batch: list[_Item]) -> None:
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            try:
                await self._write_once(batch)
                return
            except DBAPIError as exc:
                # A deadlock with another transaction touching the same jobs (a client's
                # cancellation, the worker's heartbeat) or a busy SQLite: the batch was rolled
                # back whole, so writing it again is safe.
                if attempt == WRITE_ATTEMPTS:
                    log.error("event_batch_failed", items=len(batch), error=str(exc))
                    return
                await asyncio.sleep(0.05 * attempt)
            except Exception as exc:  # a lost progress event must not fail the job that made it
                log.error("event_batch_failed", items=len(batch), error=str(exc))
                return

    async def _write_once(self, batch: list[_Item]) -> None:
        async with self.database.transaction() as session:
            events: list[_Event] = []
            for item in batch:
                if isinstance(item, _Event):
                    events.append(item)
                    continue
                await _append_events(session, events)
                events = []
                if isinstance(item, _Usage):
                    await record_usage(
                        session, item.org_id, item.metric, item.amount, user_id=item.user_id
                    )
                else:
                    await item(session)
            await _append_events(session, events)

    async def _run(self) -> None:
        while True:
            await self._ready.wait()
            self._ready.clear()
            await asyncio.sleep(self.linger_s)
            # Shielded: stopping the loop mid-write must not roll back a batch already taken.
            await asyncio.shield(self.flush())

    async def __aenter__(self) -> EventRecorder:
        self._task = asyncio.create_task(self._run(), name="event-recorder")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()
