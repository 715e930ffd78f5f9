"""What the fake GitHub knows: users, tokens, apps, installations, repositories and their
hooks, pull requests, commit statuses, check runs and comments, plus the logs tests read."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

AuthKind = Literal["token", "app_jwt", "installation"]

_ids = itertools.count(1_000_001)


def next_id() -> int:
    """A fresh id, unique across every kind of object in the process."""
    return next(_ids)


def iso(epoch: float) -> str:
    """GitHub's timestamp format: `2024-01-02T03:04:05Z`."""
    return datetime.fromtimestamp(int(epoch), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(eq=False)
class User:
    """A GitHub account: a person (`User`) or an app's bot (`Bot`)."""

    login: str
    id: int = field(default_factory=next_id)
    type: str = "User"
    created_at: float = field(default_factory=time.time)

    @property
    def email(self) -> str:
        return f"{self.id}+{self.login}@users.noreply.github.com"


@dataclass(eq=False)
class App:
    """A GitHub App: its RSA key pair and its bot account."""

    id: int
    slug: str
    name: str
    owner: User
    bot: User
    private_key_pem: str
    public_key_pem: str
    client_id: str
    created_at: float = field(default_factory=time.time)


@dataclass(eq=False)
class Installation:
    """An app installed on an account, for some repositories (`None`: all of them)."""

    id: int
    app: App
    account: User
    repository_names: list[str] | None
    created_at: float = field(default_factory=time.time)


@dataclass(eq=False)
class Token:
    """A bearer credential: a personal access token or an installation access token."""

    value: str
    kind: AuthKind
    user: User
    installation: Installation | None = None
    expires_at: float | None = None

    def expired(self) -> bool:
        return self.expires_at is not None and time.time() >= self.expires_at


@dataclass(eq=False)
class Hook:
    """A repository webhook. The secret is never shown through the API."""

    id: int
    url: str
    secret: str | None
    events: list[str]
    active: bool
    content_type: str
    insecure_ssl: str
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    last_response: dict[str, Any] = field(
        default_factory=lambda: {"code": None, "status": "unused", "message": None}
    )

    def wants(self, event: str) -> bool:
        return self.active and (event in self.events or "*" in self.events or event == "ping")


@dataclass(eq=False)
class PullRequest:
    """A pull request, kept in step with the bare repository's branches."""

    id: int
    number: int
    title: str
    body: str | None
    head: str
    base: str
    user: User
    head_sha: str
    base_sha: str
    draft: bool = False
    state: str = "open"
    merged: bool = False
    merge_method: str | None = None
    merge_commit_sha: str | None = None
    merged_by: User | None = None
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    closed_at: float | None = None
    merged_at: float | None = None


@dataclass(eq=False)
class CommitStatus:
    """A commit status posted with `POST /repos/{o}/{r}/statuses/{sha}`."""

    id: int
    sha: str
    state: str
    context: str
    description: str | None
    target_url: str | None
    creator: User
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)


@dataclass(eq=False)
class CheckRun:
    """A check run made by an app through its installation."""

    id: int
    name: str
    head_sha: str
    app: App
    status: str = "queued"
    conclusion: str | None = None
    output: dict[str, Any] = field(default_factory=dict)
    external_id: str | None = None
    details_url: str | None = None
    started_at: float | None = None
    completed_at: float | None = None
    check_suite_id: int = field(default_factory=next_id)


@dataclass(eq=False)
class IssueComment:
    """A comment on an issue or pull request's conversation."""

    id: int
    issue_number: int
    body: str
    user: User
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)


@dataclass(eq=False)
class Repo:
    """A repository: a bare git repository on disk and what GitHub keeps beside it."""

    id: int
    owner: User
    name: str
    path: Path
    default_branch: str
    private: bool
    base_url: str
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    pushed_at: float = field(default_factory=time.time)
    hooks: list[Hook] = field(default_factory=list)
    pulls: list[PullRequest] = field(default_factory=list)
    statuses: list[CommitStatus] = field(default_factory=list)
    check_runs: list[CheckRun] = field(default_factory=list)
    comments: list[IssueComment] = field(default_factory=list)
    issue_numbers: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def full_name(self) -> str:
        return f"{self.owner.login}/{self.name}"

    @property
    def clone_url(self) -> str:
        return f"{self.base_url}/{self.full_name}.git"

    def pull(self, number: int) -> PullRequest | None:
        return next((pull for pull in self.pulls if pull.number == number), None)

    def open_pull_for(self, head: str) -> PullRequest | None:
        return next((p for p in self.pulls if p.head == head and p.state == "open"), None)


@dataclass
class Delivery:
    """One webhook the fake sent, and how the receiver answered (`status` None: no answer)."""

    event: str
    action: str | None
    delivery_id: str
    hook_id: int
    payload: dict[str, Any]
    status: int | None = None
    response_body: str | None = None
    error: str | None = None
    answered: bool = False


@dataclass
class RequestRecord:
    """One REST request the fake answered."""

    method: str
    path: str
    status: int
    auth_kind: AuthKind | None
