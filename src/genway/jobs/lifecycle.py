"""The job state machine as data, and the one function that changes a job's status.

Each allowed transition names the columns it sets and the reason its status event records.
`transition(...)` applies one to one job or many: a single `UPDATE jobs ... WHERE status =
<source> AND <fence> RETURNING ...` that also takes each job's next event number, then the status
events of every row it changed (one INSERT), published once the transaction commits. It is the
only writer of `jobs.status` besides the INSERT that submits a job (`submitted_event`).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ClauseElement,
    ColumnElement,
    Row,
    Update,
    bindparam,
    true,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from genway.db import utcnow
from genway.jobs.events import EventRow, EventType, record_events
from genway.jobs.models import jobs_table
from genway.jobs.states import InvalidTransition, JobStatus

jobs = jobs_table
Q, R = JobStatus.QUEUED, JobStatus.RUNNING
S, F, C = JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED


# The transition's time, bound when a statement runs (statements are built once, see below).
AT = bindparam("at", type_=jobs.c.started_at.type)
STARTED = {
    "attempts": jobs.c.attempts + 1,
    "started_at": AT,
    "progress": 0.0,
    "progress_message": None,
}
ENDED = {"finished_at": AT, "lease_expires_at": None}
SUCCEEDED = {**ENDED, "progress": 1.0}
REQUEUED = {"worker_id": None, "lease_expires_at": None}
CANCELLED_QUEUED = {"finished_at": AT, "cancel_requested": True}


@dataclass(frozen=True)
class Transition:
    source: JobStatus
    target: JobStatus
    reason: str
    sets: Mapping[str, Any]
    records_attempt: bool = False  # the status event says which attempt it concerns


TRANSITIONS: Mapping[tuple[JobStatus, JobStatus], Transition] = {
    (t.source, t.target): t
    for t in (
        Transition(Q, R, "claimed by a worker", STARTED, records_attempt=True),
        Transition(Q, C, "cancelled while queued", CANCELLED_QUEUED),
        Transition(R, S, "finished", SUCCEEDED, records_attempt=True),
        Transition(R, F, "failed", ENDED, records_attempt=True),
        Transition(R, C, "cancelled while running", ENDED, records_attempt=True),
        Transition(R, Q, "returned to the queue for another attempt", REQUEUED),
    )
}

RETURNED = (
    jobs.c.id,
    jobs.c.org_id,
    jobs.c.user_id,
    jobs.c.kind,
    jobs.c.attempts,
    jobs.c.started_at,
    jobs.c.last_event_seq,
)


def allowed(source: JobStatus, target: JobStatus) -> Transition:
    """The transition `source → target`. Raises InvalidTransition when the table lacks it."""
    found = TRANSITIONS.get((source, target))
    if found is None:
        raise InvalidTransition(source, target)
    return found


_STATEMENTS: dict[Hashable, Update] = {}


def _statement(
    change: Transition,
    where: ColumnElement[bool] | None,
    values: Mapping[str, Any],
    returning: Sequence[Any],
) -> Update:
    """The UPDATE of a transition: plain values become bound parameters named `set_<column>`."""
    bound = {
        name: value
        if isinstance(value, ClauseElement)
        else bindparam(f"set_{name}", type_=jobs.c[name].type)
        for name, value in values.items()
    }
    return (
        update(jobs)
        .where(jobs.c.status == change.source, where if where is not None else true())
        .values(
            {
                "status": change.target,
                "updated_at": AT,
                "last_event_seq": jobs.c.last_event_seq + 1,
                **change.sets,
                **bound,
            }
        )
        .returning(*RETURNED, *(column for column in returning if column not in RETURNED))
    )


async def transition(
    session: AsyncSession,
    source: JobStatus,
    target: JobStatus,
    where: ColumnElement[bool] | None = None,
    *,
    values: Mapping[str, Any] | None = None,
    why: str | None = None,
    event: Mapping[str, Any] | None = None,
    returning: Sequence[Any] = (),
    now: datetime | None = None,
    params: Mapping[str, Any] | None = None,
    events_out: list[EventRow] | None = None,
    shape: Hashable | None = None,
) -> Sequence[Row[Any]]:
    """Move every job matching `where` that is in `source` to `target`, setting the
    transition's columns and `values`, and record their status events. Returns the changed
    rows (id, org_id, user_id, kind, attempts, started_at, last_event_seq, *returning); an empty
    list when the fence matched nothing. `params` binds parameters the fence leaves open; with
    `events_out` the status events are added there for the caller's one INSERT
    (`record_events`) instead of being inserted here. A caller on a hot path names the `shape`
    of its call (same fence object, same value columns and SQL expressions, same returning):
    the statement is then built once and reused. Raises InvalidTransition."""
    change = allowed(source, target)
    now = now or utcnow()
    values = values or {}
    if shape is None:
        statement = _statement(change, where, values, returning)
    else:
        key = (shape, source, target, tuple(values))
        statement = _STATEMENTS.get(key)  # type: ignore[assignment]
        if statement is None:
            statement = _STATEMENTS[key] = _statement(change, where, values, returning)
    bound = {
        f"set_{name}": value
        for name, value in values.items()
        if not isinstance(value, ClauseElement)
    }
    rows = (await session.execute(statement, {"at": now, **bound, **(params or {})})).all()
    if rows:
        reason = f"{change.reason}: {why}" if why else change.reason
        data = {"status": target, "reason": reason, **(event or {})}
        events: list[EventRow] = [
            (row.id, row.org_id, row.last_event_seq, EventType.STATUS, _data(data, row, change))
            for row in rows
        ]
        if events_out is not None:
            events_out.extend(events)
        else:
            await record_events(session, events, now)
    return rows


def _data(data: dict[str, Any], row: Row[Any], change: Transition) -> dict[str, Any]:
    return {**data, "attempt": row.attempts} if change.records_attempt else data


def submitted_event(job_id: int, org_id: int) -> EventRow:
    """The first event of a job that was just inserted as queued (its seq is 1)."""
    return (
        job_id,
        org_id,
        1,
        EventType.STATUS,
        {"status": JobStatus.QUEUED, "reason": "submitted"},
    )
