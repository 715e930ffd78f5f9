"""Agent runs on a pinned project: start from GitHub's code, and hand the work back as a pull
request.

Before the run, the default branch and the run's branch are fetched from GitHub into the
project's repository (as `refs/remotes/github/*`), and the run's branch is put where GitHub has
it (a fix run continues the pull request's head). After it, the branch is pushed and a pull
request opened for it, or the open one updated; the pull request is recorded and announced
(`pr.created`, `pr.updated`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from genway.config import Settings
from genway.db import utcnow
from genway.github.client import GithubClient
from genway.github.models import PullRequest
from genway.github.remote import fetch, push, remote_head
from genway.orgevents.emit import emit
from genway.orgevents.types import PR_CREATED, PR_UPDATED
from genway.projects import repos
from genway.projects.models import Project

REMOTE = "refs/remotes/github/"
_pulls: Table = PullRequest.__table__  # type: ignore[assignment]
_INSERT_PULL = {
    dialect.__name__.rsplit(".", 1)[-1]: dialect.insert(_pulls)
    .on_conflict_do_nothing(index_elements=[_pulls.c.project_id, _pulls.c.number])
    .returning(_pulls.c.id)
    for dialect in (postgresql, sqlite)
}


@dataclass(frozen=True)
class Published:
    number: int
    url: str
    title: str
    created: bool
    head_sha: str


async def sync_branch(
    settings: Settings, client: GithubClient, project: Project, branch: str
) -> None:
    """Fetch GitHub's default branch and `branch` into the project's repository, and point the
    local `branch` at GitHub's (or, when GitHub has no such branch and the local one does not
    exist, at GitHub's default branch). Raises GithubError."""
    assert project.github_clone_url is not None
    default = project.github_default_branch or repos.DEFAULT_BRANCH
    path = repos.repo_path(repos.repos_root(settings), project.org_id, project.id)
    await asyncio.to_thread(repos.open_repo, path)
    token = await client.token()
    specs = [f"+refs/heads/{default}:{REMOTE}{default}"]
    if branch != default:
        specs.append(f"+refs/heads/{branch}:{REMOTE}{branch}")
    await fetch(path, project.github_clone_url, token, specs)
    await asyncio.to_thread(_place_branch, path, branch, default)


def _place_branch(path: Any, branch: str, default: str) -> None:
    with repos.repo_lock(path):
        repo = repos.open_repo(path, create=False)
        local = repos.branch_head(repo, branch)
        target = remote_head(repo, REMOTE + branch)
        if target is None and local is None:
            target = remote_head(repo, REMOTE + default)
        if target is not None and target != local:
            repos.cas_ref(repo, branch, local, target)


async def publish(
    session: AsyncSession,
    settings: Settings,
    client: GithubClient,
    project: Project,
    *,
    branch: str,
    run_id: int,
    title: str,
    body: str,
) -> Published:
    """Push `branch` to GitHub and open its pull request (or find the open one), recorded in
    the caller's transaction with its event. Raises GithubError."""
    assert project.github_repo is not None and project.github_clone_url is not None
    path = repos.repo_path(repos.repos_root(settings), project.org_id, project.id)
    token = await client.token()
    await push(path, project.github_clone_url, token, [f"refs/heads/{branch}:refs/heads/{branch}"])
    base = project.github_default_branch or repos.DEFAULT_BRANCH
    found = await client.find_open_pull(project.github_repo, branch)
    created = found is None
    pull = found or await client.open_pull(
        project.github_repo, head=branch, base=base, title=title, body=body
    )
    row = await record_pull(session, project, pull, agent_run_id=run_id if created else None)
    return Published(row.number, row.url, row.title, created, row.head_sha)


async def record_pull(
    session: AsyncSession,
    project: Project,
    pull: dict[str, Any],
    *,
    agent_run_id: int | None = None,
) -> PullRequest:
    """Insert or update the pull request from GitHub's representation; emits `pr.created` for
    a new one and `pr.updated` when something changed.

    The agent run that opened it and GitHub's `opened` delivery race to record it: the insert
    is `ON CONFLICT DO NOTHING` (the loser waits for the winner's commit, then updates), and
    whichever comes second fills in what the first did not know (`agent_run_id`)."""
    number = int(pull["number"])
    state = "merged" if pull.get("merged") or pull.get("merged_at") else str(pull["state"])
    fields: dict[str, Any] = {
        "github_id": int(pull["id"]),
        "title": str(pull.get("title") or "")[:500],
        "url": str(pull.get("html_url") or ""),
        "head_branch": str(pull["head"]["ref"]),
        "head_sha": str(pull["head"]["sha"]),
        "base_branch": str(pull["base"]["ref"]),
        "state": state,
        "from_fork": _from_fork(pull),
    }
    now = utcnow()
    insert = _INSERT_PULL[session.bind.dialect.name]  # type: ignore[union-attr]
    inserted = await session.scalar(
        insert,
        {
            "org_id": project.org_id,
            "project_id": project.id,
            "number": number,
            "agent_run_id": agent_run_id,
            "fix_attempts": 0,
            "created_at": now,
            "updated_at": now,
            **fields,
        },
    )
    row = await session.scalar(
        select(PullRequest)
        .where(PullRequest.project_id == project.id, PullRequest.number == number)
        .execution_options(populate_existing=True)
    )
    assert row is not None
    if inserted is not None:
        await emit(session, project.org_id, PR_CREATED, pull_event(row))
        return row
    changed = {k: v for k, v in fields.items() if getattr(row, k) != v}
    if row.state == "merged":
        changed.pop("state", None)  # a merged pull request stays merged
    if agent_run_id is not None and row.agent_run_id is None:
        changed["agent_run_id"] = agent_run_id
    if changed:
        for key, value in changed.items():
            setattr(row, key, value)
        row.updated_at = now
        await session.flush()
        await emit(session, project.org_id, PR_UPDATED, pull_event(row, sorted(changed)))
    return row


def _from_fork(pull: dict[str, Any]) -> bool:
    head = (pull.get("head") or {}).get("repo") or {}
    base = (pull.get("base") or {}).get("repo") or {}
    if not head:
        return True  # the fork was deleted: nothing says it is trusted
    return head.get("id") != base.get("id")


def pull_event(row: PullRequest, changed: list[str] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "project_id": row.project_id,
        "pull_request_id": row.id,
        "number": row.number,
        "title": row.title,
        "url": row.url,
        "head_branch": row.head_branch,
        "head_sha": row.head_sha,
        "state": row.state,
        "agent_run_id": row.agent_run_id,
    }
    if changed is not None:
        data["changed"] = changed
    return data
