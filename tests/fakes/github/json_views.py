"""GitHub's JSON representations of the fake's objects, as the REST API and webhooks show them
(Enterprise Server layout: the web at `{base}/`, the API at `{base}/api/v3/`)."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from tests.fakes.github.state import (
    App,
    CheckRun,
    CommitStatus,
    Hook,
    Installation,
    IssueComment,
    PullRequest,
    Repo,
    User,
    iso,
)

APP_PERMISSIONS = {
    "checks": "write",
    "contents": "write",
    "issues": "write",
    "metadata": "read",
    "pull_requests": "write",
    "statuses": "write",
}
APP_EVENTS = ["check_run", "issue_comment", "pull_request", "push", "status"]

_REPO_URL_TEMPLATES = {
    "archive_url": "/{archive_format}{/ref}",
    "assignees_url": "/assignees{/user}",
    "blobs_url": "/git/blobs{/sha}",
    "branches_url": "/branches{/branch}",
    "collaborators_url": "/collaborators{/collaborator}",
    "comments_url": "/comments{/number}",
    "commits_url": "/commits{/sha}",
    "compare_url": "/compare/{base}...{head}",
    "contents_url": "/contents/{+path}",
    "contributors_url": "/contributors",
    "deployments_url": "/deployments",
    "downloads_url": "/downloads",
    "events_url": "/events",
    "forks_url": "/forks",
    "git_commits_url": "/git/commits{/sha}",
    "git_refs_url": "/git/refs{/sha}",
    "git_tags_url": "/git/tags{/sha}",
    "hooks_url": "/hooks",
    "issue_comment_url": "/issues/comments{/number}",
    "issue_events_url": "/issues/events{/number}",
    "issues_url": "/issues{/number}",
    "keys_url": "/keys{/key_id}",
    "labels_url": "/labels{/name}",
    "languages_url": "/languages",
    "merges_url": "/merges",
    "milestones_url": "/milestones{/number}",
    "notifications_url": "/notifications{?since,all,participating}",
    "pulls_url": "/pulls{/number}",
    "releases_url": "/releases{/id}",
    "stargazers_url": "/stargazers",
    "statuses_url": "/statuses/{sha}",
    "subscribers_url": "/subscribers",
    "subscription_url": "/subscription",
    "tags_url": "/tags",
    "teams_url": "/teams",
    "trees_url": "/git/trees{/sha}",
}


def node_id(kind: str, ident: int) -> str:
    """A GraphQL-style global id, shaped like GitHub's legacy ones."""
    return base64.b64encode(f"0{len(kind)}:{kind}{ident}".encode()).decode()


@dataclass(frozen=True)
class Urls:
    """Where the fake lives: `base` is `http://127.0.0.1:PORT`."""

    base: str

    @property
    def api(self) -> str:
        return f"{self.base}/api/v3"

    @property
    def host(self) -> str:
        return self.base.split("://", 1)[1]

    def repo_api(self, repo: Repo) -> str:
        return f"{self.api}/repos/{repo.full_name}"

    def repo_html(self, repo: Repo) -> str:
        return f"{self.base}/{repo.full_name}"


@dataclass(frozen=True)
class PullFacts:
    """What git says about a pull request when it is shown."""

    mergeable: bool | None
    commits: int = 0
    additions: int = 0
    deletions: int = 0
    changed_files: int = 0


def user_json(urls: Urls, user: User) -> dict[str, Any]:
    """A `simple-user`."""
    api = f"{urls.api}/users/{user.login}"
    return {
        "login": user.login,
        "id": user.id,
        "node_id": node_id("User" if user.type == "User" else "Bot", user.id),
        "avatar_url": f"{urls.base}/avatars/u/{user.id}?v=4",
        "gravatar_id": "",
        "url": api,
        "html_url": f"{urls.base}/{user.login}",
        "followers_url": f"{api}/followers",
        "following_url": f"{api}/following{{/other_user}}",
        "gists_url": f"{api}/gists{{/gist_id}}",
        "starred_url": f"{api}/starred{{/owner}}{{/repo}}",
        "subscriptions_url": f"{api}/subscriptions",
        "organizations_url": f"{api}/orgs",
        "repos_url": f"{api}/repos",
        "events_url": f"{api}/events{{/privacy}}",
        "received_events_url": f"{api}/received_events",
        "type": user.type,
        "user_view_type": "public",
        "site_admin": False,
    }


def private_user_json(urls: Urls, user: User, repos: list[Repo]) -> dict[str, Any]:
    """A `private-user`: what `GET /user` shows the user themself."""
    private = sum(1 for repo in repos if repo.private)
    return {
        **user_json(urls, user),
        "user_view_type": "private",
        "name": user.login,
        "company": None,
        "blog": "",
        "location": None,
        "email": None,
        "notification_email": None,
        "hireable": None,
        "bio": None,
        "twitter_username": None,
        "public_repos": len(repos) - private,
        "public_gists": 0,
        "followers": 0,
        "following": 0,
        "created_at": iso(user.created_at),
        "updated_at": iso(user.created_at),
        "private_gists": 0,
        "total_private_repos": private,
        "owned_private_repos": private,
        "disk_usage": 0,
        "collaborators": 0,
        "two_factor_authentication": True,
        "plan": {"name": "free", "space": 976562499, "collaborators": 0, "private_repos": 10000},
    }


def repo_permissions(repo: Repo, viewer: User | None, installed: bool) -> dict[str, bool]:
    """The viewer's permissions: the owner administers, an installation pushes."""
    admin = viewer is not None and viewer is repo.owner
    push = admin or installed
    return {"admin": admin, "maintain": admin, "push": push, "triage": push, "pull": True}


def repo_json(urls: Urls, repo: Repo, permissions: dict[str, bool] | None = None) -> dict[str, Any]:
    """A `repository` (as listed); `full_repo_json` adds what `GET /repos/{o}/{r}` shows."""
    api = urls.repo_api(repo)
    html = urls.repo_html(repo)
    open_issues = sum(1 for pull in repo.pulls if pull.state == "open")
    shown: dict[str, Any] = {
        "id": repo.id,
        "node_id": node_id("Repository", repo.id),
        "name": repo.name,
        "full_name": repo.full_name,
        "private": repo.private,
        "owner": user_json(urls, repo.owner),
        "html_url": html,
        "description": None,
        "fork": False,
        "url": api,
        **{key: api + suffix for key, suffix in _REPO_URL_TEMPLATES.items()},
        "created_at": iso(repo.created_at),
        "updated_at": iso(repo.updated_at),
        "pushed_at": iso(repo.pushed_at),
        "git_url": f"git://{urls.host}/{repo.full_name}.git",
        "ssh_url": f"git@{urls.host}:{repo.full_name}.git",
        "clone_url": repo.clone_url,
        "svn_url": html,
        "homepage": None,
        "size": 1,
        "stargazers_count": 0,
        "watchers_count": 0,
        "language": None,
        "has_issues": True,
        "has_projects": True,
        "has_downloads": True,
        "has_wiki": True,
        "has_pages": False,
        "has_discussions": False,
        "forks_count": 0,
        "mirror_url": None,
        "archived": False,
        "disabled": False,
        "open_issues_count": open_issues,
        "license": None,
        "allow_forking": True,
        "is_template": False,
        "web_commit_signoff_required": False,
        "topics": [],
        "visibility": "private" if repo.private else "public",
        "forks": 0,
        "open_issues": open_issues,
        "watchers": 0,
        "default_branch": repo.default_branch,
    }
    if permissions is not None:
        shown["permissions"] = permissions
    return shown


def full_repo_json(urls: Urls, repo: Repo, permissions: dict[str, bool]) -> dict[str, Any]:
    """A `full-repository`."""
    return {
        **repo_json(urls, repo, permissions),
        "allow_squash_merge": True,
        "allow_merge_commit": True,
        "allow_rebase_merge": True,
        "allow_auto_merge": False,
        "delete_branch_on_merge": False,
        "allow_update_branch": False,
        "use_squash_pr_title_as_default": False,
        "squash_merge_commit_title": "COMMIT_OR_PR_TITLE",
        "squash_merge_commit_message": "COMMIT_MESSAGES",
        "merge_commit_title": "MERGE_MESSAGE",
        "merge_commit_message": "PR_TITLE",
        "network_count": 0,
        "subscribers_count": 0,
    }


def hook_json(urls: Urls, repo: Repo, hook: Hook) -> dict[str, Any]:
    """A `hook`; the secret shows as `********`."""
    api = f"{urls.repo_api(repo)}/hooks/{hook.id}"
    config: dict[str, Any] = {
        "content_type": hook.content_type,
        "insecure_ssl": hook.insecure_ssl,
        "url": hook.url,
    }
    if hook.secret:
        config["secret"] = "********"
    return {
        "type": "Repository",
        "id": hook.id,
        "name": "web",
        "active": hook.active,
        "events": list(hook.events),
        "config": config,
        "updated_at": iso(hook.updated_at),
        "created_at": iso(hook.created_at),
        "url": api,
        "test_url": f"{api}/test",
        "ping_url": f"{api}/pings",
        "deliveries_url": f"{api}/deliveries",
        "last_response": dict(hook.last_response),
    }


def author_association(repo: Repo, user: User) -> str:
    return "OWNER" if user is repo.owner else "CONTRIBUTOR"


def _pull_branch(urls: Urls, repo: Repo, ref: str, sha: str) -> dict[str, Any]:
    return {
        "label": f"{repo.owner.login}:{ref}",
        "ref": ref,
        "sha": sha,
        "user": user_json(urls, repo.owner),
        "repo": repo_json(urls, repo),
    }


def pull_simple_json(urls: Urls, repo: Repo, pull: PullRequest) -> dict[str, Any]:
    """A `pull-request-simple` (as listed)."""
    api = f"{urls.repo_api(repo)}/pulls/{pull.number}"
    issue = f"{urls.repo_api(repo)}/issues/{pull.number}"
    html = f"{urls.repo_html(repo)}/pull/{pull.number}"
    statuses = f"{urls.repo_api(repo)}/statuses/{pull.head_sha}"
    return {
        "url": api,
        "id": pull.id,
        "node_id": node_id("PullRequest", pull.id),
        "html_url": html,
        "diff_url": f"{html}.diff",
        "patch_url": f"{html}.patch",
        "issue_url": issue,
        "commits_url": f"{api}/commits",
        "review_comments_url": f"{api}/comments",
        "review_comment_url": f"{urls.repo_api(repo)}/pulls/comments{{/number}}",
        "comments_url": f"{issue}/comments",
        "statuses_url": statuses,
        "number": pull.number,
        "state": pull.state,
        "locked": False,
        "title": pull.title,
        "user": user_json(urls, pull.user),
        "body": pull.body,
        "labels": [],
        "milestone": None,
        "active_lock_reason": None,
        "created_at": iso(pull.created_at),
        "updated_at": iso(pull.updated_at),
        "closed_at": iso(pull.closed_at) if pull.closed_at else None,
        "merged_at": iso(pull.merged_at) if pull.merged_at else None,
        "merge_commit_sha": pull.merge_commit_sha,
        "assignee": None,
        "assignees": [],
        "requested_reviewers": [],
        "requested_teams": [],
        "head": _pull_branch(urls, repo, pull.head, pull.head_sha),
        "base": _pull_branch(urls, repo, pull.base, pull.base_sha),
        "_links": {
            "self": {"href": api},
            "html": {"href": html},
            "issue": {"href": issue},
            "comments": {"href": f"{issue}/comments"},
            "review_comments": {"href": f"{api}/comments"},
            "review_comment": {"href": f"{urls.repo_api(repo)}/pulls/comments{{/number}}"},
            "commits": {"href": f"{api}/commits"},
            "statuses": {"href": statuses},
        },
        "author_association": author_association(repo, pull.user),
        "auto_merge": None,
        "draft": pull.draft,
    }


def pull_json(urls: Urls, repo: Repo, pull: PullRequest, facts: PullFacts) -> dict[str, Any]:
    """A `pull-request` with git's verdict on mergeability and its diff counters."""
    if pull.merged or pull.state == "closed":
        mergeable, state = None, "unknown"
    else:
        mergeable = facts.mergeable
        state = "unknown" if mergeable is None else ("clean" if mergeable else "dirty")
        if pull.draft and mergeable:
            state = "draft"
    return {
        **pull_simple_json(urls, repo, pull),
        "merged": pull.merged,
        "mergeable": mergeable,
        "rebaseable": mergeable,
        "mergeable_state": state,
        "merged_by": user_json(urls, pull.merged_by) if pull.merged_by else None,
        "comments": sum(1 for c in repo.comments if c.issue_number == pull.number),
        "review_comments": 0,
        "maintainer_can_modify": False,
        "commits": facts.commits,
        "additions": facts.additions,
        "deletions": facts.deletions,
        "changed_files": facts.changed_files,
    }


def issue_json(urls: Urls, repo: Repo, pull: PullRequest) -> dict[str, Any]:
    """The issue side of a pull request, as `issue_comment` webhooks carry it."""
    issue = f"{urls.repo_api(repo)}/issues/{pull.number}"
    html = f"{urls.repo_html(repo)}/pull/{pull.number}"
    return {
        "url": issue,
        "repository_url": urls.repo_api(repo),
        "labels_url": f"{issue}/labels{{/name}}",
        "comments_url": f"{issue}/comments",
        "events_url": f"{issue}/events",
        "html_url": html,
        "id": pull.id + 500_000_000,
        "node_id": node_id("Issue", pull.id),
        "number": pull.number,
        "title": pull.title,
        "user": user_json(urls, pull.user),
        "labels": [],
        "state": pull.state,
        "locked": False,
        "assignee": None,
        "assignees": [],
        "milestone": None,
        "comments": sum(1 for c in repo.comments if c.issue_number == pull.number),
        "created_at": iso(pull.created_at),
        "updated_at": iso(pull.updated_at),
        "closed_at": iso(pull.closed_at) if pull.closed_at else None,
        "author_association": author_association(repo, pull.user),
        "active_lock_reason": None,
        "draft": pull.draft,
        "pull_request": {
            "url": f"{urls.repo_api(repo)}/pulls/{pull.number}",
            "html_url": html,
            "diff_url": f"{html}.diff",
            "patch_url": f"{html}.patch",
            "merged_at": iso(pull.merged_at) if pull.merged_at else None,
        },
        "body": pull.body,
        "reactions": _reactions(f"{issue}/reactions"),
        "timeline_url": f"{issue}/timeline",
        "performed_via_github_app": None,
        "state_reason": None,
    }


def _reactions(url: str) -> dict[str, Any]:
    counts = {key: 0 for key in ("+1", "-1", "laugh", "confused", "heart", "hooray", "eyes")}
    return {"url": url, "total_count": 0, **counts, "rocket": 0}


def comment_json(urls: Urls, repo: Repo, comment: IssueComment) -> dict[str, Any]:
    """An `issue-comment`."""
    api = f"{urls.repo_api(repo)}/issues/comments/{comment.id}"
    return {
        "url": api,
        "html_url": f"{urls.repo_html(repo)}/pull/{comment.issue_number}#issuecomment-{comment.id}",
        "issue_url": f"{urls.repo_api(repo)}/issues/{comment.issue_number}",
        "id": comment.id,
        "node_id": node_id("IssueComment", comment.id),
        "user": user_json(urls, comment.user),
        "created_at": iso(comment.created_at),
        "updated_at": iso(comment.updated_at),
        "author_association": author_association(repo, comment.user),
        "body": comment.body,
        "reactions": _reactions(f"{api}/reactions"),
        "performed_via_github_app": None,
    }


def status_json(urls: Urls, repo: Repo, status: CommitStatus) -> dict[str, Any]:
    """A commit `status`."""
    return {
        "url": f"{urls.repo_api(repo)}/statuses/{status.sha}",
        "avatar_url": f"{urls.base}/avatars/u/{status.creator.id}?v=4",
        "id": status.id,
        "node_id": node_id("StatusContext", status.id),
        "state": status.state,
        "description": status.description,
        "target_url": status.target_url,
        "context": status.context,
        "created_at": iso(status.created_at),
        "updated_at": iso(status.updated_at),
        "creator": user_json(urls, status.creator),
    }


def app_json(urls: Urls, app: App, installations: int) -> dict[str, Any]:
    """An `integration` (a GitHub App)."""
    return {
        "id": app.id,
        "slug": app.slug,
        "node_id": node_id("App", app.id),
        "client_id": app.client_id,
        "owner": user_json(urls, app.owner),
        "name": app.name,
        "description": None,
        "external_url": f"{urls.base}/apps/{app.slug}",
        "html_url": f"{urls.base}/apps/{app.slug}",
        "created_at": iso(app.created_at),
        "updated_at": iso(app.created_at),
        "permissions": dict(APP_PERMISSIONS),
        "events": list(APP_EVENTS),
        "installations_count": installations,
    }


def installation_json(urls: Urls, installation: Installation) -> dict[str, Any]:
    """An `installation`."""
    return {
        "id": installation.id,
        "account": user_json(urls, installation.account),
        "repository_selection": installation_selection(installation),
        "access_tokens_url": f"{urls.api}/app/installations/{installation.id}/access_tokens",
        "repositories_url": f"{urls.api}/installation/repositories",
        "html_url": f"{urls.base}/settings/installations/{installation.id}",
        "app_id": installation.app.id,
        "app_slug": installation.app.slug,
        "client_id": installation.app.client_id,
        "target_id": installation.account.id,
        "target_type": installation.account.type,
        "permissions": dict(APP_PERMISSIONS),
        "events": list(APP_EVENTS),
        "created_at": iso(installation.created_at),
        "updated_at": iso(installation.created_at),
        "single_file_name": None,
        "has_multiple_single_files": False,
        "single_file_paths": [],
        "suspended_by": None,
        "suspended_at": None,
    }


def installation_selection(installation: Installation) -> str:
    return "all" if installation.repository_names is None else "selected"


def check_run_json(urls: Urls, repo: Repo, run: CheckRun, installations: int) -> dict[str, Any]:
    """A `check-run`, with the open pull requests whose head is its commit."""
    api = f"{urls.repo_api(repo)}/check-runs/{run.id}"
    output = {
        "title": run.output.get("title"),
        "summary": run.output.get("summary"),
        "text": run.output.get("text"),
        "annotations_count": len(run.output.get("annotations", [])),
        "annotations_url": f"{api}/annotations",
    }
    pulls = [
        {
            "id": pull.id,
            "number": pull.number,
            "url": f"{urls.repo_api(repo)}/pulls/{pull.number}",
            "head": {"ref": pull.head, "sha": pull.head_sha, "repo": _repo_ref(urls, repo)},
            "base": {"ref": pull.base, "sha": pull.base_sha, "repo": _repo_ref(urls, repo)},
        }
        for pull in repo.pulls
        if pull.state == "open" and pull.head_sha == run.head_sha
    ]
    return {
        "id": run.id,
        "head_sha": run.head_sha,
        "node_id": node_id("CheckRun", run.id),
        "external_id": run.external_id,
        "url": api,
        "html_url": f"{urls.repo_html(repo)}/runs/{run.id}",
        "details_url": run.details_url,
        "status": run.status,
        "conclusion": run.conclusion,
        "started_at": iso(run.started_at) if run.started_at else None,
        "completed_at": iso(run.completed_at) if run.completed_at else None,
        "output": output,
        "name": run.name,
        "check_suite": {"id": run.check_suite_id},
        "app": app_json(urls, run.app, installations),
        "pull_requests": pulls,
    }


def _repo_ref(urls: Urls, repo: Repo) -> dict[str, Any]:
    return {"id": repo.id, "url": urls.repo_api(repo), "name": repo.name}
