"""Webhook payloads: @octokit/webhooks-examples' example for the event, with its repository,
pull request, sender, commits and so on replaced by the fake's real objects."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from tests.fakes.github.examples import webhook_example
from tests.fakes.github.json_views import (
    PullFacts,
    Urls,
    comment_json,
    hook_json,
    issue_json,
    pull_json,
    repo_json,
    user_json,
)
from tests.fakes.github.state import Hook, IssueComment, PullRequest, Repo, User

ZENS = (
    "Design for failure.",
    "Keep it logically awesome.",
    "Practicality beats purity.",
    "Speak like a human.",
    "Approachable is better than simple.",
)
_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
# Repository webhooks (not app webhooks) carry none of these.
_NOT_FOR_REPOSITORY_HOOKS = ("installation", "organization", "enterprise")


def overlay(example: Any, real: Any) -> Any:
    """`real` laid over `example`: real values win, keys only the example has are kept, and
    timestamps take the example's form (push payloads show some as epoch seconds)."""
    if isinstance(example, dict) and isinstance(real, dict):
        merged = {
            key: overlay(value, real[key]) if key in real else value
            for key, value in example.items()
        }
        merged.update({key: value for key, value in real.items() if key not in merged})
        return merged
    if (
        isinstance(example, int)
        and not isinstance(example, bool)
        and isinstance(real, str)
        and _ISO.match(real)
    ):
        return int(datetime.strptime(real, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp())
    return real


def _base(event: str, action: str | None, urls: Urls, repo: Repo, sender: User) -> dict[str, Any]:
    try:
        payload = webhook_example(event, action)
    except KeyError:  # the package has no example of this action: take another one's shape
        payload = webhook_example(event)
        payload["action"] = action
    for key in _NOT_FOR_REPOSITORY_HOOKS:
        payload.pop(key, None)
    payload["repository"] = overlay(payload.get("repository", {}), repo_json(urls, repo))
    payload["sender"] = overlay(payload.get("sender", {}), user_json(urls, sender))
    return payload


def ping_payload(urls: Urls, repo: Repo, hook: Hook, sender: User, zen: str) -> dict[str, Any]:
    payload = _base("ping", None, urls, repo, sender)
    payload["zen"] = zen
    payload["hook_id"] = hook.id
    payload["hook"] = overlay(payload.get("hook", {}), hook_json(urls, repo, hook))
    return payload


def _timestamp(epoch: int, offset_minutes: int) -> str:
    zone = timezone(timedelta(minutes=offset_minutes))
    return datetime.fromtimestamp(epoch, zone).isoformat()


def push_payload(
    urls: Urls,
    repo: Repo,
    ref: str,
    before: str,
    after: str,
    commits: list[dict[str, Any]],
    pusher: User,
    forced: bool,
) -> dict[str, Any]:
    payload = _base("push", None, urls, repo, pusher)
    payload["repository"]["owner"].update({"name": repo.owner.login, "email": None})
    html = urls.repo_html(repo)
    shown = [_push_commit(html, commit) for commit in commits]
    zero = "0" * 40
    payload.update(
        {
            "ref": ref,
            "before": before,
            "after": after,
            "created": before == zero,
            "deleted": after == zero,
            "forced": forced,
            "base_ref": None,
            "compare": f"{html}/compare/{before[:12]}...{after[:12]}",
            "commits": shown,
            "head_commit": shown[-1] if shown else None,
            "pusher": {"name": pusher.login, "email": pusher.email},
        }
    )
    return payload


def _push_commit(html: str, commit: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": commit["id"],
        "tree_id": commit["tree_id"],
        "distinct": True,
        "message": commit["message"],
        "timestamp": _timestamp(commit["timestamp"], commit["offset"]),
        "url": f"{html}/commit/{commit['id']}",
        "author": {**commit["author"], "username": commit["author"]["name"]},
        "committer": {**commit["committer"], "username": commit["committer"]["name"]},
        "added": commit["added"],
        "removed": commit["removed"],
        "modified": commit["modified"],
    }


def pull_request_payload(
    urls: Urls,
    repo: Repo,
    pull: PullRequest,
    facts: PullFacts,
    action: str,
    sender: User,
    before: str | None = None,
    changes: dict[str, Any] | None = None,
) -> dict[str, Any]:
    payload = _base("pull_request", action, urls, repo, sender)
    payload.pop("changes", None)
    if changes is not None:
        payload["changes"] = changes
    payload["number"] = pull.number
    payload["pull_request"] = overlay(
        payload.get("pull_request", {}), pull_json(urls, repo, pull, facts)
    )
    if action == "synchronize":
        payload["before"] = before
        payload["after"] = pull.head_sha
    return payload


def issue_comment_payload(
    urls: Urls, repo: Repo, pull: PullRequest, comment: IssueComment
) -> dict[str, Any]:
    payload = _base("issue_comment", "created", urls, repo, comment.user)
    payload["issue"] = overlay(payload.get("issue", {}), issue_json(urls, repo, pull))
    payload["comment"] = overlay(payload.get("comment", {}), comment_json(urls, repo, comment))
    return payload
