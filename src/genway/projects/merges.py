"""Moving the default branch to a commit Genway did not build file by file: merging a branch
(an agent's `genway/run-<id>`) into it, and the index bookkeeping shared with imports.

Both follow `commits.py`: bump `head_revision` (the lock), build on the recorded head, check the
size limits, record the revision and the changed files, and move the `main` ref last.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pygit2
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from genway.config import Settings
from genway.db import utcnow
from genway.errors import Conflict, InvalidInput, PayloadTooLarge
from genway.projects import commits, repos
from genway.projects.files import DELETE, WRITE, SizeLimits, _grow, _next_revision
from genway.projects.history import diff_commits
from genway.projects.models import FileRevision, ProjectFile


class MergeConflict(Conflict):
    detail = "The branch conflicts with the default branch"


class NothingToMerge(Conflict):
    detail = "The branch is already merged"


@dataclass(frozen=True)
class FileChange:
    path: str
    content_size: int | None  # None: deleted
    sha256: str | None


@dataclass(frozen=True)
class Merged:
    revision: int
    sha: str
    fast_forward: bool


def changed_files(repo: pygit2.Repository, old: str | None, new: str) -> list[FileChange]:
    """The files that differ between two commits, a rename as a deletion and an addition."""
    stat = diff_commits(repo, old, new, patches=False)
    tree = repo[new].peel(pygit2.Tree)
    found: list[FileChange] = []
    for file in stat.files:
        if file.old_path:
            found.append(FileChange(file.old_path, None, None))
        if file.status == "deleted":
            found.append(FileChange(file.path, None, None))
            continue
        data = repos.blob(repo, str(tree[file.path].id)).data
        found.append(FileChange(file.path, len(data), hashlib.sha256(data).hexdigest()))
    return found


async def sync_index(
    session: AsyncSession,
    project_id: int,
    revision: int,
    changes: list[FileChange],
    limits: SizeLimits,
    *,
    author_id: int | None,
    job_id: int | None,
    message: str,
    when: datetime | None = None,
) -> None:
    """Apply `changes` to `project_files`, record them in `file_revisions` under `revision`
    and grow the project's size. Raises PayloadTooLarge."""
    now = when or utcnow()
    paths = [c.path for c in changes]
    existing = {
        f.path: f
        for f in await session.scalars(
            select(ProjectFile).where(
                ProjectFile.project_id == project_id, ProjectFile.path.in_(paths)
            )
        )
    }
    delta = 0
    for change in changes:
        current = existing.get(change.path)
        size = change.content_size
        if size is not None and size > limits.file_max_bytes:
            raise PayloadTooLarge(
                f"File '{change.path}' is {size} bytes; the limit is {limits.file_max_bytes}"
            )
        delta += (size or 0) - (current.size_bytes if current else 0)
        if size is None and current is not None:
            await session.delete(current)
        elif size is not None:
            if current is None:
                current = ProjectFile(project_id=project_id, path=change.path, created_at=now)
                session.add(current)
                existing[change.path] = current
            current.content, current.language, current.size_bytes = "", None, size
            current.sha256, current.revision, current.updated_at = (
                change.sha256 or "",
                revision,
                now,
            )
        session.add(
            FileRevision(
                project_id=project_id,
                revision=revision,
                path=change.path,
                action=DELETE if size is None else WRITE,
                content=None,
                language=None,
                size_bytes=size or 0,
                sha256=change.sha256,
                author_id=author_id,
                job_id=job_id,
                message=message[:500],
                created_at=now,
            )
        )
    await _grow(session, project_id, delta, limits.project_max_bytes)


def _prepare(
    path: Path, base: str | None, branch: str, message: str, author: tuple[str, str, float]
) -> tuple[str, bool, list[FileChange]]:
    repo = repos.open_repo(path)
    tip = repos.branch_head(repo, branch)
    if tip is None:
        raise repos.RefNotFound(f"Unknown ref '{branch}': no such branch in this project")
    if base is not None and (tip == base or repo.descendant_of(base, tip)):
        raise NothingToMerge(f"Branch '{branch}' has nothing that is not on the default branch")
    if base is None or repo.descendant_of(tip, base):
        return tip, True, changed_files(repo, base, tip)
    index = repo.merge_commits(base, tip)
    if index.conflicts is not None:
        conflicted = sorted(
            {entry.path for trio in index.conflicts for entry in trio if entry is not None}
        )
        raise MergeConflict(
            f"Merging '{branch}' conflicts in: {', '.join(conflicted)}; nothing was changed",
            extra={"conflicts": conflicted},
        )
    tree = str(index.write_tree(repo))
    sha = repos.make_commit(repo, tree, [base, tip], repos.signature(*author), message)
    return sha, False, changed_files(repo, base, sha)


def _move(path: Path, base: str | None, sha: str) -> None:
    with repos.repo_lock(path):
        commits.move_main(repos.open_repo(path), base, sha)


async def merge_branch(
    session: AsyncSession,
    settings: Settings,
    org_id: int,
    project_id: int,
    branch: str,
    *,
    message: str | None,
    author_id: int | None,
    limits: SizeLimits,
) -> Merged:
    """Merge `branch` into the default branch as a new revision (fast-forward when possible).
    Raises ProjectNotFound, InvalidBranch, RefNotFound, NothingToMerge, MergeConflict,
    PayloadTooLarge."""
    repos.check_branch(branch)
    if branch == repos.DEFAULT_BRANCH:
        raise InvalidInput("Merge another branch into the default branch, not itself")
    root = repos.root_for(session, settings)
    revision = await _next_revision(session, org_id, project_id)
    base = await commits.base_for_write(session, root, org_id, project_id, revision)
    author = await commits.author_signature(session, author_id)
    text = message or f"Merge branch '{branch}'"
    path = repos.repo_path(root, org_id, project_id)
    sha, fast_forward, changes = await asyncio.to_thread(_prepare, path, base, branch, text, author)
    await sync_index(
        session,
        project_id,
        revision,
        changes,
        limits,
        author_id=author_id,
        job_id=None,
        message=text,
    )
    commits.record(
        session, project_id, revision, sha, author_id=author_id, job_id=None, message=text
    )
    await session.flush()
    await asyncio.to_thread(_move, path, base, sha)
    return Merged(revision, sha, fast_forward)
