"""Projects of an organization: create, read, list, change, delete."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from genway.config import Settings
from genway.errors import InvalidInput, NotFound
from genway.kit.pagination import PageParams, paginate
from genway.projects.models import Project
from genway.projects.schemas import ProjectCreate

# Fields a client may clear with null; the others keep their value unless a new one is sent.
NULLABLE_FIELDS = frozenset({"repository_url"})


class ProjectNotFound(NotFound):
    detail = "Project not found"


def org_projects(org_id: int) -> Select[Project]:
    """Every query for an organization's projects starts here, so the org filter is never missed."""
    return select(Project).where(Project.org_id == org_id)


async def create_project(
    session: AsyncSession, org_id: int, user_id: int | None, data: ProjectCreate
) -> Project:
    """A new project in the organization."""
    project = Project(
        org_id=org_id,
        name=data.name,
        description=data.description,
        repository_url=data.repository_url,
        settings=data.settings,
        created_by=user_id,
    )
    session.add(project)
    await session.flush()
    return project


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
    session: AsyncSession, org_id: int, project_id: int, changes: dict[str, Any]
) -> Project:
    """Apply the fields present in `changes`. Raises ProjectNotFound, InvalidInput."""
    project = await get_project(session, org_id, project_id)
    for field, value in changes.items():
        if value is None and field not in NULLABLE_FIELDS:
            raise InvalidInput(f"'{field}' cannot be null")
        setattr(project, field, value)
    await session.flush()
    await session.refresh(project)
    return project


async def delete_project(
    session: AsyncSession, org_id: int, project_id: int, settings: Settings | None = None
) -> None:
    """Delete a project with its files, revisions and repository. Raises ProjectNotFound."""
    from genway.projects import repos

    project = await get_project(session, org_id, project_id)
    await session.delete(project)
    await session.flush()
    if settings is not None:
        path = repos.repo_path(repos.remember_root(session, settings), org_id, project_id)
        await asyncio.to_thread(repos.delete_repo, path)
