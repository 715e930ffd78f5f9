"""Jobs for an organization: create (queued in the same transaction), read, list, cancel."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, bindparam, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from genway.db import on_commit, utcnow
from genway.errors import Conflict, InvalidInput, NotFound, PayloadTooLarge
from genway.jobs.events import EventType, append_event, record_events
from genway.jobs.lifecycle import submitted_event, transition
from genway.jobs.models import Job, jobs_table
from genway.jobs.schemas import JobCreate
from genway.jobs.states import JobStatus
from genway.orgs.models import Organization
from genway.projects.service import get_project
from genway.queue.wakeup import notify_queued
from genway.ratelimit.quotas import QuotaExceeded, consume_quota, quota_metric
from genway.ratelimit.tiers import limits_for
from genway.ratelimit.usage import Metric
from genway.webhooks.outbox import note_job_webhook
from genway.webhooks.targets import TargetPolicy, check_target, configured_policy
from genway.worker.registry import validate_job_input


class JobNotFound(NotFound):
    detail = "Job not found"


@dataclass(frozen=True)
class Submitter:
    org_id: int
    user_id: int | None
    api_key_id: int | None


@dataclass(frozen=True)
class JobFilters:
    status: JobStatus | None = None
    kind: str | None = None
    project_id: int | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


# Built once per dialect; the values are bound at execution, so the compiled form is reused.
_INSERT_JOB = {
    dialect.__name__.rsplit(".", 1)[-1]: dialect.insert(jobs_table)
    .on_conflict_do_nothing(index_elements=[jobs_table.c.org_id, jobs_table.c.idempotency_key])
    .returning(*jobs_table.c)
    for dialect in (postgresql, sqlite)
}


def org_jobs(org_id: int) -> Select[Job]:
    """Every query for an organization's jobs starts here, so the org filter cannot be forgotten."""
    return select(Job).where(Job.org_id == org_id)


# The job read clients poll, built once (binding values costs less than building the statement).
JOB_IN_ORG = select(Job).where(Job.org_id == bindparam("org_id"), Job.id == bindparam("job_id"))


def _request_hash(spec: JobCreate) -> str:
    canonical = json.dumps(spec.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


async def create_job(
    session: AsyncSession,
    submitter: Submitter,
    spec: JobCreate,
    *,
    idempotency_key: str | None = None,
    max_input_bytes: int,
    parent_id: int | None = None,
    webhook_policy: TargetPolicy | None = None,
) -> tuple[Job, bool]:
    """Store and queue a job in the caller's transaction; returns (job, created).

    An `idempotency_key` already used with the same request returns that job (created False).
    A top-level job draws on its kind's daily quota (child jobs belong to their parent's).
    A `webhook` URL is checked against `webhook_policy` (the process's when None).
    Raises InvalidInput (unknown kind, bad input, a refused webhook URL), ProjectNotFound
    (`project_id` not in the organization), PayloadTooLarge,
    Conflict (key reused with a different request), QuotaExceeded."""
    size = len(json.dumps(spec.input, separators=(",", ":")))
    if size > max_input_bytes:
        raise PayloadTooLarge(f"Job input is {size} bytes; the limit is {max_input_bytes}")
    executor, normalized = validate_job_input(spec.kind, spec.input)
    if spec.webhook is not None:
        await check_target(spec.webhook, webhook_policy or configured_policy())
    if spec.project_id is not None and parent_id is None:
        await get_project(session, submitter.org_id, spec.project_id)  # another org's: 404
    request_hash = _request_hash(spec)
    if idempotency_key is not None:
        existing = await _by_idempotency_key(session, submitter.org_id, idempotency_key)
        if existing is not None:
            return _replay(existing, request_hash), False
    now = utcnow()
    values = {
        "org_id": submitter.org_id,
        "user_id": submitter.user_id,
        "api_key_id": submitter.api_key_id,
        "project_id": spec.project_id,
        "parent_id": parent_id,
        "kind": spec.kind,
        "input": normalized,
        "status": JobStatus.QUEUED,
        "priority": spec.priority,
        "max_attempts": spec.max_attempts,
        "timeout_s": spec.timeout_s or executor.default_timeout_s,
        "idempotency_key": idempotency_key,
        "request_hash": request_hash,
        "webhook": spec.webhook,
        "webhook_events": spec.webhook_events_filter,
        "run_after": now,
        "created_at": now,
        "updated_at": now,
        "last_event_seq": 1,  # the "queued" event below
    }
    job = await _insert_job(session, values)
    if job is None:
        # Another request with the same key won the race: answer as it was answered.
        existing = await _by_idempotency_key(session, submitter.org_id, idempotency_key or "")
        assert existing is not None
        return _replay(existing, request_hash), False
    note_job_webhook(session, job.id, job.webhook, job.webhook_events)
    await record_events(session, [submitted_event(job.id, job.org_id)], job.created_at)
    await notify_queued(session)
    # Last before the commit at the boundary: the counter rows it upserts stay locked until then.
    await _meter_submission(session, submitter, job)
    return job, True


async def _insert_job(session: AsyncSession, values: dict[str, Any]) -> Job | None:
    """INSERT the job, or nothing when its idempotency key is taken (None). Core, with the
    values bound at execution: the ORM's unit of work costs more than the insert itself."""
    statement = _INSERT_JOB[session.bind.dialect.name]  # type: ignore[union-attr]
    row = (await session.execute(statement, values)).one_or_none()
    return Job(**row._mapping) if row is not None else None


async def _meter_submission(session: AsyncSession, submitter: Submitter, job: Job) -> None:
    if job.parent_id is None and quota_metric(job.kind) is not None:
        org = await session.get(Organization, submitter.org_id)
        assert org is not None
        try:
            await consume_quota(session, org, limits_for(org), job.kind, job.input)
        except QuotaExceeded:
            await session.rollback()
            raise
    on_commit(
        session, usage=[(submitter.org_id, submitter.user_id, f"{Metric.JOBS}:{job.kind}", 1)]
    )


async def _by_idempotency_key(session: AsyncSession, org_id: int, key: str) -> Job | None:
    job: Job | None = await session.scalar(org_jobs(org_id).where(Job.idempotency_key == key))
    return job


def _replay(existing: Job, request_hash: str) -> Job:
    if existing.request_hash != request_hash:
        raise Conflict("Idempotency-Key was already used with a different request body")
    return existing


async def get_job(session: AsyncSession, org_id: int, job_id: int) -> Job:
    """Raises JobNotFound when the job does not exist in this organization."""
    job = await session.scalar(JOB_IN_ORG, {"org_id": org_id, "job_id": job_id})
    if job is None:
        raise JobNotFound(f"Job {job_id} not found")
    return job


async def queue_position(session: AsyncSession, job: Job) -> int | None:
    """1 for the next job to run, counting runnable jobs of every organization ahead of it."""
    if job.status != JobStatus.QUEUED:
        return None
    ahead = await session.scalar(
        select(func.count(Job.id)).where(
            Job.status == JobStatus.QUEUED,
            or_(
                Job.priority > job.priority,
                and_(Job.priority == job.priority, Job.id < job.id),
            ),
        )
    )
    return int(ahead or 0) + 1


def encode_cursor(job_id: int) -> str:
    return base64.urlsafe_b64encode(f"j:{job_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """Raises InvalidInput for a cursor this API did not issue."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, value = text.partition(":")
        if prefix != "j":
            raise ValueError(cursor)
        return int(value)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput("Invalid cursor") from exc


async def list_jobs(
    session: AsyncSession, org_id: int, filters: JobFilters, *, cursor: str | None, limit: int
) -> tuple[Sequence[Job], str | None]:
    """Newest first; the cursor is the last id seen, so new jobs never shift a page."""
    query = org_jobs(org_id).order_by(Job.id.desc()).limit(limit + 1)
    if cursor is not None:
        query = query.where(Job.id < decode_cursor(cursor))
    if filters.status is not None:
        query = query.where(Job.status == filters.status)
    if filters.kind is not None:
        query = query.where(Job.kind == filters.kind)
    if filters.project_id is not None:
        query = query.where(Job.project_id == filters.project_id)
    if filters.created_after is not None:
        query = query.where(Job.created_at >= filters.created_after)
    if filters.created_before is not None:
        query = query.where(Job.created_at < filters.created_before)
    rows = (await session.scalars(query)).all()
    next_cursor = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return rows[:limit], next_cursor


async def cancel_job(session: AsyncSession, org_id: int, job_id: int) -> tuple[Job, str]:
    """Cancel a job (and its child jobs): at once if queued, by signal if running, and a no-op
    if it already ended. Returns the job and what happened. Raises JobNotFound."""
    job = await get_job(session, org_id, job_id)
    message = await _cancel_one(session, job)
    children = (
        await session.scalars(
            org_jobs(org_id).where(
                Job.parent_id == job.id, Job.status.in_([JobStatus.QUEUED, JobStatus.RUNNING])
            )
        )
    ).all()
    for child in children:
        await _cancel_one(session, child)
    await session.refresh(job)
    return job, message


async def _cancel_one(session: AsyncSession, job: Job) -> str:
    if job.status == JobStatus.QUEUED:
        ended = await transition(session, JobStatus.QUEUED, JobStatus.CANCELLED, Job.id == job.id)
        if ended:
            return "Job cancelled before it started"
        await session.refresh(job)
    if job.status == JobStatus.RUNNING:
        if not job.cancel_requested:
            await session.execute(
                update(jobs_table).where(jobs_table.c.id == job.id).values(cancel_requested=True)
            )
            await append_event(
                session,
                job.id,
                job.org_id,
                EventType.CANCEL_REQUESTED,
                {"message": "cancellation requested by a client"},
            )
        return "Cancellation requested; the running job is being stopped"
    return f"Job already {job.status}; nothing to cancel"


def job_summary(job: Job) -> dict[str, Any]:
    return {"id": job.id, "status": job.status, "kind": job.kind}
