"""`FakeGitHub`: a real HTTP server on 127.0.0.1 speaking GitHub's REST API (Enterprise Server
layout, under `/api/v3`) and git's smart HTTP protocol, sending GitHub's webhooks, with
helpers for tests to set it up, act as humans on it and read back what happened."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Literal, Self

import pytest
import uvicorn
from starlette.applications import Starlette

from tests.fakes.github import git_ops
from tests.fakes.github.activity import Activity
from tests.fakes.github.api_accounts import ROUTES as ACCOUNT_ROUTES
from tests.fakes.github.api_commits import ROUTES as COMMIT_ROUTES
from tests.fakes.github.api_pulls import ROUTES as PULL_ROUTES
from tests.fakes.github.api_repos import ROUTES as REPO_ROUTES
from tests.fakes.github.examples import webhook_example
from tests.fakes.github.git_http import GitHttp
from tests.fakes.github.hooks import WebhookSender
from tests.fakes.github.json_views import Urls
from tests.fakes.github.npm_cache import NpmUnavailable
from tests.fakes.github.rest import Handler, RestApi
from tests.fakes.github.schema import github_openapi
from tests.fakes.github.state import (
    CheckRun,
    CommitStatus,
    Delivery,
    Hook,
    Installation,
    IssueComment,
    PullRequest,
    Repo,
    RequestRecord,
    next_id,
)
from tests.fakes.github.store import Store

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _load_descriptions() -> None:
    github_openapi()
    webhook_example("ping")


class FakeGitHub:
    """GitHub on a free loopback port, inside the test's event loop. Use `async with`."""

    def __init__(self, root: Path, *, installation_token_ttl_s: float = 3600) -> None:
        self.root = Path(root)
        self.installation_token_ttl_s = installation_token_ttl_s
        self._store = Store(self.root)
        self.rest = RestApi(self)
        self._git = GitHttp(self)
        self._sender: WebhookSender | None = None
        self._activity: Activity | None = None
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.url = ""

    # -- lifecycle -----------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        try:
            await asyncio.to_thread(_load_descriptions)
        except NpmUnavailable as error:
            reason = f"FakeGitHub needs GitHub's published descriptions from npm: {error}"
            if IN_CI:
                raise RuntimeError(reason) from error
            pytest.skip(reason)
        self.root.mkdir(parents=True, exist_ok=True)
        app = Starlette(routes=[*self.rest.routes(self._route_table()), *self._git.routes()])
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self._sender = WebhookSender()
        self._activity = Activity(self.urls, self._sender)
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._sender is not None:
            await self._sender.close()
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @staticmethod
    def _route_table() -> dict[str, dict[str, Handler]]:
        return {**ACCOUNT_ROUTES, **REPO_ROUTES, **PULL_ROUTES, **COMMIT_ROUTES}

    # -- where it is ---------------------------------------------------------------------

    @property
    def store(self) -> Store:
        """Accounts, tokens, apps and repositories (for tests that need to look closer)."""
        return self._store

    @property
    def urls(self) -> Urls:
        return Urls(self.url)

    @property
    def api_url(self) -> str:
        """The REST API root, as GitHub Enterprise Server lays it out."""
        return self.urls.api

    @property
    def activity(self) -> Activity:
        if self._activity is None:
            raise RuntimeError("FakeGitHub is not running: use `async with FakeGitHub(...)`")
        return self._activity

    # -- setting up ----------------------------------------------------------------------

    def add_user(self, login: str) -> str:
        """A user and a new fine-grained personal access token (`github_pat_...`) for them."""
        return self.store.add_pat(self.store.user(login))

    def create_repo(
        self,
        owner: str,
        name: str,
        files: dict[str, str] | None = None,
        *,
        default_branch: str = "main",
        private: bool = False,
    ) -> Repo:
        """A repository with one commit holding `files` on `default_branch`."""
        user = self.store.user(owner)
        if self.store.repo(owner, name) is not None:
            raise ValueError(f"{owner}/{name} exists")
        path = self.root / owner / f"{name}.git"
        path.parent.mkdir(parents=True, exist_ok=True)
        git_ops.init_bare(path, default_branch)
        git_ops.commit_files(
            path,
            default_branch,
            files or {"README.md": f"# {name}\n"},
            "Initial commit",
            git_ops.Person(user.login, user.email),
        )
        repo = Repo(next_id(), user, name, path, default_branch, private, self.url)
        self.store.repos[(owner.lower(), name.lower())] = repo
        return repo

    def add_app(self, name: str, *, owner: str = "github") -> tuple[int, str]:
        """A GitHub App: (app id, its RSA private key as PEM) for signing RS256 JWTs."""
        app = self.store.add_app(name, self.store.user(owner))
        return app.id, app.private_key_pem

    def install_app(self, app_id: int, account: str, repos: list[str] | None = None) -> int:
        """Install the app on `account`, for `repos` (None: all its repositories)."""
        installation = Installation(
            next_id(), self.store.apps[app_id], self.store.user(account), repos
        )
        self.store.installations[installation.id] = installation
        return installation.id

    def rate_limit_next(
        self,
        count: int = 1,
        kind: Literal["primary", "secondary"] = "secondary",
        retry_after: int = 1,
    ) -> None:
        """Answer the next `count` REST requests with GitHub's rate-limit 403."""
        self.rest.rate_limit_next(count, kind, retry_after)

    # -- reading back --------------------------------------------------------------------

    def _repo(self, owner: str, name: str) -> Repo:
        repo = self.store.repo(owner, name)
        if repo is None:
            raise KeyError(f"no repository {owner}/{name}")
        return repo

    def hooks(self, owner: str, name: str) -> list[Hook]:
        return list(self._repo(owner, name).hooks)

    def pulls(self, owner: str, name: str) -> list[PullRequest]:
        return list(self._repo(owner, name).pulls)

    def statuses(self, owner: str, name: str, sha: str) -> list[CommitStatus]:
        return [s for s in self._repo(owner, name).statuses if s.sha == sha]

    def check_runs(self, owner: str, name: str) -> list[CheckRun]:
        return list(self._repo(owner, name).check_runs)

    def comments(self, owner: str, name: str, number: int) -> list[IssueComment]:
        return [c for c in self._repo(owner, name).comments if c.issue_number == number]

    def read_file(self, owner: str, name: str, ref: str, path: str) -> str | None:
        """A file's text at a branch or sha (None when absent)."""
        return git_ops.read_file(self._repo(owner, name).path, ref, path)

    def branch_sha(self, owner: str, name: str, branch: str) -> str | None:
        return git_ops.resolve(self._repo(owner, name).path, f"refs/heads/{branch}")

    @property
    def deliveries(self) -> list[Delivery]:
        return self._sender.deliveries if self._sender is not None else []

    @property
    def requests(self) -> list[RequestRecord]:
        return self.rest.requests

    @property
    def schema_violations(self) -> list[str]:
        return self.rest.schema_violations

    @property
    def webhook_violations(self) -> list[str]:
        """Every webhook payload the fake built that GitHub's description (`x-webhooks`) does
        not admit; like `schema_violations`, it should stay empty."""
        return self._sender.violations if self._sender is not None else []

    async def wait_for_delivery(
        self,
        event: str,
        action: str | None = None,
        timeout: float = 30,
        predicate: Callable[[Delivery], bool] | None = None,
    ) -> Delivery:
        """The first delivery of `event` (`action`) that was sent and answered."""
        if self._sender is None:
            raise RuntimeError("FakeGitHub is not running")
        return await self._sender.wait_for(event, action, timeout, predicate)

    # -- acting as people ----------------------------------------------------------------

    def push_files(
        self,
        owner: str,
        name: str,
        branch: str,
        files: dict[str, str],
        *,
        message: str = "Update files",
        author: str = "octocat",
    ) -> str:
        """A human's push of one commit to `branch` (new branches start at the default one);
        sends `push`, and `pull_request` synchronize when the branch heads an open PR."""
        repo = self._repo(owner, name)
        user = self.store.user(author)
        before = git_ops.refs(repo.path)
        sha = git_ops.commit_files(
            repo.path,
            branch,
            files,
            message,
            git_ops.Person(user.login, user.email),
            start_from=repo.default_branch,
        )
        self.activity.refs_changed(repo, before, git_ops.refs(repo.path), user)
        return sha

    async def open_pull(
        self,
        owner: str,
        name: str,
        *,
        head: str,
        base: str | None = None,
        title: str = "A change",
        body: str | None = None,
        user: str = "octocat",
        draft: bool = False,
    ) -> int:
        """A human opens a pull request (sends `pull_request` opened); its number."""
        repo = self._repo(owner, name)
        pull = await self.activity.open_pull(
            repo,
            head=head,
            base=base or repo.default_branch,
            title=title,
            body=body,
            draft=draft,
            user=self.store.user(user),
        )
        return pull.number

    async def comment(
        self, owner: str, name: str, number: int, body: str, *, user: str = "octocat"
    ) -> int:
        """A human comments on a pull request (sends `issue_comment` created); the id."""
        repo = self._repo(owner, name)
        pull = repo.pull(number)
        if pull is None:
            raise KeyError(f"no pull request #{number} in {repo.full_name}")
        comment = await self.activity.comment(repo, pull, body, self.store.user(user))
        return comment.id
