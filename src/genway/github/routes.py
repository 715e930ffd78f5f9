"""`/v1/organizations/{org_id}/github/...`: the connection, the repositories it sees and the
deliveries received; `/v1/organizations/{org_id}/projects/{id}/github`: a project's pin, and
`.../pulls`: its pull requests."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, status
from sqlalchemy import select

from genway.auth.deps import OrgContext, OrgReader, SettingsDep, require
from genway.auth.permissions import Action
from genway.db import SessionDep
from genway.errors import Conflict, NotFound
from genway.github import connections, pins
from genway.github.models import GithubDelivery, PullRequest
from genway.github.schemas import (
    ConnectionCreate,
    ConnectionResponse,
    DeliveryResponse,
    PinRequest,
    PinResponse,
    PullRequestResponse,
    RepositoryPage,
    RepositorySummary,
)
from genway.kit.pagination import Page, PageDep, paginate
from genway.kit.schemas import Id
from genway.projects.models import Project
from genway.projects.service import get_project

router = APIRouter(prefix="/v1/organizations/{org_id}", tags=["github"])
IntegrationManager = Annotated[OrgContext, require(Action.MANAGE_INTEGRATIONS)]
ProjectWriter = Annotated[OrgContext, require(Action.WRITE_PROJECTS)]


@router.put("/github/connection", response_model=ConnectionResponse)
async def put_connection(
    body: ConnectionCreate,
    context: IntegrationManager,
    session: SessionDep,
    settings: SettingsDep,
) -> ConnectionResponse:
    """Connect GitHub (or replace the connection) once GitHub accepts the credentials."""
    connection = await connections.connect(session, settings, context.org_id, context.user_id, body)
    return ConnectionResponse.model_validate(connection)


@router.get("/github/connection", response_model=ConnectionResponse)
async def get_connection(context: OrgReader, session: SessionDep) -> ConnectionResponse:
    connection = await connections.get_connection(session, context.org_id)
    if connection is None:
        raise NotFound("This organization has no GitHub connection")
    return ConnectionResponse.model_validate(connection)


@router.delete("/github/connection", status_code=status.HTTP_204_NO_CONTENT)
async def delete_connection(context: IntegrationManager, session: SessionDep) -> None:
    """Disconnect; refused while projects are pinned (their webhooks need the connection to be
    removed)."""
    connection = await connections.get_connection(session, context.org_id)
    if connection is None:
        raise NotFound("This organization has no GitHub connection")
    pinned = (
        await session.scalars(
            select(Project.id).where(
                Project.org_id == context.org_id, Project.github_repo.is_not(None)
            )
        )
    ).all()
    if pinned:
        names = ", ".join(str(p) for p in pinned)
        raise Conflict(
            f"Unpin the projects first ({names}): their webhooks are removed through it",
            extra={"code": "projects_pinned", "project_ids": list(pinned)},
        )
    await session.delete(connection)


@router.get("/github/repositories", response_model=RepositoryPage)
async def list_repositories(
    context: OrgReader,
    session: SessionDep,
    settings: SettingsDep,
    page: Annotated[int, Query(ge=1, le=1000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=100)] = 30,
) -> RepositoryPage:
    """The repositories the connection can see, as GitHub pages them."""
    client = await connections.client_for(session, settings, context.org_id)
    repos, more = await client.repositories(page, per_page)
    return RepositoryPage(
        items=[RepositorySummary.model_validate(repo) for repo in repos],
        page=page,
        per_page=per_page,
        has_more=more,
    )


@router.get("/github/deliveries", response_model=Page[DeliveryResponse])
async def list_deliveries(
    context: OrgReader, session: SessionDep, params: PageDep
) -> Page[DeliveryResponse]:
    """The GitHub deliveries received for this organization's projects, newest first."""
    query = (
        select(GithubDelivery)
        .where(GithubDelivery.org_id == context.org_id)
        .order_by(GithubDelivery.id.desc())
    )
    rows, total = await paginate(session, query, params)
    return Page.build([DeliveryResponse.model_validate(r) for r in rows], total, params)


def pin_response(project: Project, settings_url: str | None) -> PinResponse:
    if project.github_repo is None:
        raise NotFound(f"Project {project.id} is not pinned to a GitHub repository")
    return PinResponse(
        project_id=project.id,
        repository=project.github_repo,
        repository_id=project.github_repo_id,
        default_branch=project.github_default_branch,
        hook_id=project.github_hook_id,
        webhook_url=settings_url,
    )


@router.put("/projects/{project_id}/github", response_model=PinResponse)
async def pin(
    project_id: Id,
    body: PinRequest,
    request: Request,
    context: ProjectWriter,
    session: SessionDep,
    settings: SettingsDep,
) -> PinResponse:
    """Pin the project to a repository: its webhook is registered on GitHub."""
    project = await get_project(session, context.org_id, project_id)
    base = str(request.base_url)
    await pins.pin_project(
        session, settings, project, body.repository, request_base=base, user_id=context.user_id
    )
    if body.merge_method is not None:
        project.settings = {**(project.settings or {}), "merge_method": body.merge_method.value}
        await session.flush()
    return pin_response(project, pins.webhook_url(settings, base))


@router.get("/projects/{project_id}/github", response_model=PinResponse)
async def get_pin(
    project_id: Id, request: Request, context: OrgReader, session: SessionDep, settings: SettingsDep
) -> PinResponse:
    project = await get_project(session, context.org_id, project_id)
    return pin_response(project, pins.webhook_url(settings, str(request.base_url)))


@router.delete("/projects/{project_id}/github", status_code=status.HTTP_204_NO_CONTENT)
async def unpin(
    project_id: Id, context: ProjectWriter, session: SessionDep, settings: SettingsDep
) -> None:
    """Unpin: the webhook is removed from GitHub."""
    project = await get_project(session, context.org_id, project_id)
    if project.github_repo is None:
        raise NotFound(f"Project {project_id} is not pinned to a GitHub repository")
    await pins.unpin_project(session, settings, project)


@router.get("/projects/{project_id}/pulls", response_model=Page[PullRequestResponse])
async def list_pulls(
    project_id: Id, context: OrgReader, session: SessionDep, params: PageDep
) -> Page[PullRequestResponse]:
    """The project's pull requests Genway knows of (its agents' and those it validated)."""
    await get_project(session, context.org_id, project_id)
    query = (
        select(PullRequest)
        .where(PullRequest.org_id == context.org_id, PullRequest.project_id == project_id)
        .order_by(PullRequest.id.desc())
    )
    rows, total = await paginate(session, query, params)
    return Page.build([PullRequestResponse.model_validate(r) for r in rows], total, params)
