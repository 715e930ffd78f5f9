"""Revisions ↔ commits: how the database and a project's repository stay in agreement.

The database is the source of truth for which commits of the default branch are visible: revision
N is the commit recorded in `project_commits` with that number, and the project's
`head_revision` is the newest. Readers resolve the default branch through it, never through the
ref, so they see exactly what their transaction sees.

A writer (a file write, a merge, an import, a legacy conversion) first bumps `head_revision`
with the single `UPDATE ... RETURNING` that locks the project row (see `files.py`); under that
lock it builds the commit on top of revision N-1's commit, flushes its rows, and moves the
`main` ref as its very last step, a compare-and-swap on the value it observed (`repos.cas_ref`).
The transaction commits afterwards, at the request boundary. If it never commits (an error later
in the request, a crash), the ref points one commit ahead of the database: that commit is not
visible (no revision maps to it) and the next writer, who builds on revision N-1's commit as
recorded in the database, swaps the ref from it to its own commit: the failed write is dropped,
never half-applied. Objects written to the repository by a failed write are unreachable garbage.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path

import pygit2
import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from genway.db import utcnow
from genway.orgs.models import User
from genway.projects import repos
from genway.projects.models import Project, ProjectCommit

log = structlog.get_logger("genway.projects")

GENWAY_NAME = "Genway"
GENWAY_EMAIL = "genway@localhost"


async def sha_of(session: AsyncSession, project_id: int, revision: int) -> str | None:
    """The commit of revision `revision`, or None when none is recorded."""
    if revision <= 0:
        return None
    sha = await session.scalar(
        select(ProjectCommit.sha).where(
            ProjectCommit.project_id == project_id, ProjectCommit.revision == revision
        )
    )
    return str(sha) if sha is not None else None


async def revisions_of(session: AsyncSession, project_id: int, shas: list[str]) -> dict[str, int]:
    """Revision numbers of those of `shas` that have one."""
    if not shas:
        return {}
    rows = await session.execute(
        select(ProjectCommit.sha, ProjectCommit.revision).where(
            ProjectCommit.project_id == project_id, ProjectCommit.sha.in_(shas)
        )
    )
    return {sha: revision for sha, revision in rows.tuples()}


async def head_commit(session: AsyncSession, root: Path, project: Project) -> str | None:
    """The commit of the project's head revision (None: no revision yet), converting a project
    from before git storage first."""
    if project.head_revision <= 0:
        return None
    sha = await sha_of(session, project.id, project.head_revision)
    if sha is None:
        from genway.projects.legacy import ensure_converted

        await ensure_converted(session, root, project.org_id, project.id)
        sha = await sha_of(session, project.id, project.head_revision)
    return sha


async def base_for_write(
    session: AsyncSession, root: Path, org_id: int, project_id: int, revision: int
) -> str | None:
    """Under the write lock, for new revision `revision`: the commit of the one before."""
    if revision <= 1:
        return None
    sha = await sha_of(session, project_id, revision - 1)
    if sha is None:
        from genway.projects.legacy import convert_locked

        await convert_locked(session, root, org_id, project_id, revision - 1)
        sha = await sha_of(session, project_id, revision - 1)
    return sha


async def author_signature(
    session: AsyncSession, author_id: int | None, when: datetime | None = None
) -> tuple[str, str, float]:
    """(name, email, timestamp) of a Genway write by user `author_id` (None: Genway itself)."""
    stamp = (when or utcnow()).timestamp()
    if author_id is None:
        return GENWAY_NAME, GENWAY_EMAIL, stamp
    row = (
        await session.execute(select(User.full_name, User.email).where(User.id == author_id))
    ).first()
    if row is None:
        return f"user {author_id}", f"user-{author_id}@users.genway.invalid", stamp
    name, email = row
    return name or email.split("@")[0], email, stamp


def record(
    session: AsyncSession,
    project_id: int,
    revision: int,
    sha: str,
    *,
    author_id: int | None,
    job_id: int | None,
    message: str,
    created_at: datetime | None = None,
) -> None:
    session.add(
        ProjectCommit(
            project_id=project_id,
            revision=revision,
            sha=sha,
            author_id=author_id,
            job_id=job_id,
            message=message[:500],
            created_at=created_at or utcnow(),
        )
    )


def _commit_on_main(
    path: Path,
    base: str | None,
    changes: list[tuple[str, bytes | None, int]],
    author: tuple[str, str, float],
    message: str,
) -> str:
    with repos.repo_lock(path):
        repo = repos.open_repo(path)
        tree = repos.build_tree(repo, base, changes)
        who = repos.signature(*author)
        sha = repos.make_commit(repo, tree, [base] if base else [], who, message)
        move_main(repo, base, sha)
        return sha


def move_main(repo: pygit2.Repository, base: str | None, sha: str) -> None:
    """Swap `main` from whatever it holds to `sha` (see the module docstring)."""
    observed = repos.branch_head(repo, repos.DEFAULT_BRANCH)
    if observed != base:
        log.warning(
            "project_ref_reconciled", repository=repo.path, ref=observed, recorded=base, new=sha
        )
    repos.cas_ref(repo, repos.DEFAULT_BRANCH, observed, sha)


async def commit_on_main(
    path: Path,
    base: str | None,
    changes: list[tuple[str, bytes | None, int]],
    author: tuple[str, str, float],
    message: str,
) -> str:
    """Commit `changes` on top of `base` and move `main` to it (the writer's last step)."""
    return await asyncio.to_thread(_commit_on_main, path, base, changes, author, message)
