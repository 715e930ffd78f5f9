"""Projects of an organization: create, read, list, change, delete."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from genway.config import Settings
from genway.errors import InvalidInput, NotFound
from genway.kit.pagination import PageParams, paginate
from genway.projects.models import Project
from genway.projects.pipeline import PipelineFields, apply_secrets, settings_changes
from genway.projects.schemas import ProjectCreate

if TYPE_CHECKING:
    from genway.kit.crypto import SecretBox

# Fields a client may clear with null; the others keep their value unless a new one is sent.
NULLABLE_FIELDS = frozenset({"repository_url"})
log = structlog.get_logger("genway.projects")
# Fields that are not columns: pipeline settings, secrets and the pin.
PIPELINE_FIELDS = frozenset(PipelineFields.model_fields)


class ProjectNotFound(NotFound):
    detail = "Project not found"


def org_projects(org_id: int) -> Select[Project]:
    """Every query for an organization's projects starts here, so the org filter is never missed."""
    return select(Project).where(Project.org_id == org_id)


async def create_project(
    session: AsyncSession,
    org_id: int,
    user_id: int | None,
    data: ProjectCreate,
    box: SecretBox | None = None,
) -> Project:
    """A new project in the organization (its `github_repo` is pinned by the caller, which
    talks to GitHub). Raises InvalidInput."""
    sent = data.model_dump(exclude_unset=True)
    project = Project(
        org_id=org_id,
        name=data.name,
        description=data.description,
        repository_url=data.repository_url,
        settings={**data.settings, **settings_changes(sent)},
        created_by=user_id,
        secret_names=[],
    )
    _set_secrets(project, data.secrets, box)
    session.add(project)
    await session.flush()
    return project


def _set_secrets(
    project: Project, secrets: dict[str, str | None] | None, box: SecretBox | None
) -> None:
    if not secrets:
        return
    if box is None:
        raise InvalidInput("Secrets cannot be set here")
    try:
        apply_secrets(box, project, secrets)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from exc


async def get_project(session: AsyncSession, org_id: int, project_id: int) -> Project:
    """Raises ProjectNotFound when the project does not exist in this organization."""
    project = await session.scalar(org_projects(org_id).where(Project.id == project_id))
    if project is None:
        raise ProjectNotFound(f"Project {project_id} not found")
    return project


async def list_projects(
    session: AsyncSession, org_id: int, params: PageParams
) -> tuple[Sequence[Project], int]:
    """A page of the organization's projects, newest first, and their total."""
    rows, total = await paginate(session, org_projects(org_id).order_by(Project.id.desc()), params)
    return list(rows), total


async def update_project(
    session: AsyncSession,
    org_id: int,
    project_id: int,
    changes: dict[str, Any],
    box: SecretBox | None = None,
) -> Project:
    """Apply the fields present in `changes` (`github_repo` is left to the caller, which talks
    to GitHub). Raises ProjectNotFound, InvalidInput."""
    project = await get_project(session, org_id, project_id)
    columns = {k: v for k, v in changes.items() if k not in PIPELINE_FIELDS}
    for field, value in columns.items():
        if value is None and field not in NULLABLE_FIELDS:
            raise InvalidInput(f"'{field}' cannot be null")
        setattr(project, field, value)
    pipeline = settings_changes(changes)
    if pipeline:
        project.settings = {**(project.settings or {}), **pipeline}
    _set_secrets(project, changes.get("secrets"), box)
    await session.flush()
    await session.refresh(project)
    return project


async def delete_project(
    session: AsyncSession, org_id: int, project_id: int, settings: Settings | None = None
) -> None:
    """Delete a project with its files, revisions and repository (and its GitHub webhook).
    Raises ProjectNotFound."""
    from genway.projects import repos

    project = await get_project(session, org_id, project_id)
    if settings is not None and project.github_repo is not None:
        await _release_pin(session, settings, project)
    await session.delete(project)
    await session.flush()
    if settings is not None:
        path = repos.repo_path(repos.remember_root(session, settings), org_id, project_id)
        await asyncio.to_thread(repos.delete_repo, path)


async def _release_pin(session: AsyncSession, settings: Settings, project: Project) -> None:
    """Remove the project's GitHub webhook; a project is deleted even when GitHub cannot be
    told (the orphaned hook's deliveries are then refused as unknown)."""
    from genway.github.client import GithubError
    from genway.github.connections import GithubNotConnected
    from genway.github.pins import unpin_project

    try:
        await unpin_project(session, settings, project)
    except (GithubError, GithubNotConnected) as exc:
        log.warning("github_hook_not_removed", project_id=project.id, error=str(exc))
