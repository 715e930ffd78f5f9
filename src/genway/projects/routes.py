"""`/v1/organizations/{org_id}/projects`: projects, their files and their revisions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from starlette.convertors import Convertor, register_url_convertor

from genway.auth.deps import OrgContext, OrgReader, SettingsDep, require
from genway.auth.permissions import Action
from genway.config import Settings
from genway.db import SessionDep
from genway.kit.pagination import Page, PageDep
from genway.kit.schemas import Id
from genway.projects import files, service
from genway.projects.models import FileRevision, ProjectFile
from genway.projects.schemas import (
    FileChange,
    FileChangeWithContent,
    FilePut,
    FileResponse,
    FileSummary,
    FileWriteResponse,
    ProjectCreate,
    ProjectResponse,
    ProjectUpdate,
    RevisionResponse,
    RevisionSummary,
)


class FilePathConvertor(Convertor[str]):
    """Like Starlette's `path`, but matching every character (newlines too), so that a bad file
    path in a URL reaches the path rules and gets their 422 instead of a routing 404."""

    regex = r"[\s\S]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("filepath", FilePathConvertor())

router = APIRouter(prefix="/v1/organizations/{org_id}/projects", tags=["projects"])

ProjectWriter = Annotated[OrgContext, require(Action.WRITE_PROJECTS)]
Prefix = Annotated[str | None, Query(max_length=1024, description="Only paths starting with this")]


def size_limits(settings: Settings) -> files.SizeLimits:
    return files.SizeLimits(settings.project_file_max_bytes, settings.project_max_bytes)


def file_response(project_id: Id, file: ProjectFile | FileRevision) -> FileResponse:
    return FileResponse(
        project_id=project_id,
        path=file.path,
        language=file.language,
        size_bytes=file.size_bytes,
        sha256=file.sha256 or "",
        revision=file.revision,
        updated_at=file.updated_at if isinstance(file, ProjectFile) else file.created_at,
        content=file.content or "",
    )


def revision_summary(revision: files.Revision) -> RevisionSummary:
    return RevisionSummary(
        revision=revision.revision,
        author_id=revision.author_id,
        job_id=revision.job_id,
        message=revision.message,
        created_at=revision.created_at,
        changes=[FileChange.model_validate(change) for change in revision.changes],
    )


@router.post("", response_model=ProjectResponse, status_code=status.HTTP_201_CREATED)
async def create_project(
    body: ProjectCreate, context: ProjectWriter, session: SessionDep
) -> ProjectResponse:
    project = await service.create_project(session, context.org_id, context.user_id, body)
    return ProjectResponse.model_validate(project)


@router.get("", response_model=Page[ProjectResponse])
async def list_projects(
    context: OrgReader, session: SessionDep, page: PageDep
) -> Page[ProjectResponse]:
    projects, total = await service.list_projects(session, context.org_id, page)
    return Page.build([ProjectResponse.model_validate(p) for p in projects], total, page)


@router.get("/{project_id}", response_model=ProjectResponse)
async def get_project(project_id: Id, context: OrgReader, session: SessionDep) -> ProjectResponse:
    project = await service.get_project(session, context.org_id, project_id)
    return ProjectResponse.model_validate(project)


@router.patch("/{project_id}", response_model=ProjectResponse)
async def update_project(
    project_id: Id, body: ProjectUpdate, context: ProjectWriter, session: SessionDep
) -> ProjectResponse:
    changes = body.model_dump(exclude_unset=True)
    project = await service.update_project(session, context.org_id, project_id, changes)
    return ProjectResponse.model_validate(project)


@router.delete("/{project_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_project(project_id: Id, context: ProjectWriter, session: SessionDep) -> None:
    await service.delete_project(session, context.org_id, project_id)


@router.get("/{project_id}/files", response_model=Page[FileSummary])
async def list_files(
    project_id: Id, context: OrgReader, session: SessionDep, page: PageDep, prefix: Prefix = None
) -> Page[FileSummary]:
    """The project's files (without content), by path; `prefix` filters them."""
    rows, total = await files.list_files(session, context.org_id, project_id, prefix, page)
    return Page.build([FileSummary.model_validate(f) for f in rows], total, page)


@router.put("/{project_id}/files", response_model=FileWriteResponse)
async def put_file(
    project_id: Id,
    body: FilePut,
    response: Response,
    context: ProjectWriter,
    session: SessionDep,
    settings: SettingsDep,
) -> FileWriteResponse:
    """Create (201) or replace (200) the file at `path`; either way a new revision."""
    written = await files.write_files(
        session,
        context.org_id,
        project_id,
        [files.Change(body.path, body.content, body.language)],
        size_limits(settings),
        author_id=context.user_id,
        message=f"put {body.path}"[:500],
    )
    created = written.created[0]
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    stored = file_response(project_id, written.files[0])
    return FileWriteResponse(**stored.model_dump(), created=created)


@router.get("/{project_id}/files/{file_path:filepath}", response_model=FileResponse)
async def get_file(
    project_id: Id,
    file_path: str,
    context: OrgReader,
    session: SessionDep,
    revision: Annotated[int | None, Query(ge=1, description="Read as of this revision")] = None,
) -> FileResponse:
    found = await files.read_file(session, context.org_id, project_id, file_path, revision)
    return file_response(project_id, found)


@router.delete("/{project_id}/files/{file_path:filepath}", response_model=RevisionSummary)
async def delete_file(
    project_id: Id,
    file_path: str,
    context: ProjectWriter,
    session: SessionDep,
    settings: SettingsDep,
) -> RevisionSummary:
    """Delete a file; the deletion is a revision of its own."""
    written = await files.write_files(
        session,
        context.org_id,
        project_id,
        [files.Change(file_path, None)],
        size_limits(settings),
        author_id=context.user_id,
        message=f"delete {file_path}"[:500],
    )
    return revision_summary(
        await files.get_revision(session, context.org_id, project_id, written.revision)
    )


@router.get("/{project_id}/revisions", response_model=Page[RevisionSummary])
async def list_revisions(
    project_id: Id,
    context: OrgReader,
    session: SessionDep,
    page: PageDep,
    path: Annotated[str | None, Query(max_length=1024, description="Only revisions of")] = None,
) -> Page[RevisionSummary]:
    """Revisions, newest first, with the files each one changed."""
    rows, total = await files.list_revisions(session, context.org_id, project_id, page, path)
    return Page.build([revision_summary(r) for r in rows], total, page)


@router.get("/{project_id}/revisions/{revision}", response_model=RevisionResponse)
async def get_revision(
    project_id: Id, revision: int, context: OrgReader, session: SessionDep
) -> RevisionResponse:
    """One revision with the content each file had after it."""
    found = await files.get_revision(session, context.org_id, project_id, revision)
    return RevisionResponse(
        **revision_summary(found).model_dump(exclude={"changes"}),
        project_id=project_id,
        changes=[FileChangeWithContent.model_validate(c) for c in found.changes],
    )
