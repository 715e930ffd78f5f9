"""A session's agent instances as child jobs, run inside the session's own worker slot.

Why not queue the children and wait: a session blocked on queued children holds a worker slot
its children may need, so once sessions fill every slot (20 sessions on 2 workers) nothing can
run and everything waits for ever. Here the session creates its children already claimed by its
own worker (status `running`, its worker id, a lease), runs them concurrently in its process,
renews their leases and finishes them. Each instance is still a real job: it has a status,
events, a result, and can be read and cancelled through the jobs API. Should the session's
worker die, the reaper requeues the children with the session and any worker can run them
(`promode.agent` is an ordinary executor); the restarted session cancels such leftovers and
starts its iterations again.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any

import structlog
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from genway.agents.recording import EventRecorder, Write
from genway.db import utcnow
from genway.jobs.events import EventRow, EventType, record_events
from genway.jobs.lifecycle import allowed
from genway.jobs.models import Job, jobs_table
from genway.jobs.service import cancel_job, org_jobs
from genway.jobs.states import JobStatus
from genway.promode.schemas import InstanceInput
from genway.queue.outcomes import cancel_requests, finish_job
from genway.worker.context import JobContext

log = structlog.get_logger("genway.promode")

INSTANCE_KIND = "promode.agent"
# How often instances are checked for cancellation (and their leases renewed when due).
INSTANCE_POLL_S = 0.25


class Instances:
    """The session's running children: creation, lease renewal, cancellation, the end."""

    def __init__(self, ctx: JobContext, session_job: Job, recorder: EventRecorder) -> None:
        self.ctx = ctx
        self.session_job = session_job
        self.worker = ctx.worker
        self.recorder = recorder
        self.active: dict[int, Job] = {}
        self.cancel_events: dict[int, asyncio.Event] = {}
        self._renewal: asyncio.Task[None] | None = None
        self._next_renewal = 0.0
        # Why instances still running when the session ends are failed (the session's timeout
        # replaces it); when the session was cancelled they are cancelled instead.
        self.end_error: dict[str, Any] = {
            "code": "session_ended",
            "message": "The session ended before this instance finished",
        }

    async def spawn(self, inputs: list[InstanceInput]) -> list[Job]:
        """Create the instances as running jobs held by this worker, with their first two
        events, in one transaction of two statements (it is on the session's critical path)."""
        now, lease_s = utcnow(), self.worker.options.lease_s
        parent = self.session_job
        children = [
            Job(
                org_id=parent.org_id,
                project_id=parent.project_id,
                user_id=parent.user_id,
                api_key_id=parent.api_key_id,
                parent_id=parent.id,
                kind=INSTANCE_KIND,
                input=spec.model_dump(mode="json"),
                status=JobStatus.RUNNING,
                attempts=1,
                max_attempts=parent.max_attempts,
                timeout_s=parent.timeout_s,
                worker_id=self.worker.worker_id,
                lease_expires_at=now + timedelta(seconds=lease_s),
                run_after=now,
                created_at=now,
                started_at=now,
                updated_at=now,
                last_event_seq=2,
            )
            for spec in inputs
        ]
        async with self.worker.database.transaction() as session:
            session.add_all(children)
            await session.flush()
            events = [event for child in children for event in self._start_events(child, now)]
            await record_events(session, events, now)
        for child in children:
            self.active[child.id] = child
            self.cancel_events[child.id] = asyncio.Event()
        return children

    def _start_events(self, child: Job, now: datetime) -> list[EventRow]:
        # The two status events a claimed job has (queued, then running), numbered 1 and 2 as
        # `last_event_seq` says; written directly because the rows are new and ours alone.
        reason = f"agent instance of Pro Mode session {self.session_job.id}"
        running = allowed(JobStatus.QUEUED, JobStatus.RUNNING).reason
        queued_data = {"status": JobStatus.QUEUED, "reason": reason}
        running_data = {
            "status": JobStatus.RUNNING,
            "reason": running,
            "attempt": 1,
            "worker_id": child.worker_id,
        }
        return [
            (child.id, child.org_id, 1, EventType.STATUS, queued_data),
            (child.id, child.org_id, 2, EventType.STATUS, running_data),
        ]

    def finish(
        self,
        child: Job,
        status: JobStatus,
        *,
        result: dict[str, Any] | None = None,
        error: dict[str, Any] | None = None,
    ) -> None:
        """End an instance in the session's next batch of writes (off its critical path)."""
        if self.active.pop(child.id, None) is None:
            return
        worker_id = self.worker.worker_id

        async def write(session: AsyncSession) -> None:
            await end_instance(session, child, worker_id, status, result, error)

        self.recorder.write(write)

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(INSTANCE_POLL_S)
            try:
                await self._renew_and_watch()
            except Exception as exc:  # a missed renewal is retried; never kill the session
                log.error("instance_renewal_failed", error=str(exc))

    async def _renew_and_watch(self) -> None:
        ids = list(self.active)
        if not ids:
            return
        async with self.worker.database.sessions() as session:
            asked = await cancel_requests(session, ids)
        for job_id in asked:
            event = self.cancel_events.get(job_id)
            if event is not None:
                event.set()
        loop = asyncio.get_running_loop()
        if loop.time() >= self._next_renewal:
            lease_s = self.worker.options.lease_s
            self._next_renewal = loop.time() + lease_s / 3
            # Through the session's single writer: two transactions of one session updating
            # the same instance rows in different orders could deadlock each other.
            self.recorder.write(renewal(sorted(ids), self.worker.worker_id, lease_s))

    async def cancel_leftovers(self) -> int:
        """Cancel children of an earlier attempt of this session that did not finish."""
        async with self.worker.database.transaction() as session:
            leftovers = list(
                await session.scalars(
                    org_jobs(self.session_job.org_id).where(
                        Job.parent_id == self.session_job.id,
                        Job.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]),
                    )
                )
            )
            for child in leftovers:
                await cancel_job(session, child.org_id, child.id)
                await session.execute(
                    update(jobs_table)
                    .where(jobs_table.c.id == child.id)
                    .values(lease_expires_at=utcnow())
                )
        return len(leftovers)

    async def __aenter__(self) -> Instances:
        self._renewal = asyncio.create_task(self._renew_forever(), name="instance-renewal")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._renewal is not None:
            self._renewal.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewal
        ended = JobStatus.CANCELLED if self.ctx.cancelled.is_set() else JobStatus.FAILED
        error = None if ended is JobStatus.CANCELLED else self.end_error
        for child in list(self.active.values()):
            self.finish(child, ended, error=error)


def renewal(job_ids: list[int], worker_id: str, lease_s: float) -> Write:
    """A write extending the leases of instances this worker holds."""

    async def renew(session: AsyncSession) -> None:
        jobs = jobs_table
        await session.execute(
            update(jobs)
            .where(
                jobs.c.id.in_(job_ids),
                jobs.c.worker_id == worker_id,
                jobs.c.status == JobStatus.RUNNING,
            )
            .values(lease_expires_at=utcnow() + timedelta(seconds=lease_s))
        )

    return renew


async def end_instance(
    session: AsyncSession,
    child: Job,
    worker_id: str,
    status: JobStatus,
    result: dict[str, Any] | None,
    error: dict[str, Any] | None,
) -> None:
    """Move an instance this worker holds to a terminal status, with its event, in the caller's
    transaction (so it can share a batch; an instance's time is not metered as compute: its
    session's is)."""
    ended = await finish_job(session, child, worker_id, status, None, result=result, error=error)
    if ended is None:
        log.warning("instance_lost", job_id=child.id, status=status)
