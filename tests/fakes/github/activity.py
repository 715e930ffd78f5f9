"""What happens on the fake GitHub when someone pushes, opens, merges or comments on a pull
request: repository state moves as on GitHub and the matching webhooks go out.

Git work runs in worker threads (`asyncio.to_thread`) on the async paths; the synchronous
test helpers run it inline. Webhooks are queued on the event loop and sent in the background.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.github import git_ops
from tests.fakes.github.hooks import WebhookSender
from tests.fakes.github.json_views import PullFacts, Urls
from tests.fakes.github.payloads import (
    ZENS,
    issue_comment_payload,
    ping_payload,
    pull_request_payload,
    push_payload,
)
from tests.fakes.github.state import Hook, IssueComment, PullRequest, Repo, User, next_id

VALIDATION_DOCS = "https://docs.github.com/rest/pulls/pulls#create-a-pull-request"
MERGE_DOCS = "https://docs.github.com/rest/pulls/pulls#merge-a-pull-request"


class GitHubError(Exception):
    """An API failure with GitHub's status and body."""

    def __init__(self, status: int, message: str, docs: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"message": message, "documentation_url": docs, **extra}
        self.body.setdefault("status", str(status))


def validation_failed(docs: str, *errors: dict[str, Any]) -> GitHubError:
    return GitHubError(422, "Validation Failed", docs, errors=list(errors))


@dataclass
class _Outbox:
    """Webhooks decided on in a worker thread, sent afterwards on the event loop."""

    items: list[tuple[Repo, str, dict[str, Any]]] = field(default_factory=list)

    def add(self, repo: Repo, event: str, payload: dict[str, Any]) -> None:
        self.items.append((repo, event, payload))


class Activity:
    """The fake's behaviour behind the REST API, git pushes and the test helpers."""

    def __init__(self, urls: Urls, sender: WebhookSender) -> None:
        self.urls = urls
        self.sender = sender

    def _send(self, outbox: _Outbox) -> None:
        for repo, event, payload in outbox.items:
            self.sender.send(repo, event, payload)

    # -- pull request facts ------------------------------------------------------------

    def facts(self, repo: Repo, pull: PullRequest) -> PullFacts:
        """Mergeability (a real in-memory merge) and diff counters; refreshes the base sha."""
        if pull.state != "open":
            stats = git_ops.diff_stats(repo.path, pull.base_sha, pull.head_sha)
            return PullFacts(None, **stats)
        base_sha = git_ops.resolve(repo.path, pull.base) or pull.base_sha
        pull.base_sha = base_sha
        mergeable = git_ops.can_merge(repo.path, base_sha, pull.head_sha)
        return PullFacts(mergeable, **git_ops.diff_stats(repo.path, base_sha, pull.head_sha))

    async def facts_async(self, repo: Repo, pull: PullRequest) -> PullFacts:
        return await asyncio.to_thread(self.facts, repo, pull)

    # -- pushes --------------------------------------------------------------------------

    def _refs_changed(
        self, repo: Repo, before: dict[str, str], after: dict[str, str], pusher: User
    ) -> _Outbox:
        outbox = _Outbox()
        zero = git_ops.ZERO_SHA
        for ref in sorted(set(before) | set(after)):
            old, new = before.get(ref, zero), after.get(ref, zero)
            if old == new or not ref.startswith(("refs/heads/", "refs/tags/")):
                continue
            repo.pushed_at = time.time()
            forced = old != zero and new != zero and not git_ops.is_ancestor(repo.path, old, new)
            commits = [] if new == zero else git_ops.push_commits(repo.path, old, new)
            payload = push_payload(self.urls, repo, ref, old, new, commits, pusher, forced)
            outbox.add(repo, "push", payload)
            if not ref.startswith("refs/heads/") or new == zero:
                continue
            branch = ref.removeprefix("refs/heads/")
            for pull in repo.pulls:
                if pull.state == "open" and pull.base == branch:
                    pull.base_sha = new
            headed = repo.open_pull_for(branch)
            if headed is not None:
                previous, headed.head_sha, headed.updated_at = headed.head_sha, new, time.time()
                git_ops.set_ref(repo.path, f"refs/pull/{headed.number}/head", new)
                facts = self.facts(repo, headed)
                payload = pull_request_payload(
                    self.urls, repo, headed, facts, "synchronize", pusher, previous
                )
                outbox.add(repo, "pull_request", payload)
        return outbox

    def refs_changed(
        self, repo: Repo, before: dict[str, str], after: dict[str, str], pusher: User
    ) -> None:
        """After a push made inline (a test helper): update pull requests, send webhooks."""
        self._send(self._refs_changed(repo, before, after, pusher))

    async def refs_changed_async(
        self, repo: Repo, before: dict[str, str], after: dict[str, str], pusher: User
    ) -> None:
        """After a push over HTTP: update pull requests, send `push` and `synchronize`."""
        self._send(await asyncio.to_thread(self._refs_changed, repo, before, after, pusher))

    # -- hooks ---------------------------------------------------------------------------

    def ping(self, repo: Repo, hook: Hook, sender: User) -> None:
        payload = ping_payload(self.urls, repo, hook, sender, random.choice(ZENS))
        self.sender.send(repo, "ping", payload)

    # -- pull requests -------------------------------------------------------------------

    async def open_pull(
        self,
        repo: Repo,
        *,
        head: str,
        base: str,
        title: str,
        body: str | None,
        draft: bool,
        user: User,
    ) -> PullRequest:
        """Open a pull request as GitHub validates it; sends `pull_request` opened."""
        owner_prefix = f"{repo.owner.login}:"
        if head.lower().startswith(owner_prefix.lower()):
            head = head[len(owner_prefix) :]
        base_sha = await asyncio.to_thread(git_ops.resolve, repo.path, f"refs/heads/{base}")
        head_sha = await asyncio.to_thread(git_ops.resolve, repo.path, f"refs/heads/{head}")
        if base_sha is None:
            raise validation_failed(
                VALIDATION_DOCS, {"resource": "PullRequest", "field": "base", "code": "invalid"}
            )
        if head_sha is None:
            raise validation_failed(
                VALIDATION_DOCS, {"resource": "PullRequest", "field": "head", "code": "invalid"}
            )
        if repo.open_pull_for(head) is not None:
            message = f"A pull request already exists for {repo.owner.login}:{head}."
            raise validation_failed(
                VALIDATION_DOCS, {"resource": "PullRequest", "code": "custom", "message": message}
            )
        ahead = await asyncio.to_thread(git_ops.commits_ahead, repo.path, base_sha, head_sha)
        if not ahead:
            message = f"No commits between {base} and {head}"
            raise validation_failed(
                VALIDATION_DOCS, {"resource": "PullRequest", "code": "custom", "message": message}
            )
        pull = PullRequest(
            id=next_id(),
            number=next(repo.issue_numbers),
            title=title,
            body=body,
            head=head,
            base=base,
            user=user,
            head_sha=head_sha,
            base_sha=base_sha,
            draft=draft,
        )
        repo.pulls.append(pull)
        await asyncio.to_thread(
            git_ops.set_ref, repo.path, f"refs/pull/{pull.number}/head", head_sha
        )
        await self.send_pull_event(repo, pull, "opened", user)
        return pull

    async def send_pull_event(
        self,
        repo: Repo,
        pull: PullRequest,
        action: str,
        sender: User,
        changes: dict[str, Any] | None = None,
    ) -> None:
        facts = await self.facts_async(repo, pull)
        payload = pull_request_payload(
            self.urls, repo, pull, facts, action, sender, changes=changes
        )
        self.sender.send(repo, "pull_request", payload)

    async def merge(
        self,
        repo: Repo,
        pull: PullRequest,
        *,
        method: str,
        sha: str | None,
        title: str | None,
        message: str | None,
        actor: User,
    ) -> str:
        """Merge as `PUT .../merge` does; sends `push` for the base and `pull_request` closed."""
        if method not in ("merge", "squash", "rebase"):
            raise validation_failed(
                MERGE_DOCS,
                {"resource": "PullRequest", "field": "merge_method", "code": "invalid"},
            )
        if pull.state != "open":
            raise GitHubError(405, "Pull Request is not mergeable", MERGE_DOCS)
        if sha is not None and sha != pull.head_sha:
            raise GitHubError(
                409, "Head branch was modified. Review and try the merge again.", MERGE_DOCS
            )
        before = await asyncio.to_thread(git_ops.refs, repo.path)
        text = self._merge_message(repo, pull, method, title, message)
        committer = git_ops.Person("GitHub", "noreply@github.com")
        new_sha = await asyncio.to_thread(
            git_ops.merge_pull, repo.path, pull.base, pull.head_sha, method, text, committer
        )
        if new_sha is None:
            raise GitHubError(405, "Pull Request is not mergeable", MERGE_DOCS)
        now = time.time()
        pull.state, pull.merged, pull.merge_method = "closed", True, method
        pull.merge_commit_sha, pull.merged_by = new_sha, actor
        pull.closed_at = pull.merged_at = pull.updated_at = now
        after = await asyncio.to_thread(git_ops.refs, repo.path)
        await self.refs_changed_async(repo, before, after, actor)
        await self.send_pull_event(repo, pull, "closed", actor)
        return new_sha

    def _merge_message(
        self, repo: Repo, pull: PullRequest, method: str, title: str | None, message: str | None
    ) -> str:
        if method == "squash":
            subject = title or f"{pull.title} (#{pull.number})"
            detail = message if message is not None else (pull.body or "")
        else:
            subject = (
                title or f"Merge pull request #{pull.number} from {repo.owner.login}/{pull.head}"
            )
            detail = message if message is not None else pull.title
        return f"{subject}\n\n{detail}\n" if detail else f"{subject}\n"

    # -- comments ------------------------------------------------------------------------

    async def comment(self, repo: Repo, pull: PullRequest, body: str, user: User) -> IssueComment:
        """Comment on a pull request's conversation; sends `issue_comment` created."""
        comment = IssueComment(next_id(), pull.number, body, user)
        repo.comments.append(comment)
        payload = issue_comment_payload(self.urls, repo, pull, comment)
        self.sender.send(repo, "issue_comment", payload)
        return comment
