"""A validation's snapshot: the pull request's head commit written into a fresh directory.

Each project keeps a bare mirror of its GitHub repository under
`<data_dir>/github/mirrors/<org>/<project>.git`; a validation fetches only what is new (the
pull request's head ref and the base branch) into it, so a large repository is cloned once, then
exports the head commit into `<data_dir>/github/snapshots/<id>`, removed when the validation
ends. Fetches into one mirror are serialized across processes by a lock file beside it.
"""

from __future__ import annotations

import asyncio
import fcntl
import secrets
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pygit2

from genway.config import Settings
from genway.github.client import GithubClient, GithubError
from genway.github.remote import fetch
from genway.projects.models import Project
from genway.projects.workspaces import export_commit


@dataclass(frozen=True)
class Snapshot:
    id: str
    path: Path


def mirror_path(settings: Settings, org_id: int, project_id: int) -> Path:
    return settings.data_dir / "github" / "mirrors" / str(int(org_id)) / f"{int(project_id)}.git"


def _open_mirror(path: Path) -> None:
    if not (path / "HEAD").is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        pygit2.init_repository(str(path), bare=True)


@asynccontextmanager
async def _mirror_lock(path: Path) -> AsyncIterator[None]:
    lock_path = path.with_suffix(".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    handle = await asyncio.to_thread(open, lock_path, "a")
    try:
        await asyncio.to_thread(fcntl.flock, handle.fileno(), fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        handle.close()


def _has_commit(path: Path, sha: str) -> bool:
    repo = pygit2.Repository(str(path))
    try:
        return isinstance(repo[sha].peel(pygit2.Commit), pygit2.Commit)
    except (KeyError, ValueError, pygit2.GitError):
        return False


async def update_mirror(
    settings: Settings, client: GithubClient, project: Project, pr_number: int, head_sha: str
) -> Path:
    """Fetch the pull request's head (and the base branch) into the project's mirror unless the
    commit is already there. Raises GithubError (fetch failed, or GitHub lacks the commit)."""
    assert project.github_clone_url is not None
    path = mirror_path(settings, project.org_id, project.id)
    async with _mirror_lock(path):
        await asyncio.to_thread(_open_mirror, path)
        if not await asyncio.to_thread(_has_commit, path, head_sha):
            base = project.github_default_branch or "main"
            specs = [
                f"+refs/pull/{pr_number}/head:refs/pull/{pr_number}/head",
                f"+refs/heads/{base}:refs/heads/{base}",
            ]
            await fetch(path, project.github_clone_url, await client.token(), specs)
            if not await asyncio.to_thread(_has_commit, path, head_sha):
                raise GithubError(
                    f"Commit {head_sha} of pull request #{pr_number} is not on GitHub any more "
                    "(the branch was force-pushed since)"
                )
    return path


@asynccontextmanager
async def snapshot(settings: Settings, mirror: Path, sha: str) -> AsyncIterator[Snapshot]:
    """A fresh directory holding commit `sha`, removed on exit."""
    snapshot_id = secrets.token_hex(8)
    root = settings.data_dir / "github" / "snapshots"
    await asyncio.to_thread(root.mkdir, parents=True, exist_ok=True)
    path = root / snapshot_id
    try:
        await export_commit(mirror, sha, path)
        yield Snapshot(snapshot_id, path)
    finally:
        await asyncio.to_thread(shutil.rmtree, path, True)
