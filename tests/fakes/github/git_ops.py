"""Git work on the fake's bare repositories, done in-process with pygit2 (libgit2).

Every function is synchronous and self-contained (it opens the repository itself), so the
server runs them with `asyncio.to_thread` and the test-facing helpers call them directly.
Writes to one repository are serialized by a per-repository lock.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pygit2
from pygit2.enums import FileMode, SortMode

_write_locks: defaultdict[Path, threading.Lock] = defaultdict(threading.Lock)

ZERO_SHA = "0" * 40


@dataclass(frozen=True)
class Person:
    """Who authors or commits: a name and an email."""

    name: str
    email: str

    def signature(self) -> pygit2.Signature:
        return pygit2.Signature(self.name, self.email)


def write_lock(path: Path) -> threading.Lock:
    """The lock serializing writes to the bare repository at `path`."""
    return _write_locks[path.resolve()]


def init_bare(path: Path, default_branch: str) -> None:
    """An empty bare repository whose HEAD names `default_branch`."""
    pygit2.init_repository(str(path), bare=True, initial_head=default_branch)


def commit_files(
    path: Path,
    branch: str,
    files: dict[str, str],
    message: str,
    author: Person,
    start_from: str | None = None,
) -> str:
    """Commit `files` (path -> text) on `branch`, starting it at `start_from` when new."""
    with write_lock(path):
        repo = pygit2.Repository(str(path))
        ref_name = f"refs/heads/{branch}"
        parent_ref = ref_name if ref_name in repo.references else None
        if parent_ref is None and start_from is not None:
            parent_ref = f"refs/heads/{start_from}"
            if parent_ref not in repo.references:
                parent_ref = None
        parents: list[pygit2.Oid] = []
        index = pygit2.Index()
        if parent_ref is not None:
            parent = repo.references[parent_ref].peel(pygit2.Commit)
            parents.append(parent.id)
            index.read_tree(parent.tree)
        for name, text in files.items():
            blob = repo.create_blob(text.encode())
            index.add(pygit2.IndexEntry(name, blob, FileMode.BLOB))
        tree = index.write_tree(repo)
        signature = author.signature()
        oid = repo.create_commit(None, signature, signature, message, tree, parents)
        repo.references.create(ref_name, oid, force=True)
        return str(oid)


def resolve(path: Path, ref: str) -> str | None:
    """The commit sha a branch name, full ref name or (abbreviated) sha points at."""
    repo = pygit2.Repository(str(path))
    for candidate in (f"refs/heads/{ref}", ref):
        if candidate.startswith("refs/") and candidate in repo.references:
            return str(repo.references[candidate].peel(pygit2.Commit).id)
    try:
        return str(repo.revparse_single(ref).peel(pygit2.Commit).id)
    except (KeyError, ValueError, pygit2.GitError):
        return None


def read_file(path: Path, ref: str, file_path: str) -> str | None:
    """A file's text at `ref`, or None when the ref or the file does not exist."""
    sha = resolve(path, ref)
    if sha is None:
        return None
    repo = pygit2.Repository(str(path))
    commit = repo.get(sha)
    assert isinstance(commit, pygit2.Commit)
    try:
        entry = commit.tree[file_path]
    except KeyError:
        return None
    blob = repo.get(entry.id)
    return blob.data.decode() if isinstance(blob, pygit2.Blob) else None


def refs(path: Path) -> dict[str, str]:
    """Every ref under refs/ with the sha it points at."""
    repo = pygit2.Repository(str(path))
    found: dict[str, str] = {}
    for name in repo.references:
        if name.startswith("refs/"):
            found[name] = str(repo.references[name].resolve().target)
    return found


def set_ref(path: Path, name: str, sha: str) -> None:
    """Point `name` at `sha` (as GitHub keeps `refs/pull/N/head`)."""
    with write_lock(path):
        repo = pygit2.Repository(str(path))
        repo.references.create(name, pygit2.Oid(hex=sha), force=True)


def commits_ahead(path: Path, base_sha: str, head_sha: str) -> list[str]:
    """Shas reachable from head but not from base, oldest first."""
    repo = pygit2.Repository(str(path))
    walker = repo.walk(pygit2.Oid(hex=head_sha), SortMode.TOPOLOGICAL | SortMode.REVERSE)
    walker.hide(pygit2.Oid(hex=base_sha))
    return [str(commit.id) for commit in walker]


def is_ancestor(path: Path, ancestor: str, descendant: str) -> bool:
    """Whether `ancestor` is reachable from `descendant` (a fast-forward)."""
    repo = pygit2.Repository(str(path))
    if ancestor == descendant:
        return True
    return bool(repo.descendant_of(pygit2.Oid(hex=descendant), pygit2.Oid(hex=ancestor)))


def can_merge(path: Path, base_sha: str, head_sha: str) -> bool:
    """Whether merging head into base succeeds without conflicts (really tried, in memory)."""
    repo = pygit2.Repository(str(path))
    index = repo.merge_commits(pygit2.Oid(hex=base_sha), pygit2.Oid(hex=head_sha))
    return index.conflicts is None


def diff_stats(path: Path, base_sha: str, head_sha: str) -> dict[str, int]:
    """GitHub's pull request counters: commits, additions, deletions, changed_files."""
    repo = pygit2.Repository(str(path))
    merge_base = repo.merge_base(pygit2.Oid(hex=base_sha), pygit2.Oid(hex=head_sha))
    head = repo.get(head_sha)
    assert isinstance(head, pygit2.Commit)
    if merge_base is None:
        diff = head.tree.diff_to_tree(swap=True)
    else:
        base = repo.get(merge_base)
        assert isinstance(base, pygit2.Commit)
        diff = repo.diff(base, head)
    stats = diff.stats
    return {
        "commits": len(commits_ahead(path, base_sha, head_sha)),
        "additions": stats.insertions,
        "deletions": stats.deletions,
        "changed_files": stats.files_changed,
    }


def merge_pull(
    path: Path,
    base_branch: str,
    head_sha: str,
    method: str,
    message: str,
    committer: Person,
) -> str | None:
    """Merge, squash or rebase `head_sha` onto `base_branch`; the new base sha, or None on a
    conflict. The base branch ref is moved like GitHub moves it."""
    with write_lock(path):
        repo = pygit2.Repository(str(path))
        ref_name = f"refs/heads/{base_branch}"
        base = repo.references[ref_name].peel(pygit2.Commit)
        head = repo.get(head_sha)
        assert isinstance(head, pygit2.Commit)
        signature = committer.signature()
        if method == "rebase":
            new_sha = _rebase(repo, base, head, signature)
        else:
            index = repo.merge_commits(base.id, head.id)
            if index.conflicts is not None:
                return None
            tree = index.write_tree(repo)
            parents = [base.id, head.id] if method == "merge" else [base.id]
            author = signature if method == "merge" else head.author
            new_sha = str(repo.create_commit(None, author, signature, message, tree, parents))
        if new_sha is None:
            return None
        repo.references.create(ref_name, pygit2.Oid(hex=new_sha), force=True)
        return new_sha


def _rebase(
    repo: pygit2.Repository, base: pygit2.Commit, head: pygit2.Commit, committer: pygit2.Signature
) -> str | None:
    walker = repo.walk(head.id, SortMode.TOPOLOGICAL | SortMode.REVERSE)
    walker.hide(base.id)
    current = base
    for commit in walker:
        if len(commit.parents) != 1:
            continue
        index = repo.merge_trees(commit.parents[0].tree, current.tree, commit.tree)
        if index.conflicts is not None:
            return None
        tree = index.write_tree(repo)
        oid = repo.create_commit(None, commit.author, committer, commit.message, tree, [current.id])
        rebased = repo.get(oid)
        assert isinstance(rebased, pygit2.Commit)
        current = rebased
    return str(current.id)


def commit_messages(path: Path, shas: list[str]) -> list[str]:
    """The messages of `shas`, in order."""
    repo = pygit2.Repository(str(path))
    messages: list[str] = []
    for sha in shas:
        commit = repo.get(sha)
        assert isinstance(commit, pygit2.Commit)
        messages.append(commit.message)
    return messages


def push_commits(path: Path, before: str, after: str, limit: int = 20) -> list[dict[str, Any]]:
    """The commits a push brought (oldest first, at most `limit`), as push payloads list them:
    sha, tree, message, timestamp, author, committer and the paths added/removed/modified."""
    repo = pygit2.Repository(str(path))
    walker = repo.walk(pygit2.Oid(hex=after), SortMode.TOPOLOGICAL | SortMode.REVERSE)
    if before != ZERO_SHA:
        walker.hide(pygit2.Oid(hex=before))
    found: list[dict[str, Any]] = []
    for commit in walker:
        added: list[str] = []
        removed: list[str] = []
        modified: list[str] = []
        if commit.parents:
            diff = repo.diff(commit.parents[0], commit)
        else:
            diff = commit.tree.diff_to_tree(swap=True)
        for delta in diff.deltas:
            status = delta.status_char()
            if status == "A":
                added.append(delta.new_file.path)
            elif status == "D":
                removed.append(delta.old_file.path)
            else:
                modified.append(delta.new_file.path)
        found.append(
            {
                "id": str(commit.id),
                "tree_id": str(commit.tree_id),
                "message": commit.message,
                "timestamp": commit.commit_time,
                "offset": commit.commit_time_offset,
                "author": {"name": commit.author.name, "email": commit.author.email},
                "committer": {"name": commit.committer.name, "email": commit.committer.email},
                "added": added,
                "removed": removed,
                "modified": modified,
            }
        )
    return found[-limit:]
