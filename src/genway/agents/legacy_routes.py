"""Seed 002's agent API (`/v1/run-agent`, `/v1/jobs/...`) in the caller's organization: thin
adapters over agent runs and jobs. Seed 002 calls the task `agent_type` and its statuses
`queued`, `running`, `completed`, `failed`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, status

from genway.agents import service
from genway.agents.schemas import (
    LegacyAgentJob,
    LegacyAgentJobList,
    RunAgentRequest,
    RunAgentResponse,
    agent_input,
)
from genway.auth.deps import CallerOrgReader, OrgContext, SettingsDep, require
from genway.auth.permissions import Action
from genway.db import SessionDep
from genway.jobs import service as jobs_service
from genway.jobs.deps import submitter
from genway.jobs.models import Job
from genway.jobs.states import JobStatus
from genway.kit.schemas import Id

router = APIRouter(prefix="/v1", tags=["agents (legacy)"])

CallerRunCreator = Annotated[OrgContext, require(Action.CREATE_JOBS, scope="caller")]
SEED_STATUS = {JobStatus.SUCCEEDED: "completed"}


def legacy_status(job: Job) -> str:
    return SEED_STATUS.get(JobStatus(job.status), job.status)


def legacy_job(job: Job) -> LegacyAgentJob:
    task = job.input.get("task") if isinstance(job.input, dict) else None
    return LegacyAgentJob(
        job_id=job.id,
        project_id=job.project_id,
        agent_type=task if isinstance(task, str) else None,
        kind=job.kind,
        status=legacy_status(job),
        progress=job.progress,
        result=job.result,
        error=job.error,
        created_at=job.created_at,
        started_at=job.started_at,
        completed_at=job.finished_at,
    )


@router.post("/run-agent", response_model=RunAgentResponse, status_code=status.HTTP_202_ACCEPTED)
async def run_agent(
    body: RunAgentRequest,
    request: Request,
    context: CallerRunCreator,
    session: SessionDep,
    settings: SettingsDep,
) -> RunAgentResponse:
    """Start an agent on a project; the prompt is `prompt`, else `input_context.prompt`, else
    the task applied to the context."""
    context_data = dict(body.input_context)
    given = context_data.pop("prompt", None)
    prompt = body.prompt or (given if isinstance(given, str) and given.strip() else None)
    spec = agent_input(
        task=body.agent_type,
        prompt=prompt or f"Carry out the {body.agent_type} task for this project.",
        project_id=body.project_id,
        context=context_data or None,
        model=body.model,
    )
    job = await service.start_run(
        session,
        submitter(context),
        spec,
        timeout_s=settings.agent_timeout_s,
        max_input_bytes=settings.job_input_max_bytes,
        webhook=body,
    )
    estimate = await service.estimated_seconds(session, context.org_id, body.agent_type)
    return RunAgentResponse(job_id=job.id, status=legacy_status(job), estimated_time=estimate)


@router.get("/jobs/{job_id}", response_model=LegacyAgentJob)
async def get_job(job_id: Id, context: CallerOrgReader, session: SessionDep) -> LegacyAgentJob:
    return legacy_job(await jobs_service.get_job(session, context.org_id, job_id))


@router.get("/jobs/{project_id}/list", response_model=LegacyAgentJobList)
async def list_project_jobs(
    project_id: Id,
    context: CallerOrgReader,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> LegacyAgentJobList:
    """The project's jobs, newest first."""
    jobs = await service.project_jobs(session, context.org_id, project_id, limit)
    listed = [legacy_job(job) for job in jobs]
    return LegacyAgentJobList(project_id=project_id, count=len(listed), jobs=listed)
