"""REST endpoints for a repository and its webhooks."""

from __future__ import annotations

import time
from typing import Any

from tests.fakes.github.activity import validation_failed
from tests.fakes.github.json_views import full_repo_json, hook_json, repo_permissions
from tests.fakes.github.rest import Answer, Call, Handler, not_found
from tests.fakes.github.state import Hook, Repo, next_id
from tests.fakes.github.store import is_admin

HOOK_DOCS = "https://docs.github.com/rest/repos/webhooks#create-a-repository-webhook"


async def get_repo(call: Call) -> Answer:
    repo = call.repo()
    principal = call.principal
    installed = principal is not None and principal.kind == "installation"
    user = principal.user if principal is not None and principal.kind == "token" else None
    permissions = repo_permissions(repo, user, installed)
    return Answer(200, full_repo_json(call.fake.urls, repo, permissions))


def _admin_repo(call: Call) -> Repo:
    """Hooks are for admins; anyone else is told the repository's hooks do not exist."""
    repo = call.repo()
    if not is_admin(call.principal, repo):
        raise not_found()
    return repo


def _hook(call: Call, repo: Repo) -> Hook:
    hook_id = call.params["hook_id"]
    hook = next((hook for hook in repo.hooks if str(hook.id) == hook_id), None)
    if hook is None:
        raise not_found()
    return hook


def _events(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise validation_failed(
            HOOK_DOCS, {"resource": "Hook", "field": "events", "code": "invalid"}
        )
    return list(value)


def _apply_config(hook: Hook, config: Any) -> None:
    if not isinstance(config, dict):
        raise validation_failed(
            HOOK_DOCS, {"resource": "Hook", "field": "config", "code": "invalid"}
        )
    if "url" in config:
        url = config["url"]
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise validation_failed(
                HOOK_DOCS, {"resource": "Hook", "code": "custom", "message": "Url is not supported"}
            )
        hook.url = url
    if "content_type" in config:
        hook.content_type = "form" if config["content_type"] == "form" else "json"
    if "secret" in config:
        hook.secret = config["secret"] or None
    if "insecure_ssl" in config:
        hook.insecure_ssl = str(config["insecure_ssl"])


async def create_hook(call: Call) -> Answer:
    repo = _admin_repo(call)
    body = await call.json()
    config = body.get("config")
    if not isinstance(config, dict) or not config.get("url"):
        raise validation_failed(
            HOOK_DOCS, {"resource": "Hook", "code": "custom", "message": "Config must contain url"}
        )
    hook = Hook(next_id(), "", None, ["push"], True, "form", "0")
    _apply_config(hook, config)
    if "events" in body:
        hook.events = _events(body["events"])
    hook.active = bool(body.get("active", True))
    repo.hooks.append(hook)
    assert call.principal is not None
    sender = call.principal.user or repo.owner
    call.fake.activity.ping(repo, hook, sender)
    return Answer(201, hook_json(call.fake.urls, repo, hook))


async def list_hooks(call: Call) -> Answer:
    repo = _admin_repo(call)
    return Answer(200, [hook_json(call.fake.urls, repo, hook) for hook in repo.hooks])


async def get_hook(call: Call) -> Answer:
    repo = _admin_repo(call)
    return Answer(200, hook_json(call.fake.urls, repo, _hook(call, repo)))


async def update_hook(call: Call) -> Answer:
    repo = _admin_repo(call)
    hook = _hook(call, repo)
    body = await call.json()
    if "config" in body:
        _apply_config(hook, body["config"])
    if "events" in body:
        hook.events = _events(body["events"])
    if "add_events" in body:
        hook.events += [e for e in _events(body["add_events"]) if e not in hook.events]
    if "remove_events" in body:
        removed = set(_events(body["remove_events"]))
        hook.events = [event for event in hook.events if event not in removed]
    if "active" in body:
        hook.active = bool(body["active"])
    hook.updated_at = time.time()
    return Answer(200, hook_json(call.fake.urls, repo, hook))


async def delete_hook(call: Call) -> Answer:
    repo = _admin_repo(call)
    repo.hooks.remove(_hook(call, repo))
    return Answer(204)


ROUTES: dict[str, dict[str, Handler]] = {
    "/repos/{owner}/{repo}": {"GET": get_repo},
    "/repos/{owner}/{repo}/hooks": {"GET": list_hooks, "POST": create_hook},
    "/repos/{owner}/{repo}/hooks/{hook_id}": {
        "GET": get_hook,
        "PATCH": update_hook,
        "DELETE": delete_hook,
    },
}
