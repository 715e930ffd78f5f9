"""The reaper: jobs whose lease expired (their worker died) go back to the queue, or fail when
their attempts are used up, or end cancelled if a client had asked for that."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from genway.db import utcnow
from genway.jobs.events import EventType, append_event, take_pending
from genway.jobs.models import jobs_table
from genway.jobs.states import JobStatus, check_transition
from genway.queue.outcomes import requeue_job
from genway.realtime.broadcast import Broadcaster

WORKER_LOST = {"code": "worker_lost", "message": "The worker running this job stopped responding"}


@dataclass
class ReapReport:
    requeued: int = 0
    failed: int = 0
    cancelled: int = 0


class Reaper:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], broadcaster: Broadcaster, batch: int = 100
    ) -> None:
        self.sessions = sessions
        self.broadcaster = broadcaster
        self.batch = batch

    async def run_once(self) -> ReapReport:
        report = ReapReport()
        async with self.sessions() as session:
            jobs = jobs_table
            query = (
                select(
                    jobs.c.id,
                    jobs.c.org_id,
                    jobs.c.attempts,
                    jobs.c.max_attempts,
                    jobs.c.cancel_requested,
                )
                .where(jobs.c.status == JobStatus.RUNNING, jobs.c.lease_expires_at < utcnow())
                .order_by(jobs.c.id)
                .limit(self.batch)
            )
            expired = (await session.execute(query)).all()
            for job_id, org_id, attempts, max_attempts, cancel_requested in expired:
                if cancel_requested:
                    if await _end(session, job_id, org_id, JobStatus.CANCELLED, None):
                        report.cancelled += 1
                elif attempts < max_attempts:
                    if await requeue_job(
                        session,
                        job_id,
                        org_id,
                        run_after=utcnow(),
                        why="lease expired",
                        error=WORKER_LOST,
                    ):
                        report.requeued += 1
                elif await _end(session, job_id, org_id, JobStatus.FAILED, WORKER_LOST):
                    report.failed += 1
                self.broadcaster.publish(take_pending(session))
        return report


async def _end(
    session: AsyncSession,
    job_id: int,
    org_id: int,
    status: JobStatus,
    error: dict[str, Any] | None,
) -> bool:
    reason = check_transition(JobStatus.RUNNING, status)
    jobs = jobs_table
    now = utcnow()
    ended = await session.execute(
        update(jobs)
        .where(
            jobs.c.id == job_id, jobs.c.status == JobStatus.RUNNING, jobs.c.lease_expires_at < now
        )
        .values(status=status, error=error, finished_at=now, lease_expires_at=None, updated_at=now)
    )
    if ended.rowcount != 1:  # type: ignore[attr-defined]
        await session.rollback()
        return False
    data: dict[str, Any] = {"status": status, "reason": reason}
    if error:
        data["error"] = error
    await append_event(session, job_id, org_id, EventType.STATUS, data)
    await session.commit()
    return True
