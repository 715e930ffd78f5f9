"""What an executor gets besides its job: progress, logs, outputs, the deadline, cancellation."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from genway.jobs.events import EventType

if TYPE_CHECKING:
    from genway.jobs.models import Job
    from genway.worker.runner import Worker

T = TypeVar("T")


class JobCancelled(Exception):
    """Raised by an executor (or `raise_if_cancelled`) to stop because a client cancelled."""


class JobFailed(Exception):
    """A failure the executor understands: recorded as `error` `{code, message, details}`."""

    retryable = False

    def __init__(self, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details

    def as_error(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details is not None:
            error["details"] = self.details
        return error


class RetryableJobError(JobFailed):
    """A transient failure: the job is retried with backoff while attempts remain."""

    retryable = True


class JobDeferred(Exception):
    """The job cannot start yet (e.g. no engine is reachable): it goes back to the queue for
    `delay_s` without spending an attempt, however long the wait lasts."""

    def __init__(self, reason: str, delay_s: float) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay_s = delay_s


class JobContext:
    def __init__(self, job: Job, worker: Worker, deadline: datetime) -> None:
        self.job = job
        self.worker = worker
        self.deadline = deadline
        self.cancelled = asyncio.Event()

    @property
    def attempt(self) -> int:
        return self.job.attempts

    @property
    def artifacts_dir(self) -> Path:
        """Where this job may write files it produces (created on first use)."""
        path = self.worker.data_dir / "artifacts" / str(self.job.org_id) / str(self.job.id)
        path.mkdir(parents=True, exist_ok=True)
        return path

    async def progress(self, fraction: float, message: str | None = None) -> None:
        await self.worker.report_progress(self.job, fraction, message)

    async def log(self, text: str) -> None:
        await self.worker.report_event(self.job, EventType.LOG, {"text": text})

    async def output(self, name: str, data: dict[str, Any]) -> None:
        await self.worker.report_event(self.job, EventType.OUTPUT, {"name": name, **data})

    def output_soon(self, name: str, data: dict[str, Any]) -> None:
        """An output event written with the worker's next batch, without waiting for it; the
        job's end, returned later, is written after it (in that batch or a later one)."""
        self.worker.writer.event_soon(self.job, EventType.OUTPUT, {"name": name, **data})

    def raise_if_cancelled(self) -> None:
        if self.cancelled.is_set():
            raise JobCancelled

    async def sleep(self, seconds: float) -> None:
        """Sleep, waking early and raising JobCancelled if the job is cancelled meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.cancelled.wait(), timeout=seconds)
        self.raise_if_cancelled()


async def until_cancelled(ctx: JobContext, work: Awaitable[T]) -> T:
    """Await `work`, stopping it as soon as the job is cancelled (raises JobCancelled): a model
    call can take minutes, longer than the worker waits for a cooperative stop."""
    task = asyncio.ensure_future(work)
    cancelled = asyncio.ensure_future(ctx.cancelled.wait())
    try:
        await asyncio.wait({task, cancelled}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:  # the executor itself is stopped (deadline): stop the work too
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        raise
    finally:
        cancelled.cancel()
    if not task.done():
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        raise JobCancelled
    return task.result()
