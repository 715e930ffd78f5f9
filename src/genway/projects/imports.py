"""Bringing an existing git repository into an empty project: a clone of a local path (only
under `GENWAY_GIT_IMPORT_DIRS`) or of an `https://` URL, or an uploaded git bundle.

The source's default branch (what its HEAD names; else `main`, `master`, the first branch)
becomes the project's `main`; its other branches keep their names (a non-default branch called
`main` is skipped). The commits of `main`'s first-parent chain get revision numbers 1..N, oldest
first; the files each of them changed are recorded as for any revision, and the size limits
apply to every file and to the total. The `main` ref moves last, as for every write.
"""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote, urlparse

import pygit2
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from genway.config import Settings
from genway.errors import Conflict, GenwayError, InvalidInput, NotFound
from genway.projects import bundle, commits, repos
from genway.projects.files import SizeLimits
from genway.projects.merges import changed_files, sync_index
from genway.projects.models import projects_table

FETCH_PREFIX = "refs/genway-import/"
CLONE_TIMEOUT_MS = 30_000


class CloneFailed(GenwayError):
    status_code = 502
    detail = "The repository could not be cloned"


class ProjectNotEmpty(Conflict):
    detail = "Only a project without revisions can import a repository"


def is_local(url: str) -> bool:
    return url.startswith("file://") or url.startswith("/")


def import_dirs(settings: Settings) -> list[Path]:
    return [Path(p.strip()).resolve() for p in settings.git_import_dirs.split(",") if p.strip()]


def local_source(settings: Settings, url: str) -> Path:
    """The real path of a local repository allowed by `git_import_dirs`. Raises InvalidInput."""
    raw = unquote(urlparse(url).path) if url.startswith("file://") else url
    path = Path(os.path.realpath(raw))
    allowed = import_dirs(settings)
    data_dir = settings.data_dir.resolve()
    inside = any(path == d or d in path.parents for d in allowed)
    if not allowed or not inside or path == data_dir or data_dir in path.parents:
        raise InvalidInput(
            "Importing a local repository needs its path under one of the directories of the "
            "GENWAY_GIT_IMPORT_DIRS setting (git_import_dirs)"
            + ("" if allowed else ", which is empty: local import is disabled")
        )
    if not path.is_dir():
        raise InvalidInput(f"No repository at '{raw}'")
    return path


def _fetch(path: Path, url: str) -> tuple[dict[str, str], str | None]:
    pygit2.settings.server_connect_timeout = CLONE_TIMEOUT_MS
    pygit2.settings.server_timeout = CLONE_TIMEOUT_MS
    with repos.repo_lock(path):
        repo = repos.open_repo(path)
        remote = repo.remotes.create_anonymous(url)
        try:
            heads = remote.list_heads()
            remote.fetch([f"+refs/heads/*:{FETCH_PREFIX}*"])
        except (pygit2.GitError, KeyError, ValueError) as exc:
            raise CloneFailed(f"Cloning '{url}' failed: {exc}") from exc
        head = next((h.symref_target for h in heads if h.name == "HEAD" and h.symref_target), None)
        branches = {}
        for name in list(repo.references):
            if name.startswith(FETCH_PREFIX):
                branches[name[len(FETCH_PREFIX) :]] = str(repo.references[name].target)
                repo.references.delete(name)
        default = head[len(repos.HEADS) :] if head and head.startswith(repos.HEADS) else None
        return branches, default


def _unbundle(path: Path, data: bytes) -> tuple[dict[str, str], str | None]:
    parsed = bundle.parse(data)
    with repos.repo_lock(path):
        repo = repos.open_repo(path)
        missing = [sha for sha in parsed.prerequisites if not repos.commit_exists(repo, sha)]
        if missing:
            raise bundle.InvalidBundle(
                "The bundle is incremental (it needs commits the project does not have); "
                "create it with `git bundle create repo.bundle --all`"
            )
        bundle.write_pack(repo, parsed.pack)
        branches = {
            name[len(repos.HEADS) :]: sha
            for name, sha in parsed.refs
            if name.startswith(repos.HEADS) and repos.commit_exists(repo, sha)
        }
        head = next((sha for name, sha in parsed.refs if name == "HEAD"), None)
        default = next((b for b, sha in sorted(branches.items()) if sha == head), None)
        return branches, default


def _pick_default(branches: dict[str, str], default: str | None) -> str | None:
    if default in branches:
        return default
    return next(
        (b for b in ("main", "master") if b in branches), next(iter(sorted(branches)), None)
    )


def _chain(path: Path, tip: str) -> list[tuple[str, str, datetime, list]]:  # type: ignore[type-arg]
    repo = repos.open_repo(path)
    chain = []
    commit: pygit2.Commit | None = repo[tip].peel(pygit2.Commit)
    previous: str | None = None
    ordered: list[pygit2.Commit] = []
    while commit is not None:
        ordered.append(commit)
        commit = commit.parents[0] if commit.parents else None
    for commit in reversed(ordered):
        sha = str(commit.id)
        when = datetime.fromtimestamp(commit.commit_time, UTC)
        chain.append((sha, commit.message, when, changed_files(repo, previous, sha)))
        previous = sha
    return chain


def _set_refs(path: Path, branches: dict[str, str], default: str, tip: str) -> None:
    with repos.repo_lock(path):
        repo = repos.open_repo(path)
        for name, sha in branches.items():
            if name in (default, repos.DEFAULT_BRANCH):
                continue
            try:
                repos.check_branch(name)
            except InvalidInput:
                continue
            repos.cas_ref(repo, name, repos.branch_head(repo, name), sha)
        commits.move_main(repo, repos.branch_head(repo, repos.DEFAULT_BRANCH), tip)


async def _adopt(
    session: AsyncSession,
    path: Path,
    org_id: int,
    project_id: int,
    found: tuple[dict[str, str], str | None],
    limits: SizeLimits,
    author_id: int | None,
) -> int:
    projects = projects_table
    head = await session.scalar(
        update(projects)
        .where(projects.c.id == project_id, projects.c.org_id == org_id)
        .values(head_revision=projects.c.head_revision)
        .returning(projects.c.head_revision)
    )
    if head is None:
        raise NotFound(f"Project {project_id} not found")
    if head:
        raise ProjectNotEmpty(f"Project {project_id} already has {head} revisions")
    branches, default = found
    chosen = _pick_default(branches, default)
    if chosen is None:
        raise InvalidInput("The repository has no branches to import")
    chain = await asyncio.to_thread(_chain, path, branches[chosen])
    for number, (sha, message, when, changes) in enumerate(chain, start=1):
        await sync_index(
            session,
            project_id,
            number,
            changes,
            limits,
            author_id=None,
            job_id=None,
            message=message,
            when=when,
        )
        commits.record(
            session,
            project_id,
            number,
            sha,
            author_id=author_id,
            job_id=None,
            message=message,
            created_at=when,
        )
    await session.execute(
        update(projects).where(projects.c.id == project_id).values(head_revision=len(chain))
    )
    await session.flush()
    await asyncio.to_thread(_set_refs, path, branches, chosen, chain[-1][0])
    return len(chain)


async def import_repository(
    session: AsyncSession,
    settings: Settings,
    org_id: int,
    project_id: int,
    *,
    url: str | None = None,
    bundle_data: bytes | None = None,
    limits: SizeLimits,
    author_id: int | None = None,
) -> int:
    """Import a repository (a clone of `url`, or a bundle) into the empty project; returns its
    number of revisions. Raises InvalidInput, InvalidBundle, CloneFailed, ProjectNotEmpty,
    PayloadTooLarge."""
    root = repos.root_for(session, settings)
    path = repos.repo_path(root, org_id, project_id)
    if url is not None:
        source = str(local_source(settings, url)) if is_local(url) else url
        if not is_local(url) and not url.startswith("https://"):
            raise InvalidInput("Only https:// URLs and local paths can be cloned")
        found = await asyncio.to_thread(_fetch, path, source)
    else:
        found = await asyncio.to_thread(_unbundle, path, bundle_data or b"")
    return await _adopt(session, path, org_id, project_id, found, limits, author_id)
