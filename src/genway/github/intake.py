"""GitHub's webhook deliveries: authenticated, deduplicated, logged, and turned into work.

The signature (`X-Hub-Signature-256`, an HMAC-SHA256 of the exact body) is checked in constant
time against the secret of the project the hook belongs to before the body is parsed. The
project is found by `X-GitHub-Hook-ID` (the hook Genway registered), else by
`X-GitHub-Hook-Installation-Target-ID` (the repository); a body no candidate's secret signed is
refused. A delivery id seen before is refused, so a replay changes nothing. What a delivery
asks for is recorded in the request's transaction: a validation (with its job), a pull request's
new state, a fix run; nothing slow happens before the answer.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from genway.config import Settings
from genway.errors import GenwayError, InvalidInput
from genway.github.models import GithubDelivery, PullRequest
from genway.github.pulls import record_pull
from genway.projects.models import Project
from genway.validation.fixes import queue_fix_run
from genway.validation.service import queue_validation

VALIDATE_ACTIONS = frozenset({"opened", "synchronize", "reopened", "ready_for_review"})
FIX_COMMAND = "/genway fix"
# Who may ask for a fix run by commenting: people with write access, as GitHub tells it.
TRUSTED_ASSOCIATIONS = frozenset({"OWNER", "MEMBER", "COLLABORATOR"})
MAX_CANDIDATES = 50


class DeliveryRefused(GenwayError):
    def __init__(self, status_code: int, code: str, detail: str) -> None:
        super().__init__(detail, status_code=status_code, extra={"code": code})


@dataclass(frozen=True)
class Headers:
    event: str
    delivery_id: str
    signature: str
    hook_id: int | None
    target_id: int | None


@dataclass(frozen=True)
class Outcome:
    delivery_id: str
    event: str
    action: str | None
    project_id: int
    outcome: str
    job_id: int | None = None
    validation_id: int | None = None


def read_headers(get: Any) -> Headers:
    """The delivery's headers. Raises DeliveryRefused (400/401) for missing or malformed ones."""
    event = (get("x-github-event") or "").strip()
    delivery = (get("x-github-delivery") or "").strip()
    signature = (get("x-hub-signature-256") or "").strip()
    if not event or not delivery:
        raise DeliveryRefused(
            400, "missing_headers", "X-GitHub-Event and X-GitHub-Delivery are required"
        )
    if len(event) > 64 or len(delivery) > 64:
        raise DeliveryRefused(
            400, "invalid_headers", "X-GitHub-Event or X-GitHub-Delivery is too long"
        )
    if not signature.startswith("sha256="):
        raise DeliveryRefused(
            401, "signature_missing", "X-Hub-Signature-256 (sha256=...) is required"
        )
    return Headers(
        event,
        delivery,
        signature,
        _int(get("x-github-hook-id")),
        _int(get("x-github-hook-installation-target-id")),
    )


def _int(value: str | None) -> int | None:
    if value is None or not value.strip().isdigit() or len(value.strip()) > 19:
        return None
    return int(value.strip())


def _signed_by(secret: str, body: bytes, signature: str) -> bool:
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), signature.encode())


async def _candidates(session: AsyncSession, headers: Headers) -> list[Project]:
    pinned = select(Project).where(Project.github_webhook_secret.is_not(None))
    if headers.hook_id is not None:
        found = (
            await session.scalars(pinned.where(Project.github_hook_id == headers.hook_id))
        ).all()
        if found:
            return list(found)
    if headers.target_id is not None:
        query = pinned.where(Project.github_repo_id == headers.target_id).limit(MAX_CANDIDATES)
        return list((await session.scalars(query)).all())
    return []


async def authenticate(
    session: AsyncSession, settings: Settings, headers: Headers, body: bytes
) -> Project:
    """The project whose webhook secret signed `body`. Raises DeliveryRefused."""
    candidates = await _candidates(session, headers)
    if not candidates:
        raise DeliveryRefused(
            404,
            "unknown_hook",
            "No pinned project has this webhook (X-GitHub-Hook-ID) or repository "
            "(X-GitHub-Hook-Installation-Target-ID)",
        )
    box = settings.secret_box
    for project in candidates:
        assert project.github_webhook_secret is not None
        if _signed_by(box.decrypt(project.github_webhook_secret), body, headers.signature):
            return project
    raise DeliveryRefused(401, "bad_signature", "The signature does not match the webhook's secret")


def parse(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DeliveryRefused(400, "invalid_payload", "The body is not JSON") from exc
    if not isinstance(payload, dict):
        raise DeliveryRefused(400, "invalid_payload", "The body is not a JSON object")
    return payload


def _check_repository(project: Project, payload: dict[str, Any]) -> None:
    repository = payload.get("repository")
    if not isinstance(repository, dict):
        return  # events without a repository (none of those Genway subscribes to carry none)
    same_id = project.github_repo_id is not None and repository.get("id") == project.github_repo_id
    name = str(repository.get("full_name") or "")
    same_name = project.github_repo is not None and name.lower() == project.github_repo.lower()
    if not (same_id or same_name):
        raise DeliveryRefused(
            404,
            "unknown_repository",
            f"Repository '{name}' is not the one project {project.id} is pinned to",
        )


async def receive(
    session: AsyncSession, settings: Settings, headers: Headers, body: bytes
) -> Outcome:
    """Authenticate, deduplicate, record and act on one delivery (in the caller's transaction).
    Raises DeliveryRefused."""
    project = await authenticate(session, settings, headers, body)
    payload = parse(body)
    _check_repository(project, payload)
    seen = await session.scalar(
        select(GithubDelivery.id).where(GithubDelivery.delivery_id == headers.delivery_id)
    )
    if seen is not None:
        raise DeliveryRefused(
            409, "duplicate_delivery", f"Delivery {headers.delivery_id} was received before"
        )
    action = payload.get("action") if isinstance(payload.get("action"), str) else None
    row = GithubDelivery(
        delivery_id=headers.delivery_id,
        org_id=project.org_id,
        project_id=project.id,
        event=headers.event,
        action=action,
        outcome="received",
    )
    session.add(row)
    try:
        await session.flush()
    except IntegrityError as exc:  # the same delivery, received twice at once: one wins
        raise DeliveryRefused(
            409, "duplicate_delivery", f"Delivery {headers.delivery_id} was received before"
        ) from exc
    outcome = await _act(session, settings, project, headers.event, action, payload)
    row.outcome = outcome.outcome
    row.job_id = outcome.job_id
    return Outcome(
        headers.delivery_id,
        headers.event,
        action,
        project.id,
        outcome.outcome,
        outcome.job_id,
        outcome.validation_id,
    )


@dataclass(frozen=True)
class _Did:
    outcome: str
    job_id: int | None = None
    validation_id: int | None = None


async def _act(
    session: AsyncSession,
    settings: Settings,
    project: Project,
    event: str,
    action: str | None,
    payload: dict[str, Any],
) -> _Did:
    if event == "ping":
        return _Did("pong")
    if event == "pull_request":
        return await _pull_request(session, settings, project, action, payload)
    if event == "issue_comment" and action == "created":
        return await _comment(session, settings, project, payload)
    if event == "check_suite" and action == "rerequested":
        return await _rerequested(session, settings, project, payload)
    return _Did("ignored")


def _pull_payload(payload: dict[str, Any]) -> dict[str, Any]:
    pull = payload.get("pull_request")
    if not isinstance(pull, dict) or not isinstance(pull.get("number"), int):
        raise InvalidInput("A pull_request delivery without its pull request")
    for side in ("head", "base"):
        if not isinstance(pull.get(side), dict):
            raise InvalidInput(f"A pull_request delivery without its {side}")
    return pull


async def _pull_request(
    session: AsyncSession,
    settings: Settings,
    project: Project,
    action: str | None,
    payload: dict[str, Any],
) -> _Did:
    pull = await record_pull(session, project, _pull_payload(payload))
    if action in VALIDATE_ACTIONS and pull.state == "open":
        if (payload.get("pull_request") or {}).get("draft"):
            return _Did("draft_not_validated")
        validation = await queue_validation(session, settings, project, pull)
        return _Did("validation_queued", validation.job_id, validation.id)
    if action == "closed":
        return _Did("pull_request_merged" if pull.state == "merged" else "pull_request_closed")
    return _Did("pull_request_updated")


async def _comment(
    session: AsyncSession, settings: Settings, project: Project, payload: dict[str, Any]
) -> _Did:
    issue = payload.get("issue") or {}
    comment = payload.get("comment") or {}
    text = str(comment.get("body") or "").strip()
    if not isinstance(issue, dict) or "pull_request" not in issue:
        return _Did("ignored")
    if not text.lower().startswith(FIX_COMMAND):
        return _Did("ignored")
    if comment.get("author_association") not in TRUSTED_ASSOCIATIONS:
        return _Did("fix_refused_untrusted_author")
    pull = await session.scalar(
        select(PullRequest).where(
            PullRequest.project_id == project.id, PullRequest.number == issue.get("number")
        )
    )
    if pull is None or pull.agent_run_id is None:
        return _Did("fix_refused_not_a_genway_pull_request")
    request = text[len(FIX_COMMAND) :].strip() or "Fix what the reviewers asked for."
    author = str((comment.get("user") or {}).get("login") or "a reviewer")
    job = await queue_fix_run(
        session,
        settings,
        project,
        pull,
        f"{author} asked on pull request #{pull.number}: {request}",
        counted=False,
    )
    return _Did("fix_run_queued", job.id)


async def _rerequested(
    session: AsyncSession, settings: Settings, project: Project, payload: dict[str, Any]
) -> _Did:
    suite = payload.get("check_suite") or {}
    sha = suite.get("head_sha") if isinstance(suite, dict) else None
    pull = await session.scalar(
        select(PullRequest).where(
            PullRequest.project_id == project.id,
            PullRequest.head_sha == sha,
            PullRequest.state == "open",
        )
    )
    if pull is None:
        return _Did("ignored")
    validation = await queue_validation(session, settings, project, pull)
    return _Did("validation_queued", validation.job_id, validation.id)
