"""Seed 002's `/v1/projects` and seed 004's `/api/v1/projects`, in the caller's organization:
thin adapters over the same project and file services, translating the seeds' field names
(`title`, `github_url`, `mode`, `tech_stack`) to Genway's."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, Response, status
from pydantic import ValidationError

from genway.auth.deps import CallerOrgReader, OrgContext, SettingsDep, require
from genway.auth.permissions import Action
from genway.db import SessionDep
from genway.errors import InvalidInput
from genway.github.pins import apply_pin_change
from genway.kit.pagination import Page, PageDep
from genway.kit.schemas import Id
from genway.projects import files, service
from genway.projects.models import Project
from genway.projects.pipeline import PipelineFields
from genway.projects.routes import (
    WRITE_ANSWERS,
    Prefix,
    file_response,
    size_limits,
    update_and_pin,
)
from genway.projects.schemas import (
    FilePut,
    FileWriteResponse,
    LegacyFileList,
    LegacyProjectCreate,
    LegacyProjectResponse,
    LegacyProjectUpdate,
    ProjectCreate,
    ProjectResponse,
)

CallerProjectWriter = Annotated[OrgContext, require(Action.WRITE_PROJECTS, scope="caller")]
SEED_SETTINGS = ("mode", "tech_stack")
PIPELINE_NAMES = frozenset(PipelineFields.model_fields)


def legacy_response(project: Project) -> LegacyProjectResponse:
    canonical = ProjectResponse.model_validate(project).model_dump()
    return LegacyProjectResponse(
        **canonical,
        title=project.name,
        user_id=project.created_by,
        github_url=project.repository_url,
        mode=project.settings.get("mode"),
        tech_stack=project.settings.get("tech_stack"),
    )


def _seed_settings(body: LegacyProjectCreate | LegacyProjectUpdate) -> dict[str, Any]:
    return {key: getattr(body, key) for key in SEED_SETTINGS if getattr(body, key) is not None}


def _pipeline_sent(body: PipelineFields) -> dict[str, Any]:
    return {k: v for k, v in body.model_dump(exclude_unset=True).items() if k in PIPELINE_NAMES}


def canonical_create(body: LegacyProjectCreate) -> ProjectCreate:
    return ProjectCreate(
        name=body.name or body.title or "",
        description=body.description,
        repository_url=body.repository_url or body.github_url,
        settings={**body.settings, **_seed_settings(body)},
        **_pipeline_sent(body),
    )


def canonical_changes(body: LegacyProjectUpdate, current: Project) -> dict[str, Any]:
    sent = body.model_dump(exclude_unset=True)
    changes: dict[str, Any] = {}
    if "name" in sent or "title" in sent:
        changes["name"] = sent.get("name") or sent.get("title")
    if "description" in sent:
        changes["description"] = sent["description"]
    if "repository_url" in sent or "github_url" in sent:
        changes["repository_url"] = sent.get("repository_url") or sent.get("github_url")
    seed = _seed_settings(body)
    if "settings" in sent or seed:
        base = sent.get("settings") if sent.get("settings") is not None else current.settings
        changes["settings"] = {**(base or {}), **seed}
    changes.update(_pipeline_sent(body))
    return changes


async def create_project(
    body: LegacyProjectCreate,
    request: Request,
    context: CallerProjectWriter,
    session: SessionDep,
    settings: SettingsDep,
) -> LegacyProjectResponse:
    project = await service.create_project(
        session, context.org_id, context.user_id, canonical_create(body), settings.secret_box
    )
    await apply_pin_change(
        session,
        settings,
        project,
        _pipeline_sent(body),
        request_base=str(request.base_url),
        user_id=context.user_id,
    )
    return legacy_response(project)


async def list_projects(
    context: CallerOrgReader, session: SessionDep, page: PageDep
) -> Page[LegacyProjectResponse]:
    projects, total = await service.list_projects(session, context.org_id, page)
    return Page.build([legacy_response(p) for p in projects], total, page)


async def get_project(
    project_id: Id, context: CallerOrgReader, session: SessionDep
) -> LegacyProjectResponse:
    return legacy_response(await service.get_project(session, context.org_id, project_id))


async def update_project(
    project_id: Id,
    body: LegacyProjectUpdate,
    request: Request,
    context: CallerProjectWriter,
    session: SessionDep,
    settings: SettingsDep,
) -> LegacyProjectResponse:
    current = await service.get_project(session, context.org_id, project_id)
    changes = canonical_changes(body, current)
    project = await update_and_pin(session, settings, request, context, project_id, changes)
    return legacy_response(project)


async def delete_project(
    project_id: Id, context: CallerProjectWriter, session: SessionDep, settings: SettingsDep
) -> None:
    await service.delete_project(session, context.org_id, project_id, settings)


async def list_files(
    project_id: Id,
    context: CallerOrgReader,
    session: SessionDep,
    settings: SettingsDep,
    prefix: Prefix = None,
) -> LegacyFileList:
    """Seed 002's listing: every file with its content, `{project_id, count, files}`."""
    found = await files.all_files(session, context.org_id, project_id, prefix, settings=settings)
    listed = [file_response(project_id, f) for f in found]
    return LegacyFileList(project_id=project_id, count=len(listed), files=listed)


async def put_file(
    project_id: Id,
    response: Response,
    context: CallerProjectWriter,
    session: SessionDep,
    settings: SettingsDep,
    body: Annotated[FilePut | None, Body()] = None,
    path: Annotated[str | None, Query(max_length=4096)] = None,
    content: Annotated[str | None, Query()] = None,
    language: Annotated[str | None, Query(max_length=50)] = None,
) -> FileWriteResponse:
    """Seed 002's create-or-update: `?path=&content=&language=`, or the same as a JSON body."""
    if body is None:
        if path is None or content is None:
            raise InvalidInput("Send 'path' and 'content' (query parameters or JSON body)")
        try:
            body = FilePut.model_validate({"path": path, "content": content, "language": language})
        except ValidationError as exc:
            raise InvalidInput(
                [
                    {"type": e["type"], "loc": ["query", *e["loc"]], "msg": e["msg"]}
                    for e in exc.errors()
                ]
            ) from exc
    written = await files.write_files(
        session,
        context.org_id,
        project_id,
        [files.Change(body.path, body.content, body.language)],
        size_limits(settings),
        author_id=context.user_id,
        message=f"put {body.path}"[:500],
        settings=settings,
    )
    created = written.created[0]
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    stored = file_response(project_id, written.files[0])
    return FileWriteResponse(**stored.model_dump(), created=created)


def build_router(prefix: str, tag: str) -> APIRouter:
    """The same project routes under one legacy prefix."""
    router = APIRouter(prefix=prefix, tags=[tag])
    project, files_path = "/{project_id}", "/{project_id}/files"
    created = status.HTTP_201_CREATED
    router.add_api_route(
        "",
        create_project,
        methods=["POST"],
        response_model=LegacyProjectResponse,
        status_code=created,
    )
    router.add_api_route(
        "/",
        create_project,
        methods=["POST"],
        response_model=LegacyProjectResponse,
        status_code=created,
        include_in_schema=False,
    )
    router.add_api_route(
        "", list_projects, methods=["GET"], response_model=Page[LegacyProjectResponse]
    )
    router.add_api_route(
        project, get_project, methods=["GET"], response_model=LegacyProjectResponse
    )
    for method in ("PUT", "PATCH"):
        router.add_api_route(
            project, update_project, methods=[method], response_model=LegacyProjectResponse
        )
    router.add_api_route(
        project, delete_project, methods=["DELETE"], status_code=status.HTTP_204_NO_CONTENT
    )
    router.add_api_route(files_path, list_files, methods=["GET"], response_model=LegacyFileList)
    router.add_api_route(
        files_path,
        put_file,
        methods=["POST"],
        response_model=FileWriteResponse,
        responses=WRITE_ANSWERS,
    )
    return router


seed002_router = build_router("/v1/projects", "projects (legacy)")
seed004_router = build_router("/api/v1/projects", "projects (legacy)")
