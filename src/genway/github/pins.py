"""Pinning a project to a GitHub repository: the repository is read through the organization's
connection, a webhook with a generated secret is registered on it (events `pull_request`,
`push`, `check_suite`, `issue_comment`), and unpinning removes it."""

from __future__ import annotations

import secrets

from sqlalchemy.ext.asyncio import AsyncSession

from genway.config import Settings
from genway.errors import Conflict
from genway.github.connections import client_for
from genway.projects.models import Project

WEBHOOK_PATH = "/api/v1/webhooks/github"


def webhook_url(settings: Settings, request_base: str) -> str:
    base = (settings.public_url or request_base).rstrip("/")
    return f"{base}{WEBHOOK_PATH}"


async def pin_project(
    session: AsyncSession,
    settings: Settings,
    project: Project,
    repository: str,
    *,
    request_base: str,
    user_id: int | None,
) -> None:
    """Pin `project` to `repository` (owner/name), replacing an earlier pin. Raises
    GithubNotConnected, GithubError (no such repository, no admin access to its hooks)."""
    client = await client_for(session, settings, project.org_id)
    repo = await client.repository(repository)
    full_name = str(repo["full_name"])
    if project.github_repo is not None and project.github_repo.lower() == full_name.lower():
        return
    if project.github_hook_id is not None:
        await unpin_project(session, settings, project)
    secret = secrets.token_urlsafe(32)
    hook_id = await client.create_hook(full_name, webhook_url(settings, request_base), secret)
    project.github_repo = full_name
    project.github_repo_id = int(repo["id"])
    project.github_default_branch = str(repo.get("default_branch") or "main")
    project.github_clone_url = str(repo["clone_url"])
    project.github_hook_id = hook_id
    project.github_webhook_secret = settings.secret_box.encrypt(secret)
    project.github_pinned_by = user_id
    await session.flush()


async def unpin_project(session: AsyncSession, settings: Settings, project: Project) -> None:
    """Remove the webhook (one already deleted on GitHub is fine) and forget the pin."""
    if project.github_repo is None:
        return
    if project.github_hook_id is not None:
        client = await client_for(session, settings, project.org_id)
        await client.delete_hook(project.github_repo, project.github_hook_id)
    project.github_repo = None
    project.github_repo_id = None
    project.github_hook_id = None
    project.github_webhook_secret = None
    project.github_default_branch = None
    project.github_clone_url = None
    project.github_pinned_by = None
    await session.flush()


def require_pinned(project: Project) -> str:
    """The pinned repository. Raises Conflict when the project is not pinned."""
    if project.github_repo is None:
        raise Conflict(
            f"Project {project.id} is not pinned to a GitHub repository",
            extra={"code": "project_not_pinned"},
        )
    return project.github_repo


async def apply_pin_change(
    session: AsyncSession,
    settings: Settings,
    project: Project,
    sent: dict[str, object],
    *,
    request_base: str,
    user_id: int | None,
) -> None:
    """What a project request's `github_repo` asks for, when it was sent: pin to it, or unpin
    (null). Raises GithubNotConnected, GithubError."""
    if "github_repo" not in sent:
        return
    repository = sent["github_repo"]
    if repository is None:
        await unpin_project(session, settings, project)
    else:
        await pin_project(
            session,
            settings,
            project,
            str(repository),
            request_base=request_base,
            user_id=user_id,
        )
