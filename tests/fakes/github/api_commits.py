"""REST endpoints that report on commits and conversations: commit statuses, check runs
(installation tokens only, as on GitHub) and issue comments."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any

from tests.fakes.github import git_ops
from tests.fakes.github.activity import GitHubError, validation_failed
from tests.fakes.github.api_pulls import writer
from tests.fakes.github.json_views import check_run_json, comment_json, status_json
from tests.fakes.github.rest import REST_DOCS, Answer, Call, Handler, not_found
from tests.fakes.github.state import CheckRun, CommitStatus, Repo, next_id

STATUS_DOCS = "https://docs.github.com/rest/commits/statuses#create-a-commit-status"
CHECKS_DOCS = "https://docs.github.com/rest/checks/runs#create-a-check-run"
COMMENT_DOCS = "https://docs.github.com/rest/issues/comments#create-an-issue-comment"
STATUS_STATES = ("error", "failure", "pending", "success")
CHECK_STATUSES = ("queued", "in_progress", "completed", "waiting", "requested", "pending")
CHECK_CONCLUSIONS = (
    "action_required",
    "cancelled",
    "failure",
    "neutral",
    "success",
    "skipped",
    "stale",
    "timed_out",
)


async def _commit(repo: Repo, ref: str) -> str:
    sha = await asyncio.to_thread(git_ops.resolve, repo.path, ref)
    if sha is None:
        raise validation_failed(
            STATUS_DOCS,
            {"resource": "Status", "code": "custom", "message": f"No commit found for SHA: {ref}"},
        )
    return sha


async def create_status(call: Call) -> Answer:
    repo = call.repo()
    creator = writer(call, repo)
    body = await call.json()
    if body.get("state") not in STATUS_STATES:
        raise validation_failed(
            STATUS_DOCS, {"resource": "Status", "field": "state", "code": "invalid"}
        )
    sha = await _commit(repo, call.params["sha"])
    status = CommitStatus(
        id=next_id(),
        sha=sha,
        state=body["state"],
        context=body.get("context") or "default",
        description=body.get("description"),
        target_url=body.get("target_url"),
        creator=creator,
    )
    repo.statuses.append(status)
    return Answer(201, status_json(call.fake.urls, repo, status))


async def list_statuses(call: Call) -> Answer:
    repo = call.repo()
    sha = await asyncio.to_thread(git_ops.resolve, repo.path, call.params["ref"])
    if sha is None:
        raise not_found()
    found = [status for status in reversed(repo.statuses) if status.sha == sha]
    per_page = call.query_int("per_page", 30, 100)
    page = call.query_int("page", 1)
    shown = found[(page - 1) * per_page : page * per_page]
    return Answer(200, [status_json(call.fake.urls, repo, status) for status in shown])


def _installation_only(call: Call, repo: Repo) -> None:
    principal = call.principal
    if principal is None:
        raise GitHubError(401, "Requires authentication", REST_DOCS)
    if principal.kind != "installation":
        raise GitHubError(403, "Resource not accessible by personal access token", CHECKS_DOCS)
    writer(call, repo)


def _epoch(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise validation_failed(
            CHECKS_DOCS, {"resource": "CheckRun", "code": "invalid", "value": value}
        ) from None


def _apply(run: CheckRun, body: dict[str, Any]) -> None:
    for name in ("name", "details_url", "external_id"):
        if isinstance(body.get(name), str):
            setattr(run, name, body[name])
    if "status" in body:
        if body["status"] not in CHECK_STATUSES:
            raise validation_failed(
                CHECKS_DOCS, {"resource": "CheckRun", "field": "status", "code": "invalid"}
            )
        run.status = body["status"]
    if body.get("conclusion") is not None:
        if body["conclusion"] not in CHECK_CONCLUSIONS:
            raise validation_failed(
                CHECKS_DOCS, {"resource": "CheckRun", "field": "conclusion", "code": "invalid"}
            )
        run.conclusion, run.status = body["conclusion"], "completed"
    if isinstance(body.get("output"), dict):
        run.output = {**run.output, **body["output"]}
    run.started_at = _epoch(body.get("started_at")) or run.started_at or time.time()
    if run.status == "completed":
        run.completed_at = _epoch(body.get("completed_at")) or run.completed_at or time.time()


def _installations(call: Call, run: CheckRun) -> int:
    return sum(1 for i in call.fake.store.installations.values() if i.app is run.app)


async def create_check_run(call: Call) -> Answer:
    repo = call.repo()
    _installation_only(call, repo)
    assert call.principal is not None and call.principal.installation is not None
    body = await call.json()
    if not isinstance(body.get("name"), str) or not isinstance(body.get("head_sha"), str):
        raise validation_failed(
            CHECKS_DOCS, {"resource": "CheckRun", "field": "head_sha", "code": "missing_field"}
        )
    head_sha = await _commit(repo, body["head_sha"])
    run = CheckRun(next_id(), body["name"], head_sha, call.principal.installation.app)
    _apply(run, body)
    repo.check_runs.append(run)
    return Answer(201, check_run_json(call.fake.urls, repo, run, _installations(call, run)))


async def update_check_run(call: Call) -> Answer:
    repo = call.repo()
    _installation_only(call, repo)
    assert call.principal is not None and call.principal.installation is not None
    run_id = call.params["check_run_id"]
    run = next((run for run in repo.check_runs if str(run.id) == run_id), None)
    if run is None or run.app is not call.principal.installation.app:
        raise not_found()
    _apply(run, await call.json())
    return Answer(200, check_run_json(call.fake.urls, repo, run, _installations(call, run)))


async def create_comment(call: Call) -> Answer:
    repo = call.repo()
    if call.principal is None or call.principal.user is None:
        raise GitHubError(401, "Requires authentication", REST_DOCS)
    try:
        pull = repo.pull(int(call.params["issue_number"]))
    except ValueError:
        pull = None
    if pull is None:
        raise not_found()
    body = await call.json()
    if not isinstance(body.get("body"), str) or not body["body"]:
        raise validation_failed(
            COMMENT_DOCS, {"resource": "IssueComment", "field": "body", "code": "missing_field"}
        )
    comment = await call.fake.activity.comment(repo, pull, body["body"], call.principal.user)
    headers = {"location": f"{call.fake.urls.repo_api(repo)}/issues/comments/{comment.id}"}
    return Answer(201, comment_json(call.fake.urls, repo, comment), headers)


ROUTES: dict[str, dict[str, Handler]] = {
    "/repos/{owner}/{repo}/statuses/{sha}": {"POST": create_status},
    "/repos/{owner}/{repo}/commits/{ref}/statuses": {"GET": list_statuses},
    "/repos/{owner}/{repo}/check-runs": {"POST": create_check_run},
    "/repos/{owner}/{repo}/check-runs/{check_run_id}": {"PATCH": update_check_run},
    "/repos/{owner}/{repo}/issues/{issue_number}/comments": {"POST": create_comment},
}
