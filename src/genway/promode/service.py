"""Pro Mode sessions of a project: start, list, and the session view (candidates, judgements,
bracket, synthesis, usage), folded from the session's events and its instance jobs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

from genway.agents.service import events_without_deltas
from genway.errors import NotFound
from genway.jobs.events import EventType
from genway.jobs.models import Job, JobEvent
from genway.jobs.schemas import JobCreate
from genway.jobs.service import Submitter, create_job, org_jobs
from genway.kit.pagination import PageParams, paginate
from genway.projects.service import get_project
from genway.promode.executors import GRACE_S, SESSION_KIND
from genway.promode.schemas import (
    CandidateView,
    IterationView,
    ProModeRequest,
    SessionDetail,
    SessionInput,
    SessionSummary,
)


class SessionNotFound(NotFound):
    detail = "Session not found"


def project_sessions(org_id: int, project_id: int) -> Select[Job]:
    """A project's sessions in an organization (every query starts here)."""
    return org_jobs(org_id).where(Job.kind == SESSION_KIND, Job.project_id == project_id)


async def start_session(
    session: AsyncSession,
    submitter: Submitter,
    project_id: int,
    body: ProModeRequest,
    *,
    max_input_bytes: int,
) -> Job:
    """Queue a session on a project. Raises ProjectNotFound (checked by `create_job`) and what
    else `create_job` raises."""
    spec = SessionInput(
        prompt=body.prompt,
        agents=body.agents,
        candidates=body.candidate_count,
        max_iterations=body.max_iterations,
        timeout_minutes=body.timeout_minutes,
        task=body.task,
        model=body.model,
        project_id=project_id,
    )
    job, _created = await create_job(
        session,
        submitter,
        JobCreate(
            kind=SESSION_KIND,
            input=spec.model_dump(mode="json", exclude_none=True),
            project_id=project_id,
            timeout_s=spec.timeout_minutes * 60 + GRACE_S,
            webhook=body.webhook,
            webhook_events_filter=body.webhook_events_filter,
        ),
        max_input_bytes=max_input_bytes,
    )
    return job


async def list_sessions(
    session: AsyncSession, org_id: int, project_id: int, params: PageParams
) -> tuple[Sequence[Job], int]:
    """A page of the project's sessions, newest first. Raises ProjectNotFound."""
    await get_project(session, org_id, project_id)
    return await paginate(
        session, project_sessions(org_id, project_id).order_by(Job.id.desc()), params
    )


async def get_session(session: AsyncSession, org_id: int, project_id: int, session_id: int) -> Job:
    """Raises ProjectNotFound, SessionNotFound."""
    await get_project(session, org_id, project_id)
    job = await session.scalar(project_sessions(org_id, project_id).where(Job.id == session_id))
    if job is None:
        raise SessionNotFound(f"Session {session_id} not found")
    return job


def summary(job: Job, *, completed: int = 0, timed_out: bool = False) -> SessionSummary:
    spec = SessionInput.model_validate(job.input)
    result = job.result or {}
    return SessionSummary(
        id=job.id,
        project_id=job.project_id,
        status=job.status,
        prompt=spec.prompt,
        agents=spec.agents,
        candidates=spec.candidates,
        max_iterations=spec.max_iterations,
        timeout_minutes=spec.timeout_minutes,
        iterations_completed=int(result.get("iterations_completed", completed)),
        timed_out=bool(result.get("timed_out", timed_out)),
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        events_url=f"/v1/organizations/{job.org_id}/jobs/{job.id}/events",
    )


async def session_detail(session: AsyncSession, job: Job) -> SessionDetail:
    """The session as it stands (live while it runs)."""
    children = list(
        await session.scalars(org_jobs(job.org_id).where(Job.parent_id == job.id).order_by(Job.id))
    )
    events = list(await session.scalars(events_without_deltas(job.id)))
    return fold_session(job, children, events)


def _candidate(child: Job) -> CandidateView:
    data, result = child.input, child.result or {}
    return CandidateView(
        key=str(child.id),
        job_id=child.id,
        index=int(data.get("index", 0)),
        agent=str(data.get("agent", "")),
        mode=str(data.get("mode", "generate")),
        status=child.status,
        model=result.get("model"),
        text=result.get("text"),
        critique=result.get("critique"),
        branch=result.get("branch"),
        commit=result.get("commit"),
        error=child.error,
    )


def fold_session(job: Job, children: Sequence[Job], events: Sequence[JobEvent]) -> SessionDetail:
    """Candidates from the instance jobs; everything else from the session's output events."""
    iterations: dict[int, IterationView] = {}

    def at(number: int, mode: str = "generate") -> IterationView:
        return iterations.setdefault(
            number, IterationView(iteration=number, mode=mode, candidates=[], judgements=[])
        )

    for child in children:
        view = _candidate(child)
        at(int(child.input.get("iteration", 1)), view.mode).candidates.append(view)
    usage: dict[str, Any] | None = None
    completed, timed_out = 0, False
    for event in events:
        if event.type != EventType.OUTPUT:
            continue
        data = dict(event.data)
        name = data.pop("name", None)
        number = int(data.pop("iteration", 0) or 0)
        if name == "iteration_started":
            at(number).mode = str(data.get("mode", "generate"))
        elif name == "match":
            at(number).judgements.append(data)
        elif name in ("bracket", "synthesis", "best"):
            setattr(at(number), name, data)
        elif name == "iteration_completed":
            usage, completed = data.get("usage"), max(completed, number)
        elif name == "timeout":
            timed_out = True
    result = job.result or {}
    return SessionDetail(
        **summary(job, completed=completed, timed_out=timed_out).model_dump(),
        iterations=[iterations[number] for number in sorted(iterations)],
        best=result.get("best"),
        branch=result.get("branch"),
        commit=result.get("commit"),
        usage=result.get("usage", usage),
        error=job.error,
    )
