"""The files of a project: writes as commits and revisions, reads (now, as of a revision or on
another branch), listings, and the revision history.

Every write, one file or a batch, runs in one transaction that first bumps the project's
`head_revision` with a single UPDATE. That UPDATE is also the lock: on PostgreSQL it holds the
project row until commit and on SQLite it takes the write lock, so concurrent writers to one
project serialize and each sees the files the previous one committed. The content lives in the
project's git repository (`commits.py` says how the database and the ref stay in agreement);
`project_files` is the index of the default branch's current files (metadata only, for fast
listings) and `file_revisions` records which files each revision changed.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pygit2.enums import FileMode
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from genway.config import Settings
from genway.db import utcnow
from genway.errors import InvalidInput, NotFound, PayloadTooLarge
from genway.kit.pagination import PageParams
from genway.projects import commits, repos
from genway.projects.models import FileRevision, Project, ProjectFile, projects_table
from genway.projects.paths import normalize_path, normalize_prefix
from genway.projects.service import ProjectNotFound, get_project

WRITE = "write"
DELETE = "delete"


class FileNotFound(NotFound):
    detail = "File not found"


class RevisionNotFound(NotFound):
    detail = "Revision not found"


@dataclass(frozen=True)
class Change:
    """One file's change in a write: new content, or `content=None` to delete it."""

    path: str
    content: str | None
    language: str | None = None


@dataclass(frozen=True)
class SizeLimits:
    file_max_bytes: int
    project_max_bytes: int


@dataclass(frozen=True)
class Written:
    revision: int
    files: list[ProjectFile]
    created: list[bool]


@dataclass(frozen=True)
class Revision:
    revision: int
    author_id: int | None
    job_id: int | None
    message: str
    created_at: datetime
    changes: list[FileRevision]


def _digest(content: str) -> tuple[int, str]:
    data = content.encode()
    return len(data), hashlib.sha256(data).hexdigest()


def _checked(changes: Sequence[Change], limits: SizeLimits) -> list[Change]:
    if not changes:
        raise InvalidInput("A write needs at least one file change")
    normalized: dict[str, Change] = {}
    for change in changes:
        path = normalize_path(change.path)
        if path in normalized:
            raise InvalidInput(f"Path '{path}' appears more than once in one write")
        if change.content is not None and "\x00" in change.content:
            raise InvalidInput(f"File '{path}' contains NUL bytes; only text files are stored")
        if change.content is not None:
            size = len(change.content.encode())
            if size > limits.file_max_bytes:
                raise PayloadTooLarge(
                    f"File '{path}' is {size} bytes; the limit is {limits.file_max_bytes}"
                )
        normalized[path] = Change(path, change.content, change.language)
    return list(normalized.values())


async def _next_revision(session: AsyncSession, org_id: int, project_id: int) -> int:
    projects = projects_table
    revision = await session.scalar(
        update(projects)
        .where(projects.c.id == project_id, projects.c.org_id == org_id)
        .values(head_revision=projects.c.head_revision + 1, updated_at=utcnow())
        .returning(projects.c.head_revision)
    )
    if revision is None:
        raise ProjectNotFound(f"Project {project_id} not found")
    return int(revision)


async def _grow(session: AsyncSession, project_id: int, delta: int, limit: int) -> None:
    projects = projects_table
    total = await session.scalar(
        update(projects)
        .where(projects.c.id == project_id)
        .values(total_bytes=projects.c.total_bytes + delta)
        .returning(projects.c.total_bytes)
    )
    if delta > 0 and int(total or 0) > limit:
        raise PayloadTooLarge(
            f"The project would hold {total} bytes of files; the limit is {limit}"
        )


async def write_files(
    session: AsyncSession,
    org_id: int,
    project_id: int,
    changes: Sequence[Change],
    limits: SizeLimits,
    *,
    author_id: int | None = None,
    job_id: int | None = None,
    message: str = "",
    settings: Settings | None = None,
) -> Written:
    """Apply `changes` as one new revision: one commit on the default branch. Raises
    ProjectNotFound, FileNotFound (deleting a missing file), InvalidPath/InvalidInput,
    PayloadTooLarge."""
    checked = _checked(changes, limits)
    root = repos.root_for(session, settings)
    try:
        return await _write(
            session, root, org_id, project_id, checked, limits, author_id, job_id, message
        )
    except Exception:
        await session.rollback()
        raise


async def _write(
    session: AsyncSession,
    root: Path,
    org_id: int,
    project_id: int,
    changes: list[Change],
    limits: SizeLimits,
    author_id: int | None,
    job_id: int | None,
    message: str,
) -> Written:
    revision = await _next_revision(session, org_id, project_id)
    base = await commits.base_for_write(session, root, org_id, project_id, revision)
    paths = [change.path for change in changes]
    existing = {
        f.path: f
        for f in await session.scalars(
            select(ProjectFile).where(
                ProjectFile.project_id == project_id, ProjectFile.path.in_(paths)
            )
        )
    }
    delta, now, written, created = 0, utcnow(), [], []
    git_changes: list[tuple[str, bytes | None, int]] = []
    for change in changes:
        current = existing.get(change.path)
        if change.content is None:
            if current is None:
                raise FileNotFound(f"File '{change.path}' not found")
            delta -= current.size_bytes
            await session.delete(current)
            session.add(_history(project_id, revision, change, None, author_id, job_id, message))
            git_changes.append((change.path, None, 0))
            continue
        size, sha = _digest(change.content)
        delta += size - (current.size_bytes if current else 0)
        if current is None:
            current = ProjectFile(project_id=project_id, path=change.path, created_at=now)
            session.add(current)
        current.content, current.language = "", change.language
        current.size_bytes, current.sha256, current.revision = size, sha, revision
        current.updated_at = now
        written.append(with_content(current, change.content))
        created.append(change.path not in existing)
        session.add(_history(project_id, revision, change, (size, sha), author_id, job_id, message))
        git_changes.append((change.path, change.content.encode(), FileMode.BLOB))
    await _grow(session, project_id, delta, limits.project_max_bytes)
    author = await commits.author_signature(session, author_id, now)
    text = message or f"Revision {revision}"
    path = repos.repo_path(root, org_id, project_id)
    # The ref moves last (commits.py): after every check that could still refuse the write.
    await session.flush()
    sha = await commits.commit_on_main(path, base, git_changes, author, text)
    commits.record(
        session, project_id, revision, sha, author_id=author_id, job_id=job_id, message=message
    )
    await session.flush()
    return Written(revision, written, created)


def with_content(row: ProjectFile, content: str) -> ProjectFile:
    """A detached copy of an index row carrying the file's content (read from git)."""
    return ProjectFile(
        project_id=row.project_id,
        path=row.path,
        content=content,
        language=row.language,
        size_bytes=row.size_bytes,
        sha256=row.sha256,
        revision=row.revision,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _history(
    project_id: int,
    revision: int,
    change: Change,
    digest: tuple[int, str] | None,
    author_id: int | None,
    job_id: int | None,
    message: str,
) -> FileRevision:
    return FileRevision(
        project_id=project_id,
        revision=revision,
        path=change.path,
        action=WRITE if digest else DELETE,
        content=None,
        language=change.language,
        size_bytes=digest[0] if digest else 0,
        sha256=digest[1] if digest else None,
        author_id=author_id,
        job_id=job_id,
        message=message[:500],
        created_at=utcnow(),
    )


def decode(data: bytes) -> str:
    """File content as text (files written through the API are UTF-8; imported binary files
    are shown with replacement characters)."""
    return data.decode("utf-8", errors="replace")


def _read_blobs(path: Path, commit: str | None, paths: list[str]) -> dict[str, bytes]:
    if commit is None or not paths:
        return {}
    repo = repos.open_repo(path)
    found = {}
    for name in paths:
        data = repos.blob_at(repo, commit, name)
        if data is not None:
            found[name] = data
    return found


async def _context(
    session: AsyncSession, settings: Settings | None, org_id: int, project_id: int
) -> tuple[Project, Path, str | None]:
    project = await get_project(session, org_id, project_id)
    root = repos.root_for(session, settings)
    head = await commits.head_commit(session, root, project)
    return project, repos.repo_path(root, org_id, project_id), head


async def list_files(
    session: AsyncSession,
    org_id: int,
    project_id: int,
    prefix: str | None,
    params: PageParams,
) -> tuple[list[ProjectFile], int]:
    """A page of the default branch's files under `prefix`, by path. Raises ProjectNotFound,
    InvalidPath."""
    await get_project(session, org_id, project_id)
    query = select(ProjectFile).where(ProjectFile.project_id == project_id)
    normalized = normalize_prefix(prefix)
    if normalized:
        query = query.where(ProjectFile.path.startswith(normalized, autoescape=True))
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    rows = await session.scalars(
        query.order_by(ProjectFile.path).offset(params.skip).limit(params.limit)
    )
    return list(rows), int(total or 0)


async def all_files(
    session: AsyncSession,
    org_id: int,
    project_id: int,
    prefix: str | None = None,
    *,
    settings: Settings | None = None,
) -> list[ProjectFile]:
    """Every file of the default branch (under `prefix`), by path, with its content. Raises
    ProjectNotFound, InvalidPath."""
    _project, path, head = await _context(session, settings, org_id, project_id)
    query = select(ProjectFile).where(ProjectFile.project_id == project_id)
    normalized = normalize_prefix(prefix)
    if normalized:
        query = query.where(ProjectFile.path.startswith(normalized, autoescape=True))
    rows = list(await session.scalars(query.order_by(ProjectFile.path)))
    blobs = await asyncio.to_thread(_read_blobs, path, head, [row.path for row in rows])
    return [with_content(row, decode(blobs[row.path])) for row in rows if row.path in blobs]


async def read_file(
    session: AsyncSession,
    org_id: int,
    project_id: int,
    path: str,
    revision: int | None = None,
    *,
    settings: Settings | None = None,
) -> ProjectFile | FileRevision:
    """The file now, or as it was at `revision`. Raises ProjectNotFound, FileNotFound,
    RevisionNotFound, InvalidPath."""
    project, repo_path, head = await _context(session, settings, org_id, project_id)
    normalized = normalize_path(path)
    if revision is None:
        current = await session.scalar(
            select(ProjectFile).where(
                ProjectFile.project_id == project_id, ProjectFile.path == normalized
            )
        )
        blobs = await asyncio.to_thread(_read_blobs, repo_path, head, [normalized])
        if current is None or normalized not in blobs:
            raise FileNotFound(f"File '{normalized}' not found")
        return with_content(current, decode(blobs[normalized]))
    if revision > project.head_revision:
        raise RevisionNotFound(f"Revision {revision} not found")
    commit = await commits.sha_of(session, project_id, revision)
    version = await session.scalar(
        select(FileRevision)
        .where(
            FileRevision.project_id == project_id,
            FileRevision.path == normalized,
            FileRevision.revision <= revision,
        )
        .order_by(FileRevision.revision.desc())
        .limit(1)
    )
    blobs = await asyncio.to_thread(_read_blobs, repo_path, commit, [normalized])
    if version is None or version.action == DELETE or normalized not in blobs:
        raise FileNotFound(f"File '{normalized}' did not exist at revision {revision}")
    return _revision_copy(version, decode(blobs[normalized]))


def _revision_copy(row: FileRevision, content: str | None) -> FileRevision:
    return FileRevision(
        project_id=row.project_id,
        revision=row.revision,
        path=row.path,
        action=row.action,
        content=content,
        language=row.language,
        size_bytes=row.size_bytes,
        sha256=row.sha256,
        author_id=row.author_id,
        job_id=row.job_id,
        message=row.message,
        created_at=row.created_at,
    )


async def list_revisions(
    session: AsyncSession,
    org_id: int,
    project_id: int,
    params: PageParams,
    path: str | None = None,
) -> tuple[list[Revision], int]:
    """A page of the project's revisions (those touching `path`, if given), newest first.
    Raises ProjectNotFound, InvalidPath."""
    await get_project(session, org_id, project_id)
    numbers = select(FileRevision.revision).where(FileRevision.project_id == project_id)
    if path is not None:
        numbers = numbers.where(FileRevision.path == normalize_path(path))
    numbers = numbers.distinct()
    total = await session.scalar(select(func.count()).select_from(numbers.subquery()))
    page = list(
        await session.scalars(
            numbers.order_by(FileRevision.revision.desc()).offset(params.skip).limit(params.limit)
        )
    )
    rows = await session.scalars(
        select(FileRevision)
        .where(FileRevision.project_id == project_id, FileRevision.revision.in_(page))
        .order_by(FileRevision.revision.desc(), FileRevision.path)
    )
    grouped: dict[int, list[FileRevision]] = {number: [] for number in page}
    for row in rows:
        grouped[row.revision].append(row)
    return [_revision(changes) for changes in grouped.values() if changes], int(total or 0)


async def get_revision(
    session: AsyncSession,
    org_id: int,
    project_id: int,
    revision: int,
    *,
    settings: Settings | None = None,
) -> Revision:
    """One revision with its changes (and the content each file had after it). Raises
    ProjectNotFound, RevisionNotFound."""
    _project, repo_path, _head = await _context(session, settings, org_id, project_id)
    rows = list(
        await session.scalars(
            select(FileRevision)
            .where(FileRevision.project_id == project_id, FileRevision.revision == revision)
            .order_by(FileRevision.path)
        )
    )
    if not rows:
        raise RevisionNotFound(f"Revision {revision} not found")
    commit = await commits.sha_of(session, project_id, revision)
    written = [row.path for row in rows if row.action == WRITE]
    blobs = await asyncio.to_thread(_read_blobs, repo_path, commit, written)
    return _revision(
        [
            _revision_copy(row, decode(blobs[row.path]) if row.path in blobs else None)
            for row in rows
        ]
    )


def _revision(changes: list[FileRevision]) -> Revision:
    first = changes[0]
    return Revision(
        first.revision, first.author_id, first.job_id, first.message, first.created_at, changes
    )
