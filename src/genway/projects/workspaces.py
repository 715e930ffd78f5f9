"""Worktrees for the code agent: a branch of a project checked out into a plain directory that
a sandbox mounts read-write, and its changes committed back onto that branch.

The directory holds only files: no `.git`. Whatever runs in it is untrusted, so the repository
is always opened by its known path under the data directory (derived from where Genway put the
worktree, never from the directory's contents), `.git` entries anywhere in it are ignored, files
are read through directory descriptors with O_NOFOLLOW (a symlink is stored as a symlink, never
followed, even if swapped in mid-scan), and libgit2 runs no hooks. The branch moves by a
compare-and-swap from the commit this worktree last saw (kept beside it, outside the mount).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

import pygit2
from pygit2.enums import FileMode, ObjectType

from genway.config import Settings
from genway.errors import InvalidInput
from genway.projects import repos
from genway.projects.gitignore import IgnoreRules
from genway.projects.history import DiffStat, FileStat, diff_commits

__all__ = [
    "DiffStat",
    "FileStat",
    "Worktree",
    "commit_worktree",
    "diff_stat",
    "export_commit",
    "open_worktree",
    "remove_worktree",
]

FILE_MAX_BYTES = 100 * 1024 * 1024
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW


@dataclass(frozen=True)
class Worktree:
    path: Path
    branch: str
    base_commit: str | None


def _worktrees_root(settings: Settings) -> Path:
    return (settings.data_dir / "worktrees").resolve()


def _locate(settings: Settings, worktree: Worktree) -> tuple[int, int, Path]:
    """(org id, project id, the head-file) of a worktree Genway made. Raises InvalidInput."""
    path = Path(os.path.abspath(worktree.path))
    project_dir = Path(os.path.realpath(path.parent))
    org_dir = project_dir.parent
    if org_dir.parent != _worktrees_root(settings):
        raise InvalidInput("Not a worktree of this Genway")
    try:
        return int(org_dir.name), int(project_dir.name), project_dir / f"{path.name}.head"
    except ValueError as exc:
        raise InvalidInput("Not a worktree of this Genway") from exc


def _safe_name(name: str) -> bool:
    return (
        name not in ("", ".", "..")
        and "/" not in name
        and "\x00" not in name
        and (name.lower() != ".git")
    )


def _checkout(repo: pygit2.Repository, tree: pygit2.Tree, dir_fd: int) -> None:
    for entry in tree:
        name = entry.name
        if name is None or not _safe_name(name):
            continue
        if entry.type == ObjectType.TREE:
            os.mkdir(name, 0o755, dir_fd=dir_fd)
            child = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
            try:
                _checkout(repo, repo[entry.id].peel(pygit2.Tree), child)
            finally:
                os.close(child)
        elif entry.filemode == FileMode.LINK:
            os.symlink(os.fsdecode(repos.blob(repo, str(entry.id)).data), name, dir_fd=dir_fd)
        elif entry.type == ObjectType.BLOB:
            mode = 0o755 if entry.filemode == FileMode.BLOB_EXECUTABLE else 0o644
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
            fd = os.open(name, flags, mode, dir_fd=dir_fd)
            with os.fdopen(fd, "wb") as handle:
                handle.write(repos.blob(repo, str(entry.id)).data)


def _open(
    settings: Settings, org_id: int, project_id: int, branch: str, start: str | None
) -> Worktree:
    path = repos.repo_path(repos.repos_root(settings), org_id, project_id)
    with repos.repo_lock(path):
        repo = repos.open_repo(path)
        head = repos.branch_head(repo, branch)
        if head is None:
            head = _start_point(repo, start)
            if head is not None:
                repos.cas_ref(repo, branch, None, head)
        parent = _worktrees_root(settings) / str(org_id) / str(project_id)
        parent.mkdir(parents=True, exist_ok=True)
        target = parent / f"{branch.replace('/', '-')}-{secrets.token_hex(6)}"
        target.mkdir(mode=0o755)
        if head is not None:
            fd = os.open(target, _DIR_FLAGS)
            try:
                _checkout(repo, repo[head].peel(pygit2.Tree), fd)
            finally:
                os.close(fd)
        (parent / f"{target.name}.head").write_text(head or "")
        return Worktree(target, branch, head)


def _start_point(repo: pygit2.Repository, start: str | None) -> str | None:
    if start is None:
        return repos.branch_head(repo, repos.DEFAULT_BRANCH)
    if repos.SHA.match(start):
        if not repos.commit_exists(repo, start):
            raise repos.RefNotFound(f"Unknown ref '{start}': no such commit in this project")
        return start
    sha = repos.branch_head(repo, repos.check_branch(start))
    if sha is None:
        raise repos.RefNotFound(f"Unknown ref '{start}': no such branch in this project")
    return sha


async def open_worktree(
    settings: Settings, org_id: int, project_id: int, branch: str, *, start_point: str | None = None
) -> Worktree:
    """Check `branch` out into a fresh directory under `<data_dir>/worktrees/`, creating it from
    `start_point` (a branch or sha; default: the default branch's head) if it does not exist.
    Raises InvalidBranch, RefNotFound."""
    repos.check_branch(branch)
    return await asyncio.to_thread(_open, settings, org_id, project_id, branch, start_point)


def _export(repo_path: Path, sha: str, target: Path) -> None:
    repo = pygit2.Repository(str(repo_path))
    tree = repo[sha].peel(pygit2.Tree)
    target.mkdir(mode=0o755)
    fd = os.open(target, _DIR_FLAGS)
    try:
        _checkout(repo, tree, fd)
    finally:
        os.close(fd)


async def export_commit(repo_path: Path, sha: str, target: Path) -> None:
    """Write the files of commit `sha` of the bare repository at `repo_path` into the new
    directory `target`, as a worktree is written (no `.git`, symlinks kept as symlinks)."""
    await asyncio.to_thread(_export, repo_path, sha, target)


def _read_link(name: str, dir_fd: int) -> bytes:
    return os.readlink(name.encode(), dir_fd=dir_fd)


def _read_file(name: str, dir_fd: int) -> tuple[bytes, FileMode] | None:
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
    except OSError:
        return None  # replaced by a symlink or removed since it was listed
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_size > FILE_MAX_BYTES:
            return None
        executable = info.st_mode & 0o100
        return handle.read(), FileMode.BLOB_EXECUTABLE if executable else FileMode.BLOB


def _stage(
    repo: pygit2.Repository, index: pygit2.Index, dir_fd: int, base: str, rules: IgnoreRules
) -> None:
    rules = rules.with_file(_read_gitignore(dir_fd), base)
    with os.scandir(dir_fd) as entries:
        names = sorted((e.name, e) for e in entries)
    for name, entry in names:
        if not _safe_name(name):
            continue
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            continue
        path = base + name
        if entry.is_symlink():
            if not rules.ignored(path, is_dir=False):
                blob = repo.create_blob(_read_link(name, dir_fd))
                index.add(pygit2.IndexEntry(path, blob, FileMode.LINK))
        elif entry.is_dir(follow_symlinks=False):
            if rules.ignored(path, is_dir=True):
                continue
            try:
                child = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
            except OSError:
                continue
            try:
                _stage(repo, index, child, path + "/", rules)
            finally:
                os.close(child)
        elif entry.is_file(follow_symlinks=False) and not rules.ignored(path, is_dir=False):
            read = _read_file(name, dir_fd)
            if read is not None:
                index.add(pygit2.IndexEntry(path, repo.create_blob(read[0]), read[1]))


def _read_gitignore(dir_fd: int) -> str:
    read = _read_file(".gitignore", dir_fd)
    return read[0][: 256 * 1024].decode("utf-8", errors="replace") if read else ""


def _commit(
    settings: Settings, worktree: Worktree, message: str, author: pygit2.Signature
) -> str | None:
    org_id, project_id, head_file = _locate(settings, worktree)
    path = repos.repo_path(repos.repos_root(settings), org_id, project_id)
    with repos.repo_lock(path):
        repo = repos.open_repo(path, create=False)
        seen = (
            head_file.read_text().strip() if head_file.is_file() else (worktree.base_commit or "")
        )
        expected = seen or None
        index = pygit2.Index()
        fd = os.open(worktree.path, _DIR_FLAGS)
        try:
            _stage(repo, index, fd, "", IgnoreRules())
        finally:
            os.close(fd)
        tree = str(index.write_tree(repo))
        if expected is not None and str(repo[expected].peel(pygit2.Tree).id) == tree:
            return None
        if expected is None and not len(index):
            return None
        sha = repos.make_commit(repo, tree, [expected] if expected else [], author, message)
        repos.cas_ref(repo, worktree.branch, expected, sha)
        head_file.write_text(sha)
        return sha


async def commit_worktree(
    settings: Settings, worktree: Worktree, message: str, *, author_name: str, author_email: str
) -> str | None:
    """Commit every change in the worktree (respecting .gitignore) on its branch; the new sha,
    or None when nothing changed. Raises RefMoved (the branch moved elsewhere), InvalidInput."""
    repos.check_branch(worktree.branch)
    author = pygit2.Signature(author_name, author_email)
    return await asyncio.to_thread(_commit, settings, worktree, message, author)


def _stat(settings: Settings, org_id: int, project_id: int, old: str, new: str) -> DiffStat:
    path = repos.repo_path(repos.repos_root(settings), org_id, project_id)
    repo = repos.open_repo(path)
    old_sha, new_sha = _start_point(repo, old), _start_point(repo, new)
    stat_ = diff_commits(repo, old_sha, new_sha, patches=False)
    files = [FileStat(f.path, f.status, f.insertions, f.deletions, f.old_path) for f in stat_.files]
    return DiffStat(stat_.files_changed, stat_.insertions, stat_.deletions, files)


async def diff_stat(
    settings: Settings, org_id: int, project_id: int, from_ref: str, to_ref: str
) -> DiffStat:
    """Files changed, insertions and deletions between two branches or shas. Raises RefNotFound,
    InvalidBranch."""
    return await asyncio.to_thread(_stat, settings, org_id, project_id, from_ref, to_ref)


def _remove(settings: Settings, worktree: Worktree) -> None:
    _org, _project, head_file = _locate(settings, worktree)
    shutil.rmtree(worktree.path, ignore_errors=True)
    head_file.unlink(missing_ok=True)


async def remove_worktree(settings: Settings, worktree: Worktree) -> None:
    """Delete the worktree's directory (the branch and its commits stay)."""
    await asyncio.to_thread(_remove, settings, worktree)
