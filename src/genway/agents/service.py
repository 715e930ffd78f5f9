"""Agent runs of an organization: start, read, list, read logs, resume. A run is a job of kind
`agent.run`; these functions only add what agents need on top of the job service."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from genway.agents.executors import AGENT_RUN
from genway.agents.recording import DELTA
from genway.agents.schemas import AgentRunInput, SourceType, agent_input
from genway.agents.system_prompts import Task
from genway.errors import Conflict, NotFound
from genway.jobs.eta import typical_run_time
from genway.jobs.events import EventType
from genway.jobs.models import Job, JobEvent
from genway.jobs.schemas import JobCreate, WebhookOptions
from genway.jobs.service import Submitter, create_job, org_jobs
from genway.jobs.states import JobStatus
from genway.kit.pagination import PageParams, paginate
from genway.projects.service import get_project


class AgentRunNotFound(NotFound):
    detail = "Agent run not found."


def org_runs(org_id: int) -> Select[Job]:
    """The organization's agent runs (every query starts here)."""
    return org_jobs(org_id).where(Job.kind == AGENT_RUN)


async def start_run(
    session: AsyncSession,
    submitter: Submitter,
    spec: AgentRunInput,
    *,
    timeout_s: float,
    max_input_bytes: int,
    webhook: WebhookOptions | None = None,
) -> Job:
    """Queue an agent run (told to `webhook` when given). Raises ProjectNotFound (project of
    another org, or none), and what `create_job` raises (InvalidInput, PayloadTooLarge,
    QuotaExceeded)."""
    job, _created = await create_job(
        session,
        submitter,
        JobCreate(
            kind=AGENT_RUN,
            input=spec.model_dump(mode="json", exclude_none=True),
            project_id=spec.project_id,
            timeout_s=timeout_s,
            **(webhook.model_dump(include={"webhook", "webhook_events_filter"}) if webhook else {}),
        ),
        max_input_bytes=max_input_bytes,
    )
    return job


async def get_run(session: AsyncSession, org_id: int, run_id: int) -> Job:
    """Raises AgentRunNotFound when no such run exists in this organization."""
    job = await session.scalar(org_runs(org_id).where(Job.id == run_id))
    if job is None:
        raise AgentRunNotFound(f"Agent run {run_id} not found")
    return job


async def list_runs(
    session: AsyncSession,
    org_id: int,
    params: PageParams,
    *,
    user_id: int | None = None,
    source_type: SourceType | None = None,
) -> tuple[Sequence[Job], int]:
    """A page of runs, newest first, optionally of one user or one source."""
    query = org_runs(org_id).order_by(Job.id.desc())
    if user_id is not None:
        query = query.where(Job.user_id == user_id)
    if source_type is not None:
        query = query.where(Job.input["source_type"].as_string() == source_type.value)
    return await paginate(session, query, params)


async def run_logs(
    session: AsyncSession, org_id: int, run_id: int, params: PageParams
) -> tuple[Job, Sequence[JobEvent], int]:
    """The run, a page of its events in order (without text deltas), and their total.
    Raises AgentRunNotFound."""
    job = await get_run(session, org_id, run_id)
    events, total = await paginate(session, events_without_deltas(job.id), params)
    return job, events, total


def events_without_deltas(job_id: int) -> Select[JobEvent]:
    """A job's events in order, except streamed text (which only a live view wants)."""
    not_delta = or_(JobEvent.type != EventType.OUTPUT, JobEvent.data["name"].as_string() != DELTA)
    return select(JobEvent).where(JobEvent.job_id == job_id, not_delta).order_by(JobEvent.seq)


def resumed_spec(previous: Job, prompt: str, images: list[str] | None) -> AgentRunInput:
    """A new run that continues `previous`: its conversation so far, then `prompt`.
    Raises Conflict while `previous` is still active."""
    if previous.status in (JobStatus.QUEUED, JobStatus.RUNNING):
        raise Conflict(f"Agent run {previous.id} is still active; resume it once it has ended")
    before = AgentRunInput.model_validate(previous.input)
    history: list[dict[str, Any]] = [t.model_dump() for t in before.history]
    history.append({"role": "user", "content": before.prompt})
    outcome = previous.result or (previous.error or {}).get("details") or {}
    answer = outcome.get("text") if isinstance(outcome, dict) else None
    if answer:
        history.append({"role": "assistant", "content": answer})
    branch = outcome.get("branch") if isinstance(outcome, dict) else None
    return agent_input(
        **before.model_dump(
            exclude={"history", "prompt", "images", "resumed_from", "plan_first", "branch"}
        ),
        prompt=prompt,
        images=images or [],
        history=history[-50:],
        resumed_from=previous.id,
        branch=branch or before.branch,
    )


async def estimated_seconds(session: AsyncSession, org_id: int, task: Task) -> int:
    """How long a run of `task` takes here, by the job estimates' rule (`jobs.eta`)."""
    found = await typical_run_time(session, org_id, AGENT_RUN, variant=("task", task.value))
    return max(1, round(found.seconds))


async def project_jobs(
    session: AsyncSession, org_id: int, project_id: int, limit: int
) -> Sequence[Job]:
    """The project's jobs, newest first. Raises ProjectNotFound."""
    await get_project(session, org_id, project_id)
    query = org_jobs(org_id).where(Job.project_id == project_id).order_by(Job.id.desc())
    return (await session.scalars(query.limit(limit))).all()
