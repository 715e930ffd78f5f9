"""One writer per worker process: the events, progress, ends and retries of every job the worker
runs are written together, in one transaction every few milliseconds (or as soon as `max_items`
are waiting), in the order they were asked for. A writer that was idle writes at once: lingering
only pays when other writes are coming (a lone job's end would just wait).

What stays true: a job's events are committed before (or with) its final status, and a client
hears of an event only after its commit (the publication is an after-commit hook); progress is
coalesced (the latest value per job and batch is kept), so a crash loses at most progress not yet
written, never a finished result. Compute time goes to the usage buffer (ratelimit/usage_buffer.py).

A batch that fails because the database is unreachable is written again once it is back (for up
to a lease: past that, the fence would refuse it anyway), so a short outage costs a job neither
its result nor its events.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog

from genway.db import Database, is_database_unavailable, on_commit, utcnow
from genway.jobs.events import EventRow, EventType, record_events
from genway.jobs.models import Job
from genway.jobs.states import JobStatus
from genway.queue.outcomes import finish_job, record_job_events, requeue_job
from genway.queue.wakeup import notify_queued
from genway.ratelimit.usage import Metric

log = structlog.get_logger("genway.worker")

# A writer whose last batch ended longer ago than this many lingers is idle.
IDLE_AFTER_LINGERS = 5
# Waits between tries of a batch while the database is unreachable: doubled up to the maximum.
RETRY_FIRST_S = 0.1
RETRY_MAX_S = 1.0


@dataclass
class _JobWrites:
    job: Job
    events: list[tuple[EventType, dict[str, Any]]] = field(default_factory=list)
    progress: tuple[float, str | None] | None = None
    waiting: list[asyncio.Future[bool]] = field(default_factory=list)


@dataclass
class _End:
    job: Job
    status: JobStatus  # QUEUED for a retry or release
    outcome: dict[str, Any]
    done: asyncio.Future[bool]


class JobWriter:
    def __init__(
        self,
        database: Database,
        worker_id: str,
        *,
        linger_s: float = 0.002,
        max_items: int = 500,
        retry_for_s: float = 30.0,
    ) -> None:
        self.database = database
        self.worker_id = worker_id
        self.linger_s = linger_s
        self.max_items = max_items
        self.retry_for_s = retry_for_s
        self._writes: dict[int, _JobWrites] = {}
        self._ends: list[_End] = []
        self._items = 0
        self._ready = asyncio.Event()
        self._full = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    async def __aenter__(self) -> JobWriter:
        self._task = asyncio.create_task(self._run(), name="job-writer")
        return self

    async def __aexit__(self, *_exc: object) -> None:
        # The loop finishes the batch it is writing, writes what is left, and ends.
        self._closing = True
        self._ready.set()
        if self._task is not None:
            await self._task
        await self._flush()

    def progress(self, job: Job, fraction: float, message: str | None) -> None:
        """Record progress (coalesced with later progress of the same batch); does not wait."""
        self._for(job).progress = (min(1.0, max(0.0, fraction)), message)

    async def event(self, job: Job, type_: EventType, data: dict[str, Any]) -> bool:
        """Record an event; returns once it is committed (False: the job is no longer ours)."""
        writes = self._for(job)
        writes.events.append((type_, data))
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        writes.waiting.append(done)
        return await done

    def event_soon(self, job: Job, type_: EventType, data: dict[str, Any]) -> None:
        """Record an event without waiting for its commit. It is written with the next batch,
        and before any end of the job recorded after it (a batch writes events, then ends)."""
        self._for(job).events.append((type_, data))

    async def finish(self, job: Job, status: JobStatus, **outcome: Any) -> bool:
        """End a held job (`result=` / `error=`); False when the worker no longer held it."""
        return await self._end(job, status, outcome)

    async def requeue(self, job: Job, **outcome: Any) -> bool:
        """Back to the queue (`run_after`, `why`, `error`, `refund_attempt`)."""
        return await self._end(job, JobStatus.QUEUED, outcome)

    async def _end(self, job: Job, status: JobStatus, outcome: dict[str, Any]) -> bool:
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._ends.append(_End(job, status, outcome, done))
        self._added()
        return await done

    def _for(self, job: Job) -> _JobWrites:
        writes = self._writes.get(job.id)
        if writes is None:
            writes = self._writes[job.id] = _JobWrites(job)
        self._added()
        return writes

    def _added(self) -> None:
        self._items += 1
        self._ready.set()
        if self._items >= self.max_items:
            self._full.set()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        last_batch = -float("inf")
        while not self._closing:
            await self._ready.wait()
            busy = loop.time() - last_batch < self.linger_s * IDLE_AFTER_LINGERS
            if busy and not self._closing:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), self.linger_s)
            try:
                await self._flush()
            except Exception as exc:  # the callers got the error; keep writing for the others
                log.error("job_writer_batch_failed", error=str(exc))
            last_batch = loop.time()

    async def _flush(self) -> None:
        writes, self._writes = list(self._writes.values()), {}
        ends, self._ends = self._ends, []
        self._items = 0
        self._ready.clear()
        self._full.clear()
        if not writes and not ends:
            return
        waiting = [f for w in writes for f in w.waiting] + [end.done for end in ends]
        try:
            results = await self._write_when_reachable(writes, ends)
        except BaseException as exc:
            for future in waiting:
                if not future.done():
                    future.set_exception(exc if isinstance(exc, Exception) else RuntimeError())
            raise
        for w, held in zip(writes, results[: len(writes)], strict=True):
            for future in w.waiting:
                if not future.done():
                    future.set_result(held)
        for end, ended in zip(ends, results[len(writes) :], strict=True):
            if not end.done.done():
                end.done.set_result(ended)

    async def _write_when_reachable(self, writes: list[_JobWrites], ends: list[_End]) -> list[bool]:
        """`_write`, tried again while the database is unreachable (for up to `retry_for_s`).
        Later writes wait for this batch, so the order of every job's writes holds."""
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + self.retry_for_s
        delay = RETRY_FIRST_S
        while True:
            try:
                return await self._write(writes, ends)
            except Exception as exc:
                if not is_database_unavailable(exc) or loop.time() + delay > give_up_at:
                    raise
                log.warning("job_writer_waiting_for_database", error=str(exc), retry_in_s=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)

    async def _write(self, writes: list[_JobWrites], ends: list[_End]) -> list[bool]:
        out: list[EventRow] = []
        results: list[bool] = []
        compute: dict[tuple[int, int | None], int] = defaultdict(int)
        now = utcnow()
        async with self.database.transaction() as session:
            for w in writes:
                events = list(w.events)
                if w.progress is not None:
                    fraction, message = w.progress
                    events.append((EventType.PROGRESS, {"progress": fraction, "message": message}))
                held = await record_job_events(
                    session, w.job, self.worker_id, events, w.progress, out
                )
                results.append(held)
            requeued = False
            for end in ends:
                ended = await self._apply_end(session, end, out, now)
                results.append(ended is not None)
                if ended is not None and end.status is JobStatus.QUEUED:
                    requeued = True
                elif ended is not None and end.job.started_at is not None:
                    spent = int((ended - end.job.started_at).total_seconds() * 1000)
                    compute[(end.job.org_id, end.job.user_id)] += spent
            await record_events(session, out, now)
            usage = [(org, user, Metric.COMPUTE_MS, ms) for (org, user), ms in compute.items()]
            on_commit(session, usage=usage)
            if requeued:
                await notify_queued(session)
        return results

    async def _apply_end(
        self, session: Any, end: _End, out: list[EventRow], now: datetime
    ) -> datetime | None:
        if end.status is JobStatus.QUEUED:
            held = await requeue_job(session, end.job, self.worker_id, out, **end.outcome)
            return now if held else None
        return await finish_job(session, end.job, self.worker_id, end.status, out, **end.outcome)
