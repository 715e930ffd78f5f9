"""Each project's bare git repository: where it lives, opening it, locking it, and the small
blocking git operations the file API, the history endpoints and the worktrees are built from.

A repository is `<data_dir>/repos/<org_id>/<project_id>.git`, opened by that path only (never
discovered from a working directory, so nothing a worktree contains can redirect it). libgit2
runs no hooks and no filters that execute programs. Every function here blocks: call it
through `asyncio.to_thread`, holding `repo_lock` when it changes refs.
"""

from __future__ import annotations

import re
import shutil
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pygit2
from pygit2.enums import FileMode, ObjectType, RepositoryOpenFlag
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncSession

from genway.config import Settings
from genway.errors import Conflict, InvalidInput, NotFound

DEFAULT_BRANCH = "main"
HEADS = "refs/heads/"
SHA = re.compile(r"^[0-9a-f]{40}$")
_BRANCH_CHARS = re.compile(r"^[A-Za-z0-9._/\-]+$")
MAX_BRANCH_LENGTH = 200

_locks: dict[Path, threading.Lock] = {}
_locks_guard = threading.Lock()
_roots: weakref.WeakKeyDictionary[Engine, Path] = weakref.WeakKeyDictionary()


class InvalidBranch(InvalidInput):
    detail = "Invalid branch name"


class RefNotFound(NotFound):
    detail = "Unknown ref"


class RefMoved(Conflict):
    detail = "The branch moved while it was being updated; try again"


@dataclass(frozen=True)
class TreeFile:
    path: str
    oid: str
    mode: int
    size: int


def repos_root(settings: Settings) -> Path:
    return settings.data_dir / "repos"


def _engine(session: AsyncSession) -> Engine:
    return session.sync_session.get_bind().engine


def remember_root(session: AsyncSession, settings: Settings) -> Path:
    """Record where this database's repositories live, for callers that pass no settings."""
    root = repos_root(settings)
    _roots[_engine(session)] = root
    return root


def root_for(session: AsyncSession, settings: Settings | None) -> Path:
    """The repositories' directory: from `settings` when given, else the one recorded for the
    session's database by a request or worker with settings, else the environment's."""
    if settings is not None:
        return remember_root(session, settings)
    known = _roots.get(_engine(session))
    if known is not None:
        return known
    return repos_root(Settings())


def repo_path(root: Path, org_id: int, project_id: int) -> Path:
    return root / str(int(org_id)) / f"{int(project_id)}.git"


@contextmanager
def repo_lock(path: Path) -> Iterator[None]:
    """Serializes this process's writers of one repository (other processes: ref CAS)."""
    with _locks_guard:
        lock = _locks.setdefault(path, threading.Lock())
    with lock:
        yield


def open_repo(path: Path, *, create: bool = True) -> pygit2.Repository:
    """The bare repository at `path`, made (default branch `main`) if missing and `create`."""
    if not (path / "HEAD").is_file():
        if not create:
            raise RefNotFound("The project has no repository yet")
        path.parent.mkdir(parents=True, exist_ok=True)
        pygit2.init_repository(str(path), bare=True, initial_head=DEFAULT_BRANCH)
    flags = RepositoryOpenFlag.NO_SEARCH | RepositoryOpenFlag.BARE
    return pygit2.Repository(str(path), flags)


def delete_repo(path: Path) -> None:
    with repo_lock(path):
        shutil.rmtree(path, ignore_errors=True)


def check_branch(name: str) -> str:
    """`name` if it is a valid branch name (git's ref rules, a safe subset). Raises
    InvalidBranch."""
    problem = None
    if not name or len(name) > MAX_BRANCH_LENGTH:
        problem = f"must be 1 to {MAX_BRANCH_LENGTH} characters"
    elif not _BRANCH_CHARS.match(name):
        problem = "may only contain letters, digits, '.', '_', '-' and '/'"
    elif name.startswith(("-", "/", ".")) or name.endswith(("/", ".")):
        problem = "must not start with '-', '/' or '.' nor end with '/' or '.'"
    elif ".." in name or "//" in name or name in ("HEAD", "@"):
        problem = "must not contain '..' or '//' nor be 'HEAD'"
    elif any(part.startswith(".") or part.endswith(".lock") for part in name.split("/")):
        problem = "has a component starting with '.' or ending with '.lock'"
    if problem:
        raise InvalidBranch(f"Branch name '{name[:100]}' {problem}")
    return name


def branch_head(repo: pygit2.Repository, branch: str) -> str | None:
    ref = repo.references.get(HEADS + branch)
    return str(ref.resolve().target) if ref is not None else None


def commit_exists(repo: pygit2.Repository, sha: str) -> bool:
    try:
        return repo.get(sha) is not None and repo[sha].type == ObjectType.COMMIT
    except (KeyError, ValueError):
        return False


def cas_ref(repo: pygit2.Repository, branch: str, expected: str | None, new: str) -> None:
    """Point `branch` at `new` if it still points at `expected` (None: does not exist).
    Raises RefMoved."""
    name = HEADS + branch
    ref = repo.references.get(name)
    current = str(ref.target) if ref is not None else None
    if current != expected:
        raise RefMoved(f"Branch '{branch}' moved while it was being updated; try again")
    try:
        if ref is None:
            repo.references.create(name, new)
        else:
            # libgit2 writes the ref only if it still holds the value read above.
            ref.set_target(new)
    except (pygit2.GitError, ValueError, pygit2.AlreadyExistsError) as exc:
        raise RefMoved(f"Branch '{branch}' moved while it was being updated; try again") from exc


def build_tree(
    repo: pygit2.Repository,
    base_commit: str | None,
    changes: list[tuple[str, bytes | None, int]],
) -> str:
    """The tree of `base_commit` with `changes` applied: (path, content, mode) writes a blob,
    content None removes the path."""
    index = pygit2.Index()
    if base_commit is not None:
        index.read_tree(repo[base_commit].peel(pygit2.Tree))
    for path, content, mode in changes:
        if content is None:
            if path in index:
                index.remove(path)
            continue
        blob = repo.create_blob(content)
        index.add(pygit2.IndexEntry(path, blob, FileMode(mode)))
    return str(index.write_tree(repo))


def make_commit(
    repo: pygit2.Repository,
    tree: str,
    parents: list[str],
    author: pygit2.Signature,
    message: str,
) -> str:
    oid = repo.create_commit(None, author, author, message, pygit2.Oid(hex=tree), parents)
    return str(oid)


def signature(name: str, email: str, when: float | None = None) -> pygit2.Signature:
    if when is None:
        return pygit2.Signature(name, email)
    return pygit2.Signature(name, email, int(when), 0)


def blob(repo: pygit2.Repository, oid: str) -> pygit2.Blob:
    """The blob `oid`. Raises KeyError when it is not one."""
    found = repo[oid]
    if not isinstance(found, pygit2.Blob):
        raise KeyError(oid)
    return found


def blob_at(repo: pygit2.Repository, commit: str | None, path: str) -> bytes | None:
    """The content of `path` in `commit`, or None when it is absent or not a file."""
    if commit is None:
        return None
    tree = repo[commit].peel(pygit2.Tree)
    try:
        entry = tree[path]
    except KeyError:
        return None
    if entry.type != ObjectType.BLOB:
        return None
    return blob(repo, str(entry.id)).data


def tree_files(repo: pygit2.Repository, commit: str | None, prefix: str = "") -> list[TreeFile]:
    """Every file (blobs and symlinks) of `commit`'s tree under `prefix`, by path."""
    if commit is None:
        return []
    found: list[TreeFile] = []

    def walk(tree: pygit2.Tree, base: str) -> None:
        for entry in tree:
            path = f"{base}{entry.name}"
            if entry.type == ObjectType.TREE:
                walk(repo[entry.id].peel(pygit2.Tree), path + "/")
            elif entry.type == ObjectType.BLOB and path.startswith(prefix):
                size = blob(repo, str(entry.id)).size
                found.append(TreeFile(path, str(entry.id), entry.filemode, size))

    walk(repo[commit].peel(pygit2.Tree), "")
    return sorted(found, key=lambda f: f.path)


FILE_MODES = (FileMode.BLOB, FileMode.BLOB_EXECUTABLE, FileMode.LINK)
