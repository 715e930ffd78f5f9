"""Git over HTTPS with GitHub, through libgit2 (pygit2): fetch refs into a bare repository and
push a branch. The token travels as HTTP Basic credentials (`x-access-token:<token>`, as GitHub
documents for both token kinds), never in a URL, a config file or a log line."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pygit2

from genway.github.client import GithubError

USERNAME = "x-access-token"


class _Callbacks(pygit2.RemoteCallbacks):
    def __init__(self, token: str) -> None:
        super().__init__(credentials=pygit2.UserPass(USERNAME, token))
        self.rejected: dict[str, str] = {}

    def push_update_reference(self, refname: str, message: str | None) -> None:
        if message:
            self.rejected[refname] = message


def _scrub(message: str, token: str) -> str:
    return message.replace(token, "***") if token else message


def _fetch(repo_path: Path, url: str, token: str, refspecs: list[str]) -> None:
    repo = pygit2.Repository(str(repo_path))
    remote = repo.remotes.create_anonymous(url)
    try:
        remote.fetch(refspecs, callbacks=_Callbacks(token), prune=pygit2.enums.FetchPrune.NO_PRUNE)
    except (pygit2.GitError, OSError) as exc:
        raise GithubError(f"Fetching from {url} failed: {_scrub(str(exc), token)}") from exc


def _push(repo_path: Path, url: str, token: str, refspecs: list[str]) -> None:
    repo = pygit2.Repository(str(repo_path))
    remote = repo.remotes.create_anonymous(url)
    callbacks = _Callbacks(token)
    try:
        remote.push(refspecs, callbacks=callbacks)
    except (pygit2.GitError, OSError) as exc:
        raise GithubError(f"Pushing to {url} failed: {_scrub(str(exc), token)}") from exc
    if callbacks.rejected:
        reasons = "; ".join(f"{ref}: {why}" for ref, why in callbacks.rejected.items())
        raise GithubError(f"GitHub refused the push ({reasons})", status=409)


async def fetch(repo_path: Path, url: str, token: str, refspecs: list[str]) -> None:
    """Fetch `refspecs` from `url` into the bare repository at `repo_path`. Raises GithubError."""
    await asyncio.to_thread(_fetch, repo_path, url, token, refspecs)


async def push(repo_path: Path, url: str, token: str, refspecs: list[str]) -> None:
    """Push `refspecs` (no force unless a spec says `+`). Raises GithubError when the transfer
    fails or GitHub rejects a reference (e.g. not a fast-forward)."""
    await asyncio.to_thread(_push, repo_path, url, token, refspecs)


def remote_head(repo: pygit2.Repository, name: str) -> str | None:
    """The sha a fetched remote-tracking ref points at, if it exists."""
    ref = repo.references.get(name)
    return str(ref.resolve().target) if ref is not None else None
