"""Queue controls over HTTP: an organization's queue (`/v1/organizations/{org_id}/queue`, job
priority and move-to-front) and platform maintenance holds (`/api/v1/admin/queue`,
`/api/v1/admin/comfyui/backends`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from genway.admin.deps import PlatformAdmin
from genway.auth.deps import OrgContext, OrgReader, require
from genway.auth.permissions import Action, can
from genway.db import SessionDep
from genway.engines.comfyui.pool import BackendPool
from genway.kit.schemas import Id
from genway.queue import controls
from genway.queue.schemas import (
    BackendView,
    MaintenanceView,
    OrgQueue,
    PauseRequest,
    PriorityChange,
    QueuedJob,
    QueuePauseView,
)

router = APIRouter()

ORG = "/v1/organizations/{org_id}"
ADMIN = "/api/v1/admin"
QueueManager = Annotated[OrgContext, require(Action.MANAGE_QUEUE)]
# Reordering also lets a member move their own jobs; the service checks whose job it is.
JobSubmitter = Annotated[OrgContext, require(Action.CREATE_JOBS)]


def _reorderer(context: OrgContext) -> controls.Reorderer:
    return controls.Reorderer(
        user_id=context.user_id,
        manages_queue=can(context.role, Action.MANAGE_QUEUE),
        submits_jobs=can(context.role, Action.CREATE_JOBS),
    )


def _pool(request: Request) -> BackendPool | None:
    engine = getattr(request.app.state, "comfyui", None)
    return engine.pool if engine is not None else None


@router.get(f"{ORG}/queue", response_model=OrgQueue, tags=["queue"])
async def get_org_queue(
    context: OrgReader,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> OrgQueue:
    """Whether the queue is paused, the jobs by status, and the first `limit` queued jobs in the
    order they will start, each with why it waits."""
    return await controls.org_queue(session, context.org_id, limit)


@router.post(f"{ORG}/queue/pause", response_model=OrgQueue, tags=["queue"])
async def pause_org_queue(context: QueueManager, session: SessionDep) -> OrgQueue:
    """Hold the queue: queued and new jobs wait, running ones finish."""
    await controls.pause_org_queue(session, context.org_id, context.user_id)
    return await controls.org_queue(session, context.org_id, 100)


@router.post(f"{ORG}/queue/resume", response_model=OrgQueue, tags=["queue"])
async def resume_org_queue(context: QueueManager, session: SessionDep) -> OrgQueue:
    await controls.resume_org_queue(session, context.org_id, context.user_id)
    return await controls.org_queue(session, context.org_id, 100)


@router.patch(f"{ORG}/jobs/{{job_id}}/priority", response_model=QueuedJob, tags=["queue"])
async def set_job_priority(
    job_id: Id, body: PriorityChange, context: JobSubmitter, session: SessionDep
) -> QueuedJob:
    """A queued job's new priority (409 once it started); `position` is its place among the
    organization's queued jobs."""
    return await controls.set_priority(
        session, context.org_id, job_id, _reorderer(context), body.priority
    )


@router.post(f"{ORG}/jobs/{{job_id}}/move-to-front", response_model=QueuedJob, tags=["queue"])
async def move_job_to_front(job_id: Id, context: JobSubmitter, session: SessionDep) -> QueuedJob:
    """Put a queued job ahead of the organization's other queued jobs."""
    return await controls.move_to_front(session, context.org_id, job_id, _reorderer(context))


@router.get(f"{ADMIN}/queue", response_model=MaintenanceView, tags=["admin"])
async def get_maintenance(_admin: PlatformAdmin, session: SessionDep) -> MaintenanceView:
    return await controls.maintenance(session)


@router.post(f"{ADMIN}/queue/kinds/{{kind}}/pause", response_model=QueuePauseView, tags=["admin"])
async def pause_kind(
    kind: str, admin: PlatformAdmin, session: SessionDep, body: PauseRequest | None = None
) -> QueuePauseView:
    """No worker claims jobs of this kind (queued ones wait; running ones finish)."""
    reason = body.reason if body is not None else None
    hold = await controls.pause_kind(session, kind, admin.user_id, reason)
    return QueuePauseView.model_validate(hold)


@router.post(f"{ADMIN}/queue/kinds/{{kind}}/resume", response_model=MaintenanceView, tags=["admin"])
async def resume_kind(kind: str, _admin: PlatformAdmin, session: SessionDep) -> MaintenanceView:
    await controls.resume_kind(session, kind)
    return await controls.maintenance(session)


@router.get(f"{ADMIN}/comfyui/backends", response_model=list[BackendView], tags=["admin"])
async def list_backends(
    request: Request, _admin: PlatformAdmin, session: SessionDep
) -> list[BackendView]:
    return await controls.backends(session, _pool(request))


@router.post(
    f"{ADMIN}/comfyui/backends/{{backend_id}}/pause", response_model=QueuePauseView, tags=["admin"]
)
async def pause_backend(
    backend_id: str,
    request: Request,
    admin: PlatformAdmin,
    session: SessionDep,
    body: PauseRequest | None = None,
) -> QueuePauseView:
    """No new prompt goes to this backend (others take them, or they wait); prompts already
    there finish."""
    reason = body.reason if body is not None else None
    hold = await controls.pause_backend(session, _pool(request), backend_id, admin.user_id, reason)
    return QueuePauseView.model_validate(hold)


@router.post(
    f"{ADMIN}/comfyui/backends/{{backend_id}}/resume",
    response_model=list[BackendView],
    tags=["admin"],
)
async def resume_backend(
    backend_id: str, request: Request, _admin: PlatformAdmin, session: SessionDep
) -> list[BackendView]:
    await controls.resume_backend(session, _pool(request), backend_id)
    return await controls.backends(session, _pool(request))
