"""A job's event stream: replay from the database after a sequence number, then live events,
with gaps (a slow consumer, a lost pub/sub message) filled from the database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import select

from genway.db import Database
from genway.jobs.events import is_final, read_events
from genway.jobs.models import Job
from genway.jobs.states import JobStatus
from genway.realtime.broadcast import Broadcaster

KEEPALIVE = None


async def job_event_stream(
    database: Database,
    broadcaster: Broadcaster,
    job_id: int,
    org_id: int,
    after: int = 0,
    *,
    keepalive_s: float = 15.0,
    resync_s: float = 5.0,
) -> AsyncIterator[dict[str, Any] | None]:
    """Events with `seq > after`, in order, ending after a terminal status (at once when the
    job had already ended and `after` is past its last event). Yields None as a keep-alive
    tick when nothing happened for `keepalive_s`."""
    last = after
    async with broadcaster.subscribe(job_id) as live:

        async def from_database() -> AsyncIterator[dict[str, Any]]:
            nonlocal last
            async with database.sessions() as session:
                for event in await read_events(session, job_id, org_id, last):
                    last = event["seq"]
                    yield event

        # Read before the replay: a job that had ended then has its final event in the replay,
        # or the client already has it (`after` at or past it) and the stream ends at once.
        async with database.sessions() as session:
            status = await session.scalar(select(Job.status).where(Job.id == job_id))
        ended = status is None or JobStatus(status).is_terminal
        async for event in from_database():
            yield event
            if is_final(event):
                return
        if ended:
            return
        idle = 0.0
        while True:
            try:
                event = await asyncio.wait_for(live.get(), timeout=resync_s)
            except TimeoutError:
                idle += resync_s
                async for missed in from_database():
                    idle = 0.0
                    yield missed
                    if is_final(missed):
                        return
                if idle >= keepalive_s:
                    idle = 0.0
                    yield KEEPALIVE
                continue
            idle = 0.0
            if event["seq"] <= last:
                continue
            if event["seq"] > last + 1:
                async for missed in from_database():
                    yield missed
                    if is_final(missed):
                        return
                continue
            last = event["seq"]
            yield event
            if is_final(event):
                return
