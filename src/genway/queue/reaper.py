"""The reaper: jobs whose lease expired (their worker died) go back to the queue, or fail when
their attempts are used up, or end cancelled if a client had asked for that: three statements
per round, whatever the number of jobs."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement

from genway.db import Database, utcnow
from genway.jobs.lifecycle import transition
from genway.jobs.models import jobs_table
from genway.jobs.states import JobStatus
from genway.queue.wakeup import notify_queued

WORKER_LOST = {"code": "worker_lost", "message": "The worker running this job stopped responding"}
jobs = jobs_table


@dataclass
class ReapReport:
    requeued: int = 0
    failed: int = 0
    cancelled: int = 0


class Reaper:
    def __init__(self, database: Database) -> None:
        self.database = database

    async def run_once(self) -> ReapReport:
        now = utcnow()
        # Only while the lease is still expired, so a worker that renewed in the meantime keeps
        # its job (otherwise it would run twice).
        expired: ColumnElement[bool] = jobs.c.lease_expires_at < now
        asked = jobs.c.cancel_requested.is_(True)
        left = jobs.c.attempts < jobs.c.max_attempts
        R = JobStatus.RUNNING
        async with self.database.transaction() as session:
            cancelled = await transition(session, R, JobStatus.CANCELLED, expired & asked, now=now)
            requeued = await transition(
                session,
                R,
                JobStatus.QUEUED,
                expired & ~asked & left,
                values={"run_after": now, "error": WORKER_LOST},
                why="lease expired",
                event={"error": WORKER_LOST},
                now=now,
            )
            failed = await transition(
                session,
                R,
                JobStatus.FAILED,
                expired & ~asked & ~left,
                values={"error": WORKER_LOST},
                event={"error": WORKER_LOST},
                now=now,
            )
            if requeued:
                await notify_queued(session)
        return ReapReport(len(requeued), len(failed), len(cancelled))
