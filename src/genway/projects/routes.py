"""`/v1/organizations/{org_id}/projects`: projects, their files and their revisions."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.convertors import Convertor, register_url_convertor

from genway.auth.deps import OrgContext, OrgReader, SettingsDep, require
from genway.auth.permissions import Action
from genway.config import Settings
from genway.db import SessionDep
from genway.errors import InvalidInput
from genway.github.pins import apply_pin_change
from genway.kit.pagination import Page, PageDep
from genway.kit.schemas import MAX_ID, Id
from genway.projects import files, history, imports, merges, repos, service
from genway.projects.models import FileRevision, Project, ProjectFile
from genway.projects.paths import normalize_path
from genway.projects.schemas import (
    BranchResponse,
    CommitResponse,
    DiffFile,
    DiffResponse,
    FileChange,
    FileChangeWithContent,
    FilePut,
    FileResponse,
    FileSummary,
    FileWriteResponse,
    ImportResponse,
    MergeRequest,
    MergeResponse,
    ProjectCreate,
    ProjectResponse,
    ProjectUpdate,
    RevisionResponse,
    RevisionSummary,
)
from genway.projects.uploads import read_bundle_upload


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
# A file write answers 201 when it made the file, 200 when it replaced one.
WRITE_ANSWERS: dict[int | str, dict[str, Any]] = {
    201: {"model": FileWriteResponse, "description": "The file was created"}
}
Prefix = Annotated[str | None, Query(max_length=1024, description="Only paths starting with this")]
Ref = Annotated[
    str | None, Query(max_length=200, description="A branch, commit sha or revision number")
]


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
    body: ProjectCreate,
    request: Request,
    context: ProjectWriter,
    session: SessionDep,
    settings: SettingsDep,
) -> ProjectResponse:
    """A new project; a local `repository_url` (or an https one with `clone: true`) is cloned;
    a `github_repo` is pinned."""
    project = await service.create_project(
        session, context.org_id, context.user_id, body, settings.secret_box
    )
    path = repos.repo_path(repos.remember_root(session, settings), context.org_id, project.id)
    # A rolled-back creation may have left a repository under this id; never inherit it.
    repos.delete_repo(path)
    url = body.repository_url
    if url and (imports.is_local(url) or body.clone):
        try:
            await imports.import_repository(
                session,
                settings,
                context.org_id,
                project.id,
                url=url,
                limits=size_limits(settings),
                author_id=context.user_id,
            )
        except Exception:
            repos.delete_repo(path)
            raise
        await session.refresh(project)
    await apply_pin_change(
        session,
        settings,
        project,
        body.model_dump(exclude_unset=True),
        request_base=str(request.base_url),
        user_id=context.user_id,
    )
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
    project_id: Id,
    body: ProjectUpdate,
    request: Request,
    context: ProjectWriter,
    session: SessionDep,
    settings: SettingsDep,
) -> ProjectResponse:
    changes = body.model_dump(exclude_unset=True)
    project = await update_and_pin(session, settings, request, context, project_id, changes)
    return ProjectResponse.model_validate(project)


async def update_and_pin(
    session: AsyncSession,
    settings: Settings,
    request: Request,
    context: OrgContext,
    project_id: int,
    changes: dict[str, Any],
) -> Project:
    """Apply a project request's changes, then pin or unpin as its `github_repo` asks."""
    project = await service.update_project(
        session, context.org_id, project_id, changes, settings.secret_box
    )
    await apply_pin_change(
        session,
        settings,
        project,
        changes,
        request_base=str(request.base_url),
        user_id=context.user_id,
    )
    return project


@router.delete("/{project_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_project(
    project_id: Id, context: ProjectWriter, session: SessionDep, settings: SettingsDep
) -> None:
    await service.delete_project(session, context.org_id, project_id, settings)


@router.get("/{project_id}/files", response_model=Page[FileSummary])
async def list_files(
    project_id: Id,
    context: OrgReader,
    session: SessionDep,
    page: PageDep,
    settings: SettingsDep,
    prefix: Prefix = None,
    ref: Ref = None,
) -> Page[FileSummary]:
    """The files (without content) of the default branch or of `ref`, by path; `prefix`
    filters them."""
    if ref:
        repo = await history.repo_context(session, settings, context.org_id, project_id)
        rows, total = await history.list_ref_files(session, repo, ref, prefix, page)
    else:
        rows, total = await files.list_files(session, context.org_id, project_id, prefix, page)
    return Page.build([FileSummary.model_validate(f) for f in rows], total, page)


@router.put("/{project_id}/files", response_model=FileWriteResponse, responses=WRITE_ANSWERS)
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
        settings=settings,
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
    settings: SettingsDep,
    revision: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="Read as of this revision")
    ] = None,
    ref: Ref = None,
) -> FileResponse:
    """The file on the default branch, as of `revision`, or on `ref` (not both)."""
    if ref and revision is not None:
        raise InvalidInput("Send 'revision' or 'ref', not both")
    if ref:
        repo = await history.repo_context(session, settings, context.org_id, project_id)
        return file_response(project_id, await history.read_ref_file(session, repo, ref, file_path))
    found = await files.read_file(
        session, context.org_id, project_id, file_path, revision, settings=settings
    )
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
        settings=settings,
    )
    return revision_summary(
        await files.get_revision(
            session, context.org_id, project_id, written.revision, settings=settings
        )
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
    project_id: Id, revision: Id, context: OrgReader, session: SessionDep, settings: SettingsDep
) -> RevisionResponse:
    """One revision with the content each file had after it."""
    found = await files.get_revision(
        session, context.org_id, project_id, revision, settings=settings
    )
    return RevisionResponse(
        **revision_summary(found).model_dump(exclude={"changes"}),
        project_id=project_id,
        changes=[FileChangeWithContent.model_validate(c) for c in found.changes],
    )


@router.get("/{project_id}/commits", response_model=Page[CommitResponse])
async def list_commits(
    project_id: Id,
    context: OrgReader,
    session: SessionDep,
    page: PageDep,
    settings: SettingsDep,
    ref: Ref = None,
    path: Annotated[str | None, Query(max_length=1024, description="Only commits of")] = None,
) -> Page[CommitResponse]:
    """Commits reachable from `ref` (default: the default branch), newest first."""
    repo = await history.repo_context(session, settings, context.org_id, project_id)
    file = normalize_path(path) if path is not None else None
    rows, total = await history.list_commits(session, repo, ref, file, page)
    return Page.build([CommitResponse.model_validate(c) for c in rows], total, page)


@router.get("/{project_id}/diff", response_model=DiffResponse)
async def diff(
    project_id: Id,
    context: OrgReader,
    session: SessionDep,
    settings: SettingsDep,
    from_: Annotated[str | None, Query(alias="from", max_length=200)] = None,
    to: Ref = None,
) -> DiffResponse:
    """What changed from `from` (default: `to`'s first parent) to `to` (default: the default
    branch); each accepts a revision number, a branch or a commit sha."""
    repo = await history.repo_context(session, settings, context.org_id, project_id)
    old, new, stat = await history.diff(session, repo, from_, to)
    return DiffResponse(
        from_=old,
        to=new,
        files=[DiffFile.model_validate(f) for f in stat.files],
        files_changed=stat.files_changed,
        insertions=stat.insertions,
        deletions=stat.deletions,
        truncated=stat.truncated,
    )


@router.get("/{project_id}/branches", response_model=list[BranchResponse])
async def list_branches(
    project_id: Id, context: OrgReader, session: SessionDep, settings: SettingsDep
) -> list[BranchResponse]:
    """The branches with their head commits, the default branch first."""
    repo = await history.repo_context(session, settings, context.org_id, project_id)
    return [BranchResponse.model_validate(b) for b in await history.list_branches(repo)]


@router.post("/{project_id}/merge", response_model=MergeResponse)
async def merge(
    project_id: Id,
    body: MergeRequest,
    context: ProjectWriter,
    session: SessionDep,
    settings: SettingsDep,
) -> MergeResponse:
    """Merge a branch into the default branch as a new revision (409 on a conflict)."""
    merged = await merges.merge_branch(
        session,
        settings,
        context.org_id,
        project_id,
        body.branch,
        message=body.message,
        author_id=context.user_id,
        limits=size_limits(settings),
    )
    return MergeResponse.model_validate(merged)


@router.post("/{project_id}/import", response_model=ImportResponse)
async def import_bundle(
    project_id: Id,
    request: Request,
    context: ProjectWriter,
    session: SessionDep,
    settings: SettingsDep,
) -> ImportResponse:
    """Import a git bundle (multipart field `bundle`) into a project without revisions."""
    project = await service.get_project(session, context.org_id, project_id)
    if project.head_revision:
        raise imports.ProjectNotEmpty(f"Project {project_id} already has revisions")
    data = await read_bundle_upload(request, settings.project_max_bytes)
    count = await imports.import_repository(
        session,
        settings,
        context.org_id,
        project_id,
        bundle_data=data,
        limits=size_limits(settings),
        author_id=context.user_id,
    )
    return ImportResponse(project_id=project_id, head_revision=count)
