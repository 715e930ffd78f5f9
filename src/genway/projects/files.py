"""The virtual file system of a project: writes as revisions, reads (now or as of a revision),
listings, and the revision history.

Every write, one file or a batch, runs in one transaction that first bumps the project's
`head_revision` with a single UPDATE. That UPDATE is also the lock: on PostgreSQL it holds the
project row until commit and on SQLite it takes the write lock, so concurrent writers to one
project serialize and each sees the files the previous one committed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from genway.db import utcnow
from genway.errors import InvalidInput, NotFound, PayloadTooLarge
from genway.kit.pagination import PageParams
from genway.projects.models import FileRevision, ProjectFile, projects_table
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
) -> Written:
    """Apply `changes` as one new revision (committed). Raises ProjectNotFound, FileNotFound
    (deleting a missing file), InvalidPath/InvalidInput, PayloadTooLarge."""
    checked = _checked(changes, limits)
    try:
        return await _write(
            session, org_id, project_id, checked, limits, author_id, job_id, message
        )
    except Exception:
        await session.rollback()
        raise


async def _write(
    session: AsyncSession,
    org_id: int,
    project_id: int,
    changes: list[Change],
    limits: SizeLimits,
    author_id: int | None,
    job_id: int | None,
    message: str,
) -> Written:
    revision = await _next_revision(session, org_id, project_id)
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
    for change in changes:
        current = existing.get(change.path)
        if change.content is None:
            if current is None:
                raise FileNotFound(f"File '{change.path}' not found")
            delta -= current.size_bytes
            await session.delete(current)
            session.add(_history(project_id, revision, change, None, author_id, job_id, message))
            continue
        size, sha = _digest(change.content)
        delta += size - (current.size_bytes if current else 0)
        if current is None:
            current = ProjectFile(project_id=project_id, path=change.path, created_at=now)
            session.add(current)
        current.content, current.language = change.content, change.language
        current.size_bytes, current.sha256, current.revision = size, sha, revision
        current.updated_at = now
        written.append(current)
        created.append(change.path not in existing)
        session.add(_history(project_id, revision, change, (size, sha), author_id, job_id, message))
    await _grow(session, project_id, delta, limits.project_max_bytes)
    await session.flush()
    return Written(revision, written, created)


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
        content=change.content,
        language=change.language,
        size_bytes=digest[0] if digest else 0,
        sha256=digest[1] if digest else None,
        author_id=author_id,
        job_id=job_id,
        message=message[:500],
        created_at=utcnow(),
    )


async def list_files(
    session: AsyncSession, org_id: int, project_id: int, prefix: str | None, params: PageParams
) -> tuple[list[ProjectFile], int]:
    """A page of the project's files under `prefix`, by path. Raises ProjectNotFound,
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
    session: AsyncSession, org_id: int, project_id: int, prefix: str | None = None
) -> list[ProjectFile]:
    """Every file of the project (under `prefix`), by path. Raises ProjectNotFound, InvalidPath."""
    await get_project(session, org_id, project_id)
    query = select(ProjectFile).where(ProjectFile.project_id == project_id)
    normalized = normalize_prefix(prefix)
    if normalized:
        query = query.where(ProjectFile.path.startswith(normalized, autoescape=True))
    return list(await session.scalars(query.order_by(ProjectFile.path)))


async def read_file(
    session: AsyncSession, org_id: int, project_id: int, path: str, revision: int | None = None
) -> ProjectFile | FileRevision:
    """The file now, or as it was at `revision`. Raises ProjectNotFound, FileNotFound,
    InvalidPath."""
    project = await get_project(session, org_id, project_id)
    normalized = normalize_path(path)
    if revision is None:
        current = await session.scalar(
            select(ProjectFile).where(
                ProjectFile.project_id == project_id, ProjectFile.path == normalized
            )
        )
        if current is None:
            raise FileNotFound(f"File '{normalized}' not found")
        return current
    if revision > project.head_revision:
        raise RevisionNotFound(f"Revision {revision} not found")
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
    if version is None or version.action == DELETE:
        raise FileNotFound(f"File '{normalized}' did not exist at revision {revision}")
    return version


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
    session: AsyncSession, org_id: int, project_id: int, revision: int
) -> Revision:
    """One revision with its changes. Raises ProjectNotFound, RevisionNotFound."""
    await get_project(session, org_id, project_id)
    rows = list(
        await session.scalars(
            select(FileRevision)
            .where(FileRevision.project_id == project_id, FileRevision.revision == revision)
            .order_by(FileRevision.path)
        )
    )
    if not rows:
        raise RevisionNotFound(f"Revision {revision} not found")
    return _revision(rows)


def _revision(changes: list[FileRevision]) -> Revision:
    first = changes[0]
    return Revision(
        first.revision, first.author_id, first.job_id, first.message, first.created_at, changes
    )
