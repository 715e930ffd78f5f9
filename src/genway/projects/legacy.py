"""Converting projects from before git storage (migration 0009): their revisions, kept as rows
with content in `file_revisions`, are replayed into the project's repository, one commit per
revision in revision order with its author, message and time, and each mapped in
`project_commits`, so every old revision number reads the same content afterwards.

It runs under the project's write lock in one transaction: lazily, on the first read or write of
such a project, and for all of them by `convert_legacy_projects` (for `genway migrate`). Commits
are deterministic (same content, author, time and parents give the same sha), so a conversion
whose transaction was lost is simply redone with the same result; a project with any mapping row
is never converted again. The old rows are left as they are.
"""

from __future__ import annotations

import asyncio
from itertools import groupby
from pathlib import Path

from sqlalchemy import exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from genway.config import Settings
from genway.db import Database
from genway.projects import commits, repos
from genway.projects.models import FileRevision, Project, ProjectCommit, projects_table

Replayed = tuple[int, list[tuple[str, bytes | None, int]], tuple[str, str, float], str]


async def _has_commits(session: AsyncSession, project_id: int) -> bool:
    count = await session.scalar(select(func.count()).where(ProjectCommit.project_id == project_id))
    return bool(count)


async def ensure_converted(session: AsyncSession, root: Path, org_id: int, project_id: int) -> None:
    """Convert the project if it has revisions but no commits yet (takes the write lock)."""
    projects = projects_table
    head = await session.scalar(
        update(projects)
        .where(projects.c.id == project_id, projects.c.org_id == org_id)
        .values(head_revision=projects.c.head_revision)
        .returning(projects.c.head_revision)
    )
    if head:
        await convert_locked(session, root, org_id, project_id, int(head))


async def convert_locked(
    session: AsyncSession, root: Path, org_id: int, project_id: int, upto: int
) -> None:
    """Replay revisions 1..`upto` into commits, holding the project's write lock."""
    if await _has_commits(session, project_id):
        return
    rows = list(
        await session.scalars(
            select(FileRevision)
            .where(FileRevision.project_id == project_id, FileRevision.revision <= upto)
            .order_by(FileRevision.revision, FileRevision.path)
        )
    )
    replay: list[Replayed] = []
    for number, group in groupby(rows, key=lambda row: row.revision):
        changes = list(group)
        first = changes[0]
        author = await commits.author_signature(session, first.author_id, first.created_at)
        replay.append(
            (
                number,
                [
                    (c.path, None if c.action == "delete" else (c.content or "").encode(), 0o100644)
                    for c in changes
                ],
                author,
                first.message or f"Revision {number}",
            )
        )
    path = repos.repo_path(root, org_id, project_id)
    shas = await asyncio.to_thread(_replay, path, replay)
    for (number, _changes, _author, _message), sha in zip(replay, shas, strict=True):
        first = next(row for row in rows if row.revision == number)
        commits.record(
            session,
            project_id,
            number,
            sha,
            author_id=first.author_id,
            job_id=first.job_id,
            message=first.message,
            created_at=first.created_at,
        )
    await session.flush()


def _replay(path: Path, replay: list[Replayed]) -> list[str]:
    with repos.repo_lock(path):
        repo = repos.open_repo(path)
        shas: list[str] = []
        base: str | None = None
        for _number, changes, author, message in replay:
            tree = repos.build_tree(repo, base, changes)
            base = repos.make_commit(
                repo, tree, [base] if base else [], repos.signature(*author), message
            )
            shas.append(base)
        if base is not None:
            commits.move_main(repo, repos.branch_head(repo, repos.DEFAULT_BRANCH), base)
        return shas


async def convert_legacy_projects(settings: Settings) -> int:
    """Convert every project from before git storage; returns how many were converted. Safe to
    run again, and while Genway serves requests."""
    database = Database(settings.resolved_database_url)
    root = repos.repos_root(settings)
    converted = 0
    try:
        async with database.sessions() as session:
            pending = list(
                (
                    await session.execute(
                        select(Project.org_id, Project.id).where(
                            Project.head_revision > 0,
                            ~exists().where(ProjectCommit.project_id == Project.id),
                        )
                    )
                ).tuples()
            )
        for org_id, project_id in pending:
            async with database.transaction() as session:
                await ensure_converted(session, root, org_id, project_id)
            converted += 1
    finally:
        await database.dispose()
    return converted
