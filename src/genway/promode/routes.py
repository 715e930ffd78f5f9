"""Pro Mode: `/v1/organizations/{org_id}/projects/{project_id}/pro-mode` starts a session and
`.../sessions` shows them. A session is a job: watch it live at `/jobs/{id}/events`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request, status

from genway.auth.deps import OrgContext, OrgReader, SettingsDep, require
from genway.auth.permissions import Action
from genway.db import SessionDep
from genway.jobs import service as jobs_service
from genway.jobs.deps import submitter
from genway.kit.pagination import Page, PageDep
from genway.kit.schemas import Id
from genway.promode import service
from genway.promode.schemas import ProModeRequest, SessionDetail, SessionSummary

router = APIRouter(prefix="/v1/organizations/{org_id}/projects/{project_id}", tags=["pro mode"])

SessionStarter = Annotated[OrgContext, require(Action.CREATE_JOBS)]
SessionCanceller = Annotated[OrgContext, require(Action.CANCEL_JOBS)]


@router.post("/pro-mode", response_model=SessionSummary, status_code=status.HTTP_201_CREATED)
async def start_session(
    project_id: Id,
    body: ProModeRequest,
    request: Request,
    context: SessionStarter,
    session: SessionDep,
    settings: SettingsDep,
) -> SessionSummary:
    """Start a Pro Mode session: candidates in parallel, a judged bracket, a synthesis, then
    iterations that critique and improve it, within `timeout_minutes`."""
    job = await service.start_session(
        session,
        submitter(context),
        project_id,
        body,
        max_input_bytes=settings.job_input_max_bytes,
    )
    return service.summary(job)


@router.get("/sessions", response_model=Page[SessionSummary])
async def list_sessions(
    project_id: Id, context: OrgReader, session: SessionDep, page: PageDep
) -> Page[SessionSummary]:
    jobs, total = await service.list_sessions(session, context.org_id, project_id, page)
    return Page.build([service.summary(job) for job in jobs], total, page)


@router.get("/sessions/{session_id}", response_model=SessionDetail)
async def get_session(
    project_id: Id, session_id: Id, context: OrgReader, session: SessionDep
) -> SessionDetail:
    """Candidates, judgements, bracket, synthesis and token usage of each iteration so far."""
    job = await service.get_session(session, context.org_id, project_id, session_id)
    return await service.session_detail(session, job)


@router.post("/sessions/{session_id}/cancel", response_model=SessionSummary)
async def cancel_session(
    project_id: Id,
    session_id: Id,
    request: Request,
    context: SessionCanceller,
    session: SessionDep,
) -> SessionSummary:
    """Cancel the session and its running agent instances."""
    job = await service.get_session(session, context.org_id, project_id, session_id)
    job, _message = await jobs_service.cancel_job(session, context.org_id, job.id)
    return service.summary(job)
