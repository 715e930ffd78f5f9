"""REST endpoints for pull requests: open, list, show, edit and merge."""

from __future__ import annotations

import time

from tests.fakes.github.activity import GitHubError, validation_failed
from tests.fakes.github.json_views import pull_json, pull_simple_json
from tests.fakes.github.rest import REST_DOCS, Answer, Call, Handler, link_header, not_found
from tests.fakes.github.state import PullRequest, Repo, User
from tests.fakes.github.store import can_write

CREATE_DOCS = "https://docs.github.com/rest/pulls/pulls#create-a-pull-request"
UPDATE_DOCS = "https://docs.github.com/rest/pulls/pulls#update-a-pull-request"


def writer(call: Call, repo: Repo) -> User:
    """The acting account, when it may write to `repo` (GitHub's 403 otherwise)."""
    principal = call.principal
    if principal is None:
        raise GitHubError(401, "Requires authentication", REST_DOCS)
    if not can_write(principal, repo) or principal.user is None:
        who = "integration" if principal.kind == "installation" else "personal access token"
        raise GitHubError(403, f"Resource not accessible by {who}", REST_DOCS)
    return principal.user


def pull_of(call: Call, repo: Repo) -> PullRequest:
    try:
        pull = repo.pull(int(call.params["pull_number"]))
    except ValueError:
        pull = None
    if pull is None:
        raise not_found()
    return pull


async def create_pull(call: Call) -> Answer:
    repo = call.repo()
    user = writer(call, repo)
    body = await call.json()
    for name in ("title", "head", "base"):
        if not isinstance(body.get(name), str) or not body[name]:
            raise validation_failed(
                CREATE_DOCS, {"resource": "PullRequest", "field": name, "code": "missing_field"}
            )
    text = body.get("body")
    pull = await call.fake.activity.open_pull(
        repo,
        head=body["head"],
        base=body["base"],
        title=body["title"],
        body=text if isinstance(text, str) else None,
        draft=bool(body.get("draft", False)),
        user=user,
    )
    facts = await call.fake.activity.facts_async(repo, pull)
    headers = {"location": f"{call.fake.urls.repo_api(repo)}/pulls/{pull.number}"}
    return Answer(201, pull_json(call.fake.urls, repo, pull, facts), headers)


async def list_pulls(call: Call) -> Answer:
    repo = call.repo()
    query = call.request.query_params
    state = query.get("state", "open")
    head = query.get("head")
    base = query.get("base")
    pulls = [
        pull
        for pull in sorted(repo.pulls, key=lambda pull: pull.number, reverse=True)
        if (state == "all" or pull.state == state)
        and (head is None or f"{repo.owner.login}:{pull.head}".lower() == head.lower())
        and (base is None or pull.base == base)
    ]
    per_page = call.query_int("per_page", 30, 100)
    page = call.query_int("page", 1)
    shown = pulls[(page - 1) * per_page : page * per_page]
    body = [pull_simple_json(call.fake.urls, repo, pull) for pull in shown]
    return Answer(200, body, link_header(call.request, page, per_page, len(pulls)))


async def get_pull(call: Call) -> Answer:
    repo = call.repo()
    pull = pull_of(call, repo)
    facts = await call.fake.activity.facts_async(repo, pull)
    return Answer(200, pull_json(call.fake.urls, repo, pull, facts))


async def update_pull(call: Call) -> Answer:
    repo = call.repo()
    user = writer(call, repo)
    pull = pull_of(call, repo)
    body = await call.json()
    activity = call.fake.activity
    changes: dict[str, dict[str, str | None]] = {}
    for name in ("title", "body"):
        if name in body and body[name] != getattr(pull, name):
            changes[name] = {"from": getattr(pull, name)}
            setattr(pull, name, body[name])
    if "base" in body and body["base"] != pull.base:
        changes["base"] = {"from": pull.base}
        pull.base = body["base"]
    state = body.get("state")
    if state not in (None, "open", "closed"):
        raise validation_failed(
            UPDATE_DOCS, {"resource": "PullRequest", "field": "state", "code": "invalid"}
        )
    pull.updated_at = time.time()
    if changes:
        await activity.send_pull_event(repo, pull, "edited", user, changes)
    if state == "closed" and pull.state == "open":
        pull.state, pull.closed_at = "closed", time.time()
        await activity.send_pull_event(repo, pull, "closed", user)
    elif state == "open" and pull.state == "closed" and not pull.merged:
        pull.state, pull.closed_at = "open", None
        await activity.send_pull_event(repo, pull, "reopened", user)
    facts = await activity.facts_async(repo, pull)
    return Answer(200, pull_json(call.fake.urls, repo, pull, facts))


async def merge_pull(call: Call) -> Answer:
    repo = call.repo()
    user = writer(call, repo)
    pull = pull_of(call, repo)
    body = await call.json()
    sha = await call.fake.activity.merge(
        repo,
        pull,
        method=body.get("merge_method") or "merge",
        sha=body.get("sha"),
        title=body.get("commit_title"),
        message=body.get("commit_message"),
        actor=user,
    )
    return Answer(200, {"sha": sha, "merged": True, "message": "Pull Request successfully merged"})


ROUTES: dict[str, dict[str, Handler]] = {
    "/repos/{owner}/{repo}/pulls": {"GET": list_pulls, "POST": create_pull},
    "/repos/{owner}/{repo}/pulls/{pull_number}": {"GET": get_pull, "PATCH": update_pull},
    "/repos/{owner}/{repo}/pulls/{pull_number}/merge": {"PUT": merge_pull},
}
