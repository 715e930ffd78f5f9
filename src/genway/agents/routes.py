"""Codegen's agent run endpoints (`/v1/organizations/{org_id}/agent/...`), so Codegen's own
clients drive Genway's agents. Creation answers 200, as Codegen does: its generated client
treats any other success status as an empty answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from genway.agents import service
from genway.agents.codegen import codegen_status, iso, log_entry, run_response, run_url
from genway.agents.plans import confirm_plan, plans_of
from genway.agents.schemas import (
    AgentRunResponse,
    AgentRunWithLogs,
    ConfirmPlan,
    CreateAgentRun,
    ResumeAgentRun,
    SourceType,
    agent_input,
)
from genway.agents.system_prompts import Task
from genway.auth.deps import OrgContext, OrgReader, SettingsDep, require
from genway.auth.permissions import Action
from genway.config import Settings
from genway.db import SessionDep
from genway.jobs.deps import submitter
from genway.kit.pagination import Page, PageDep
from genway.kit.schemas import Id

router = APIRouter(prefix="/v1/organizations/{org_id}/agent", tags=["agents"])
alpha_router = APIRouter(prefix="/v1/alpha/organizations/{org_id}/agent", tags=["agents-alpha"])

RunCreator = Annotated[OrgContext, require(Action.CREATE_JOBS)]


def base_url(request: Request, settings: Settings) -> str:
    return settings.public_url or str(request.base_url)


@router.post("/run", response_model=AgentRunResponse)
async def create_agent_run(
    body: CreateAgentRun,
    request: Request,
    context: RunCreator,
    session: SessionDep,
    settings: SettingsDep,
) -> AgentRunResponse:
    """Start an agent run (Codegen's `CreateAgentRunInput`; `agent_type` chooses Codegen's agent
    implementation, Genway's `task` what the agent does)."""
    spec = agent_input(
        task=body.task or Task.CODE,
        prompt=body.prompt,
        project_id=body.project_id,
        model=body.model,
        images=body.images or [],
        metadata=body.metadata,
        agent_type=body.agent_type,
        repo_id=body.repo_id,
        plan_first=body.plan_first,
        max_steps=body.max_steps,
    )
    job = await service.start_run(
        session,
        submitter(context),
        spec,
        timeout_s=settings.agent_timeout_s,
        max_input_bytes=settings.job_input_max_bytes,
        webhook=body,
    )
    return run_response(job, base_url(request, settings))


@router.post("/run/resume", response_model=AgentRunResponse)
async def resume_agent_run(
    body: ResumeAgentRun,
    request: Request,
    context: RunCreator,
    session: SessionDep,
    settings: SettingsDep,
) -> AgentRunResponse:
    """Continue an ended run with a new prompt: a new run carrying the conversation so far
    (`metadata` and routing are kept). 409 while the run is still active."""
    previous = await service.get_run(session, context.org_id, body.agent_run_id)
    spec = service.resumed_spec(previous, body.prompt, body.images)
    job = await service.start_run(
        session,
        submitter(context),
        spec,
        timeout_s=settings.agent_timeout_s,
        max_input_bytes=settings.job_input_max_bytes,
        webhook=body,
    )
    return run_response(job, base_url(request, settings))


@router.get("/run/{agent_run_id}", response_model=AgentRunResponse)
async def get_agent_run(
    agent_run_id: Id,
    request: Request,
    context: OrgReader,
    session: SessionDep,
    settings: SettingsDep,
) -> AgentRunResponse:
    job = await service.get_run(session, context.org_id, agent_run_id)
    plan = (await plans_of(session, [job.id])).get(job.id)
    return run_response(job, base_url(request, settings), plan)


@router.post("/run/{agent_run_id}/confirm", response_model=AgentRunResponse)
async def confirm_agent_run_plan(
    agent_run_id: Id,
    request: Request,
    context: RunCreator,
    session: SessionDep,
    settings: SettingsDep,
    body: ConfirmPlan | None = None,
) -> AgentRunResponse:
    """Genway: carry out the plan of a run that is `PLAN_READY`, or the edited `plan` sent.
    409 when the run has no plan waiting."""
    job = await service.get_run(session, context.org_id, agent_run_id)
    plan = await confirm_plan(session, job, context.user_id, body.plan if body else None)
    return run_response(job, base_url(request, settings), plan)


@router.get("/runs", response_model=Page[AgentRunResponse])
async def list_agent_runs(
    request: Request,
    context: OrgReader,
    session: SessionDep,
    settings: SettingsDep,
    page: PageDep,
    user_id: Annotated[int | None, Query(description="Only runs this user started")] = None,
    source_type: Annotated[SourceType | None, Query(description="Only runs from")] = None,
) -> Page[AgentRunResponse]:
    """Runs, newest first."""
    jobs, total = await service.list_runs(
        session, context.org_id, page, user_id=user_id, source_type=source_type
    )
    base = base_url(request, settings)
    plans = await plans_of(session, [job.id for job in jobs])
    return Page.build([run_response(job, base, plans.get(job.id)) for job in jobs], total, page)


async def agent_run_logs(
    agent_run_id: Id,
    request: Request,
    context: OrgReader,
    session: SessionDep,
    settings: SettingsDep,
    page: PageDep,
) -> AgentRunWithLogs:
    """The run with a page of its log, in order: status changes, model attempts, edits, the
    final answer (the streamed text itself is in the job's event stream)."""
    job, events, total = await service.run_logs(session, context.org_id, agent_run_id, page)
    built = Page.build([log_entry(e) for e in events], total, page)
    plan = (await plans_of(session, [job.id])).get(job.id)
    response = run_response(job, base_url(request, settings), plan)
    return AgentRunWithLogs(
        id=job.id,
        organization_id=job.org_id,
        status=codegen_status(job, plan),
        created_at=iso(job.created_at),
        web_url=run_url(base_url(request, settings), job),
        result=response.result,
        metadata=response.metadata,
        logs=built.items,
        total_logs=built.total,
        page=built.page,
        size=built.size,
        pages=built.pages,
    )


router.get("/run/{agent_run_id}/logs", response_model=AgentRunWithLogs)(agent_run_logs)
alpha_router.get("/run/{agent_run_id}/logs", response_model=AgentRunWithLogs)(agent_run_logs)
