"""The worker: claims as many jobs as it has free slots (one statement), runs their executors,
writes what they report through one writer (worker/writer.py), renews leases, hears of
cancellations through the event fan-out, enforces deadlines, and on shutdown lets running jobs
finish within a grace period before releasing the rest back to the queue.

While the database is unreachable the worker stays up: claims and chores back off and retry, and a
job whose lease could not be renewed is stopped before the lease lapses (the reaper may then hand
it to another worker; it must never run twice at once)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import structlog

from genway.config import Settings
from genway.db import Database, is_database_unavailable, utcnow
from genway.jobs.events import EventType
from genway.jobs.models import Job
from genway.jobs.states import JobStatus
from genway.queue.claim import claim_jobs
from genway.queue.outcomes import cancel_requests, renew_leases
from genway.queue.reaper import Reaper
from genway.queue.wakeup import Wakeup
from genway.realtime.broadcast import Broadcaster
from genway.webhooks.sender import WebhookSender
from genway.worker.context import JobCancelled, JobContext, JobDeferred, JobFailed
from genway.worker.registry import get_executor, known_kinds
from genway.worker.writer import JobWriter

log = structlog.get_logger("genway.worker")
CLAIM_LINGER_S = 0.003


@dataclass
class WorkerOptions:
    concurrency: int = 4
    kinds: list[str] | None = None
    lease_s: float = 30.0
    idle_poll_s: float = 1.0
    cancel_poll_s: float = 2.0  # fallback for a missed cancel event (the fan-out is immediate)
    reaper_interval_s: float = 5.0
    cancel_grace_s: float = 5.0
    shutdown_grace_s: float = 30.0
    retry_base_s: float = 1.0
    retry_cap_s: float = 300.0


@dataclass
class Running:
    job: Job
    ctx: JobContext
    # The event loop's time at which the job's lease lapses, unless renewed (measured from
    # before the claim or renewal was sent, so never later than the lease the database holds).
    lease_until: float
    task: asyncio.Task[None] | None = None
    listener: asyncio.Task[None] | None = None
    cancel_deadline: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def retry_delay(attempt: int, base_s: float, cap_s: float) -> float:
    """Exponential backoff with full jitter: uniform in [0.5, 1.5] * base * 2^(attempt-1)."""
    delay: float = min(cap_s, base_s * 2.0 ** max(0, attempt - 1))
    return delay * random.uniform(0.5, 1.5)  # noqa: S311


class Worker:
    def __init__(
        self,
        database: Database,
        broadcaster: Broadcaster,
        wakeup: Wakeup,
        data_dir: Path,
        options: WorkerOptions | None = None,
        settings: Settings | None = None,
        *,
        webhooks: WebhookSender | None = None,
    ) -> None:
        self.database = database
        # Webhook deliveries are sent by every worker process, beside its jobs.
        self.webhooks = webhooks
        self.broadcaster = broadcaster
        self.wakeup = wakeup
        self.data_dir = data_dir
        self.options = options or WorkerOptions()
        # Executors that reach engines (LLM providers, ComfyUI) read their URLs from here.
        self.settings = settings if settings is not None else Settings()
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.running: dict[int, Running] = {}
        self._freed = asyncio.Event()
        self._stopping = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []
        self.reaper = Reaper(database)
        self.writer = JobWriter(database, self.worker_id, retry_for_s=self.options.lease_s)

    async def run(self) -> None:
        """Claim and run jobs until `stop()`; then drain within the grace period."""
        log.info("worker_started", worker_id=self.worker_id, concurrency=self.options.concurrency)
        self._loops = [
            asyncio.create_task(self._every(self.options.lease_s / 3, self._heartbeat)),
            asyncio.create_task(self._every(self.options.lease_s / 6, self._honour_leases)),
            asyncio.create_task(self._every(self.options.cancel_poll_s, self._watch_cancels)),
            asyncio.create_task(self._every(self.options.reaper_interval_s, self.reaper.run_once)),
        ]
        sender = asyncio.create_task(self.webhooks.run()) if self.webhooks is not None else None
        try:
            async with self.writer:
                try:
                    await self._claim_loop()
                finally:
                    await self._drain()
                    for loop in self._loops:
                        loop.cancel()
                    await asyncio.gather(*self._loops, return_exceptions=True)
        finally:
            if sender is not None and self.webhooks is not None:
                # After the jobs' last events: what they queued is sent now or by the next
                # process (deliveries are rows; nothing is lost if this one stops first).
                self.webhooks.stop()
                await asyncio.gather(sender, return_exceptions=True)
        log.info("worker_stopped", worker_id=self.worker_id)

    def stop(self) -> None:
        self._stopping.set()
        self.wakeup.notify()
        self._freed.set()  # a claim loop waiting for a free slot must see the stop too

    async def _claim_loop(self) -> None:
        while not self._stopping.is_set():
            free = self.options.concurrency - len(self.running)
            if free <= 0:
                self._freed.clear()
                await self._freed.wait()
                continue
            if free < self.options.concurrency // 2:
                # Let a few more slots free up (ends are written in batches): one claim for
                # several jobs costs about what a claim for one does.
                self._freed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._freed.wait(), CLAIM_LINGER_S)
                free = self.options.concurrency - len(self.running)
            lease_until = asyncio.get_running_loop().time() + self.options.lease_s
            try:
                jobs = await self._claim(free)
            except Exception as exc:  # database hiccup: back off, keep the worker alive
                log.error("claim_failed", error=str(exc))
                jobs = []
                await asyncio.sleep(self.options.idle_poll_s)
            if not jobs:
                await self.wakeup.wait(self.options.idle_poll_s)
                continue
            for job in jobs:
                self._start(job, lease_until)

    async def _claim(self, wanted: int) -> list[Job]:
        async with self.database.transaction() as session:
            # Without --kinds, take only kinds this process can run: another worker may have
            # plug-ins this one lacks.
            kinds = self.options.kinds or known_kinds()
            return await claim_jobs(session, self.worker_id, self.options.lease_s, kinds, wanted)

    def _start(self, job: Job, lease_until: float) -> None:
        spec = get_executor(job.kind)
        deadline = utcnow() + timedelta(seconds=job.timeout_s)
        running = Running(job, JobContext(job, self, deadline), lease_until)
        self.running[job.id] = running
        running.listener = asyncio.create_task(self._hear_cancel(running), name=f"cancel-{job.id}")
        running.task = asyncio.create_task(self._execute(running, spec), name=f"job-{job.id}")
        # Cleanup in a done-callback runs even for a task cancelled before it first ran, so a
        # slot can never leak.
        running.task.add_done_callback(lambda _task: self._forget(job.id))

    def _forget(self, job_id: int) -> None:
        running = self.running.pop(job_id, None)
        if running is not None:
            if running.listener is not None:
                running.listener.cancel()
            self._freed.set()

    async def _hear_cancel(self, running: Running) -> None:
        """A client's cancellation arrives as the job's `cancel_requested` event."""
        async with self.broadcaster.subscribe(running.job.id) as events:
            while True:
                event = await events.get()
                if event["type"] == EventType.CANCEL_REQUESTED:
                    self._cancel(running)
                    return

    def _cancel(self, running: Running) -> None:
        if not running.ctx.cancelled.is_set():
            running.ctx.cancelled.set()
            running.cancel_deadline = (
                asyncio.get_running_loop().time() + self.options.cancel_grace_s
            )

    async def _execute(self, running: Running, spec: Any) -> None:
        try:
            await self._execute_job(running, spec)
        except Exception as exc:
            if not is_database_unavailable(exc):
                raise
            # Not the job's fault, and nothing more can be written: the lease lapses and the
            # reaper queues the job again.
            log.error("job_end_not_written", job_id=running.job.id, error=str(exc))

    async def _execute_job(self, running: Running, spec: Any) -> None:
        job, ctx = running.job, running.ctx
        try:
            if spec is None:
                await self._finish(
                    job,
                    JobStatus.FAILED,
                    error={
                        "code": "unknown_kind",
                        "message": f"No executor for kind '{job.kind}' on this worker",
                    },
                )
                return
            remaining = (ctx.deadline - utcnow()).total_seconds()
            try:
                async with asyncio.timeout(max(0.0, remaining)):
                    result = await spec.run(job, ctx)
            except TimeoutError:
                await self._finish(
                    job,
                    JobStatus.FAILED,
                    error={
                        "code": "timeout",
                        "message": f"Job exceeded its {job.timeout_s:g} s timeout",
                    },
                )
                return
            await self._conclude(job, ctx, result)
        except JobCancelled:
            await self._finish(job, JobStatus.CANCELLED)
        except asyncio.CancelledError:
            if ctx.cancelled.is_set():
                await self._finish(job, JobStatus.CANCELLED)
            elif self._stopping.is_set():
                await self._release(job)
            else:
                raise
        except JobDeferred as deferral:
            await self._release(job, f"deferred: {deferral.reason}", deferral.delay_s)
        except JobFailed as failure:
            await self._fail(job, failure)
        except Exception as exc:
            if is_database_unavailable(exc):
                raise
            log.exception("executor_error", job_id=job.id, kind=job.kind)
            await self._finish(
                job,
                JobStatus.FAILED,
                error={"code": "executor_error", "message": f"{type(exc).__name__}: {exc}"[:1000]},
            )

    async def _conclude(self, job: Job, ctx: JobContext, result: dict[str, Any] | None) -> None:
        if ctx.cancelled.is_set():
            await self._finish(job, JobStatus.CANCELLED)
        else:
            await self._finish(job, JobStatus.SUCCEEDED, result=result or {})

    async def _fail(self, job: Job, failure: JobFailed) -> None:
        if failure.retryable and job.attempts < job.max_attempts:
            delay = retry_delay(job.attempts, self.options.retry_base_s, self.options.retry_cap_s)
            await self.writer.requeue(
                job,
                run_after=utcnow() + timedelta(seconds=delay),
                why=f"retry in {delay:.1f} s after: {failure.message}",
                error=failure.as_error(),
            )
            return
        await self._finish(job, JobStatus.FAILED, error=failure.as_error())

    async def _finish(self, job: Job, status: JobStatus, **outcome: Any) -> None:
        if not await self.writer.finish(job, status, **outcome):
            log.warning("lost_lease", job_id=job.id, status=status)

    async def _release(self, job: Job, why: str = "worker shut down", delay_s: float = 0) -> None:
        """Back to the queue without spending an attempt (the job was not at fault)."""
        await self.writer.requeue(
            job, run_after=utcnow() + timedelta(seconds=delay_s), why=why, refund_attempt=True
        )
        self.wakeup.notify()

    async def report_progress(self, job: Job, fraction: float, message: str | None) -> None:
        self.writer.progress(job, fraction, message)

    async def report_event(self, job: Job, type_: EventType, data: dict[str, Any]) -> None:
        await self.writer.event(job, type_, data)

    async def _every(self, interval_s: float, action: Any) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await action()
            except Exception as exc:  # a background chore must never kill the worker
                log.error("worker_chore_failed", chore=action.__name__, error=str(exc))

    async def _heartbeat(self) -> None:
        # Judge only the jobs we asked about: one claimed while the renewal was in flight is not
        # in `held`, and is not lost either.
        asked = list(self.running)
        if not asked:
            return
        lease_until = asyncio.get_running_loop().time() + self.options.lease_s
        async with self.database.transaction() as session:
            held = await renew_leases(session, self.worker_id, asked, self.options.lease_s)
        for job_id in held:
            renewed = self.running.get(job_id)
            if renewed is not None:
                renewed.lease_until = lease_until
        for job_id in set(asked) - held:
            # Another worker took it after our lease lapsed: stop our copy.
            lost = self.running.get(job_id)
            if lost is not None and lost.task is not None:
                log.warning("lease_lost", job_id=job_id)
                lost.task.cancel()

    async def _honour_leases(self) -> None:
        """Stop each job whose lease lapses before the next renewal could extend it (renewals
        failed: the database is unreachable). Once it lapses, the reaper may queue the job again
        for another worker."""
        lapsing = asyncio.get_running_loop().time() + self.options.lease_s / 3
        for job_id, running in self.running.items():
            task = running.task
            if running.lease_until <= lapsing and task is not None and not task.cancelling():
                log.warning("lease_lapsing", job_id=job_id)
                task.cancel()

    async def _watch_cancels(self) -> None:
        """The fallback for a cancel event that never arrived (e.g. Redis was down), and the
        hard stop of jobs that ignore cancellation past the grace period."""
        if not self.running:
            return
        async with self.database.sessions() as session:
            asked = await cancel_requests(session, list(self.running))
        loop = asyncio.get_running_loop()
        for job_id in asked:
            running = self.running.get(job_id)
            if running is None:
                continue
            if not running.ctx.cancelled.is_set():
                self._cancel(running)
            elif running.cancel_deadline and loop.time() > running.cancel_deadline:
                if running.task is not None and not running.task.done():
                    running.task.cancel()

    async def _drain(self) -> None:
        tasks = [r.task for r in self.running.values() if r.task is not None]
        if not tasks:
            return
        log.info("worker_draining", jobs=len(tasks), grace_s=self.options.shutdown_grace_s)
        _done, pending = await asyncio.wait(tasks, timeout=self.options.shutdown_grace_s)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)


@contextlib.asynccontextmanager
async def running_worker(worker: Worker) -> Any:
    """Run `worker` in the background for the duration of the block."""
    task = asyncio.create_task(worker.run(), name="worker")
    try:
        yield worker
    finally:
        worker.stop()
        await task
