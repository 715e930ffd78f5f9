"""Reading a project's git history: resolving refs, listing commits, diffs and branches.

A ref given by a client is a revision number (`12`), a commit sha (40 hex digits) or a branch
name. The default branch resolves through the database (`commits.py`), other branches through
the repository.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pygit2
from pygit2.enums import DeltaStatus, SortMode
from sqlalchemy.ext.asyncio import AsyncSession

from genway.config import Settings
from genway.db import utcnow
from genway.kit.pagination import PageParams
from genway.projects import commits, repos
from genway.projects.files import FileNotFound, RevisionNotFound, decode
from genway.projects.models import Project, ProjectFile
from genway.projects.paths import normalize_path, normalize_prefix
from genway.projects.service import get_project

PATCH_MAX_BYTES = 64 * 1024
DIFF_PATCHES_MAX_BYTES = 1024 * 1024
STATUS = {
    DeltaStatus.ADDED: "added",
    DeltaStatus.COPIED: "added",
    DeltaStatus.DELETED: "deleted",
    DeltaStatus.RENAMED: "renamed",
}


@dataclass(frozen=True)
class CommitInfo:
    sha: str
    message: str
    author_name: str
    author_email: str
    created_at: datetime
    parents: list[str]
    revision: int | None = None


@dataclass(frozen=True)
class FileStat:
    path: str
    status: str
    insertions: int
    deletions: int
    old_path: str | None = None
    patch: str | None = None
    truncated: bool = False


@dataclass(frozen=True)
class DiffStat:
    files_changed: int
    insertions: int
    deletions: int
    files: list[FileStat] = field(default_factory=list)
    truncated: bool = False


@dataclass(frozen=True)
class Branch:
    name: str
    sha: str | None
    default: bool


@dataclass(frozen=True)
class RepoContext:
    project: Project
    path: Path
    head: str | None


async def repo_context(
    session: AsyncSession, settings: Settings, org_id: int, project_id: int
) -> RepoContext:
    """The project (Raises ProjectNotFound), its repository and its default branch's head."""
    project = await get_project(session, org_id, project_id)
    root = repos.root_for(session, settings)
    head = await commits.head_commit(session, root, project)
    return RepoContext(project, repos.repo_path(root, org_id, project_id), head)


def _resolve_in_repo(path: Path, spec: str, default_head: str | None) -> str | None:
    if spec == repos.DEFAULT_BRANCH:
        return default_head
    repo = repos.open_repo(path)
    if repos.SHA.match(spec):
        if not repos.commit_exists(repo, spec):
            raise repos.RefNotFound(f"Unknown ref '{spec}': no such commit in this project")
        return spec
    repos.check_branch(spec)
    sha = repos.branch_head(repo, spec)
    if sha is None:
        raise repos.RefNotFound(
            f"Unknown ref '{spec}': not a revision number, branch or commit sha of this project"
        )
    return sha


async def resolve(session: AsyncSession, context: RepoContext, spec: str | None) -> str | None:
    """The commit `spec` names (None: the default branch has no commit yet). Raises
    RefNotFound, RevisionNotFound, InvalidBranch."""
    if spec is None or spec == "":
        return context.head
    if spec.isdigit():
        number = int(spec)
        sha = await commits.sha_of(session, context.project.id, number)
        if sha is None or number > context.project.head_revision:
            raise RevisionNotFound(f"Revision {number} not found")
        return sha
    return await asyncio.to_thread(_resolve_in_repo, context.path, spec, context.head)


def _entry_id(tree: pygit2.Tree, path: str) -> str | None:
    try:
        return str(tree[path].id)
    except KeyError:
        return None


def _info(commit: pygit2.Commit) -> CommitInfo:
    return CommitInfo(
        sha=str(commit.id),
        message=commit.message,
        author_name=commit.author.name,
        author_email=commit.author.email,
        created_at=datetime.fromtimestamp(commit.author.time, UTC),
        parents=[str(p) for p in commit.parent_ids],
    )


def _walk(
    path: Path, start: str | None, file: str | None, skip: int, limit: int
) -> tuple[list[CommitInfo], int]:
    if start is None:
        return [], 0
    repo = repos.open_repo(path)
    page: list[CommitInfo] = []
    total = 0
    for commit in repo.walk(start, SortMode.TOPOLOGICAL | SortMode.TIME):
        if file is not None:
            mine = _entry_id(commit.tree, file)
            parent = _entry_id(commit.parents[0].tree, file) if commit.parents else None
            if mine == parent:
                continue
        if skip <= total < skip + limit:
            page.append(_info(commit))
        total += 1
    return page, total


async def list_commits(
    session: AsyncSession,
    context: RepoContext,
    ref: str | None,
    file: str | None,
    params: PageParams,
) -> tuple[list[CommitInfo], int]:
    """A page of the commits reachable from `ref` (touching `file`), newest first, with their
    revision numbers. Raises RefNotFound, RevisionNotFound."""
    start = await resolve(session, context, ref)
    page, total = await asyncio.to_thread(
        _walk, context.path, start, file, params.skip, params.limit
    )
    numbers = await commits.revisions_of(session, context.project.id, [c.sha for c in page])
    return [CommitInfo(**{**c.__dict__, "revision": numbers.get(c.sha)}) for c in page], total


def diff_commits(
    repo: pygit2.Repository, old: str | None, new: str | None, *, patches: bool
) -> DiffStat:
    """What changed from `old` to `new` (None: the empty tree), renames detected."""
    empty = repo[repo.TreeBuilder().write()].peel(pygit2.Tree)
    old_tree = repo[old].peel(pygit2.Tree) if old else empty
    new_tree = repo[new].peel(pygit2.Tree) if new else empty
    diff = old_tree.diff_to_tree(new_tree)
    diff.find_similar()
    files: list[FileStat] = []
    budget, truncated_any = DIFF_PATCHES_MAX_BYTES, False
    for patch in diff:
        if patch is None:
            continue
        delta = patch.delta
        _context, added, removed = patch.line_stats
        text, truncated = None, False
        if patches:
            text = "Binary files differ\n" if delta.is_binary else (patch.text or "")
            cap = min(PATCH_MAX_BYTES, budget)
            if len(text.encode()) > cap:
                text = text.encode()[:cap].decode(errors="ignore")
                truncated = truncated_any = True
            budget = max(0, budget - len(text.encode()))
        renamed = delta.status == DeltaStatus.RENAMED
        files.append(
            FileStat(
                path=delta.new_file.path,
                status=STATUS.get(delta.status, "modified"),
                insertions=added,
                deletions=removed,
                old_path=delta.old_file.path if renamed else None,
                patch=text,
                truncated=truncated,
            )
        )
    return DiffStat(
        files_changed=len(files),
        insertions=sum(f.insertions for f in files),
        deletions=sum(f.deletions for f in files),
        files=files,
        truncated=truncated_any,
    )


def _diff(path: Path, old: str | None, new: str | None) -> DiffStat:
    if old is None and new is None:
        return DiffStat(0, 0, 0)
    return diff_commits(repos.open_repo(path), old, new, patches=True)


def _first_parent(path: Path, sha: str | None) -> str | None:
    if sha is None:
        return None
    commit = repos.open_repo(path)[sha].peel(pygit2.Commit)
    return str(commit.parent_ids[0]) if commit.parent_ids else None


async def diff(
    session: AsyncSession, context: RepoContext, old: str | None, new: str | None
) -> tuple[str | None, str | None, DiffStat]:
    """The diff between two refs (`new` defaults to the default branch, `old` to `new`'s first
    parent), patches capped. Raises RefNotFound, RevisionNotFound, InvalidBranch."""
    new_sha = await resolve(session, context, new)
    if old is None or old == "":
        old_sha = await asyncio.to_thread(_first_parent, context.path, new_sha)
    else:
        old_sha = await resolve(session, context, old)
    return old_sha, new_sha, await asyncio.to_thread(_diff, context.path, old_sha, new_sha)


def _branches(path: Path, head: str | None) -> list[Branch]:
    found = [Branch(repos.DEFAULT_BRANCH, head, True)]
    if not (path / "HEAD").is_file():
        return found
    repo = repos.open_repo(path)
    for name in sorted(repo.branches.local):
        if name != repos.DEFAULT_BRANCH:
            found.append(Branch(name, repos.branch_head(repo, name), False))
    return found


async def list_branches(context: RepoContext) -> list[Branch]:
    """The branches, the default first (its head as the database records it)."""
    return await asyncio.to_thread(_branches, context.path, context.head)


def _ref_files(
    path: Path, sha: str | None, prefix: str, skip: int, limit: int | None
) -> tuple[list[tuple[repos.TreeFile, bytes]], int, datetime | None]:
    if sha is None:
        return [], 0, None
    repo = repos.open_repo(path)
    listed = repos.tree_files(repo, sha, prefix)
    chosen = listed[skip : skip + limit] if limit is not None else listed
    when = datetime.fromtimestamp(repo[sha].peel(pygit2.Commit).commit_time, UTC)
    return [(f, repos.blob(repo, f.oid).data) for f in chosen], len(listed), when


def _as_file(project_id: int, entry: repos.TreeFile, data: bytes, when: datetime) -> ProjectFile:
    return ProjectFile(
        project_id=project_id,
        path=entry.path,
        content=decode(data),
        language=None,
        size_bytes=entry.size,
        sha256=hashlib.sha256(data).hexdigest(),
        revision=None,
        created_at=when,
        updated_at=when,
    )


async def list_ref_files(
    session: AsyncSession, context: RepoContext, ref: str, prefix: str | None, params: PageParams
) -> tuple[list[ProjectFile], int]:
    """A page of the files of `ref` under `prefix`, by path. Raises RefNotFound, InvalidPath."""
    sha = await resolve(session, context, ref)
    found, total, when = await asyncio.to_thread(
        _ref_files, context.path, sha, normalize_prefix(prefix), params.skip, params.limit
    )
    return [_as_file(context.project.id, f, data, when or utcnow()) for f, data in found], total


async def read_ref_file(
    session: AsyncSession, context: RepoContext, ref: str, file: str
) -> ProjectFile:
    """The file `file` as it is on `ref`. Raises RefNotFound, FileNotFound, InvalidPath."""
    normalized = normalize_path(file)
    sha = await resolve(session, context, ref)
    found, _total, when = await asyncio.to_thread(
        _ref_files, context.path, sha, normalized, 0, None
    )
    for entry, data in found:
        if entry.path == normalized:
            return _as_file(context.project.id, entry, data, when or utcnow())
    raise FileNotFound(f"File '{normalized}' not found on '{ref}'")
