"""One organization's GitHub, through githubkit (typed, async; `GENWAY_GITHUB_API_URL` makes it
GitHub Enterprise Server).

A token connection uses its token. An App connection signs a JWT with the App's key and trades
it for an installation token, kept per process and replaced five minutes before it expires.
Rate limits are honoured by githubkit's retry decisions: a secondary limit waits `retry-after`,
a primary one waits for `x-ratelimit-reset` (up to `MAX_RATE_WAIT_S`; longer is an error that
says when to come back), and 5xx answers are retried twice.

Answers are read as GitHub's JSON (`response.json()`): Genway uses a few fields of each, and
reading them by name keeps it working across API versions.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, cast

import httpx
from githubkit import AppAuthStrategy, GitHub, TokenAuthStrategy
from githubkit.exception import GitHubException, RateLimitExceeded, RequestFailed
from githubkit.retry import RetryChainDecision, RetryServerError
from githubkit.typing import RetryOption

from genway.config import Settings
from genway.errors import GenwayError

MergeMethod = Literal["merge", "squash", "rebase"]
StatusState = Literal["error", "failure", "pending", "success"]
TOKEN_MARGIN_S = 300.0
MAX_RATE_WAIT_S = 120.0
TIMEOUT_S = 30.0


class GithubError(GenwayError):
    """GitHub refused or failed a request (its message is passed on)."""

    status_code = 502
    detail = "GitHub refused the request"

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message, extra={"code": "github_error", "github_status": status})
        self.github_status = status


class RetryRateLimitFor:
    """Retry a rate-limited request after the wait GitHub asks for, when it is short enough."""

    def __init__(self, max_retry: int = 3, max_wait_s: float = MAX_RATE_WAIT_S) -> None:
        self.max_retry = max_retry
        self.max_wait_s = max_wait_s

    def __call__(self, exc: GitHubException, retry_count: int) -> RetryOption:
        if retry_count >= self.max_retry or not isinstance(exc, RateLimitExceeded):
            return RetryOption(False)
        wait = max(exc.retry_after, timedelta(0))
        if wait.total_seconds() > self.max_wait_s:
            return RetryOption(False)
        return RetryOption(True, wait)


RETRY = RetryChainDecision(RetryRateLimitFor(), RetryServerError(max_retry=2))


@dataclass(frozen=True)
class Credentials:
    kind: str  # "token" | "app"
    secret: str  # the token, or the App's private key (PEM)
    app_id: int | None = None
    installation_id: int | None = None


_installation_tokens: dict[tuple[str, int, int], tuple[str, float]] = {}
_token_locks: dict[tuple[str, int, int], asyncio.Lock] = {}


def _failure(exc: Exception, doing: str) -> GithubError:
    if isinstance(exc, RateLimitExceeded):
        wait = int(exc.retry_after.total_seconds())
        message = f"GitHub's rate limit holds while {doing}; retry in {wait} s"
        return GithubError(message, status=429)
    if isinstance(exc, RequestFailed):
        status = exc.response.status_code
        try:
            message = exc.response.json().get("message") or ""
        except ValueError:
            message = ""
        text = f"GitHub answered {status} while {doing}: {message}".strip()
        return GithubError(text, status=status)
    return GithubError(f"GitHub could not be reached while {doing}: {exc}")


class GithubClient:
    def __init__(self, settings: Settings, credentials: Credentials) -> None:
        self.settings = settings
        self.credentials = credentials

    def _github(self, auth: TokenAuthStrategy | AppAuthStrategy) -> GitHub[Any]:
        return GitHub(
            auth,
            base_url=self.settings.github_api_url,
            timeout=TIMEOUT_S,
            auto_retry=RETRY,
            http_cache=False,
            user_agent="Genway",
        )

    async def token(self) -> str:
        """A token for REST and for git over HTTPS."""
        creds = self.credentials
        if creds.kind == "token":
            return creds.secret
        assert creds.app_id is not None and creds.installation_id is not None
        key = (self.settings.github_api_url, creds.app_id, creds.installation_id)
        lock = _token_locks.setdefault(key, asyncio.Lock())
        async with lock:
            cached = _installation_tokens.get(key)
            if cached is not None and cached[1] - TOKEN_MARGIN_S > time.time():
                return cached[0]
            app = self._github(AppAuthStrategy(str(creds.app_id), creds.secret))
            try:
                response = await app.rest.apps.async_create_installation_access_token(
                    creds.installation_id
                )
            except (GitHubException, httpx.HTTPError) as exc:
                raise _failure(exc, "getting an installation token") from exc
            data = response.json()
            expires = _epoch(data.get("expires_at")) or time.time() + 3600
            _installation_tokens[key] = (data["token"], expires)
            return str(data["token"])

    async def _api(self) -> GitHub[Any]:
        return self._github(TokenAuthStrategy(await self.token()))

    async def _call(self, doing: str, call: Any) -> Any:
        try:
            response = await call
        except (GitHubException, httpx.HTTPError) as exc:
            raise _failure(exc, doing) from exc
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    # -- who and what ------------------------------------------------------------------------

    async def account(self) -> str:
        """The user the token is, or the account the App is installed on. Checks the
        credentials: raises GithubError when GitHub refuses them."""
        creds = self.credentials
        if creds.kind == "token":
            api = await self._api()
            user = await self._call("checking the token", api.rest.users.async_get_authenticated())
            return str(user["login"])
        assert creds.app_id is not None and creds.installation_id is not None
        app = self._github(AppAuthStrategy(str(creds.app_id), creds.secret))
        installation = await self._call(
            "reading the App's installation",
            app.rest.apps.async_get_installation(creds.installation_id),
        )
        await self.token()
        return str((installation.get("account") or {}).get("login") or creds.installation_id)

    async def repositories(self, page: int, per_page: int) -> tuple[list[dict[str, Any]], bool]:
        """A page of the repositories the connection can see, and whether more follow."""
        api = await self._api()
        if self.credentials.kind == "token":
            mine = api.rest.repos.async_list_for_authenticated_user(
                per_page=per_page, page=page, sort="full_name"
            )
            repos = await self._call("listing repositories", mine) or []
        else:
            installed = api.rest.apps.async_list_repos_accessible_to_installation(
                per_page=per_page, page=page
            )
            body = await self._call("listing repositories", installed) or {}
            repos = body.get("repositories") or []
        return list(repos), len(repos) == per_page

    async def repository(self, full_name: str) -> dict[str, Any]:
        owner, name = full_name.split("/", 1)
        api = await self._api()
        repo: dict[str, Any] = await self._call(
            f"reading {full_name}", api.rest.repos.async_get(owner, name)
        )
        return repo

    # -- webhooks ----------------------------------------------------------------------------

    async def create_hook(self, full_name: str, url: str, secret: str) -> int:
        owner, name = full_name.split("/", 1)
        api = await self._api()
        hook = await self._call(
            f"registering the webhook of {full_name}",
            api.rest.repos.async_create_webhook(
                owner,
                name,
                name="web",
                active=True,
                events=["pull_request", "push", "check_suite", "issue_comment"],
                config={"url": url, "content_type": "json", "secret": secret, "insecure_ssl": "0"},
            ),
        )
        return int(hook["id"])

    async def delete_hook(self, full_name: str, hook_id: int) -> None:
        """Remove the webhook; one already gone is fine."""
        owner, name = full_name.split("/", 1)
        api = await self._api()
        try:
            await self._call(
                f"removing the webhook of {full_name}",
                api.rest.repos.async_delete_webhook(owner, name, hook_id),
            )
        except GithubError as exc:
            if exc.github_status != 404:
                raise

    # -- pull requests -----------------------------------------------------------------------

    async def open_pull(
        self, full_name: str, *, head: str, base: str, title: str, body: str
    ) -> dict[str, Any]:
        owner, name = full_name.split("/", 1)
        api = await self._api()
        pull: dict[str, Any] = await self._call(
            f"opening a pull request on {full_name}",
            api.rest.pulls.async_create(owner, name, title=title, head=head, base=base, body=body),
        )
        return pull

    async def find_open_pull(self, full_name: str, head: str) -> dict[str, Any] | None:
        owner, name = full_name.split("/", 1)
        api = await self._api()
        pulls = await self._call(
            f"looking for the pull request of {head}",
            api.rest.pulls.async_list(owner, name, state="open", head=f"{owner}:{head}"),
        )
        return pulls[0] if pulls else None

    async def pull(self, full_name: str, number: int) -> dict[str, Any]:
        owner, name = full_name.split("/", 1)
        api = await self._api()
        pull: dict[str, Any] = await self._call(
            f"reading pull request #{number}", api.rest.pulls.async_get(owner, name, number)
        )
        return pull

    async def merge_pull(
        self, full_name: str, number: int, *, sha: str, method: str
    ) -> dict[str, Any]:
        owner, name = full_name.split("/", 1)
        api = await self._api()
        merged: dict[str, Any] = await self._call(
            f"merging pull request #{number}",
            api.rest.pulls.async_merge(
                owner, name, number, sha=sha, merge_method=cast(MergeMethod, method)
            ),
        )
        return merged

    async def comment(self, full_name: str, number: int, body: str) -> None:
        owner, name = full_name.split("/", 1)
        api = await self._api()
        await self._call(
            f"commenting on #{number}",
            api.rest.issues.async_create_comment(owner, name, number, body=body),
        )

    # -- reporting ---------------------------------------------------------------------------

    async def report(
        self,
        full_name: str,
        sha: str,
        *,
        state: str,
        summary: str,
        text: str,
        target_url: str | None,
        check_run_id: int | None = None,
    ) -> int | None:
        """Tell GitHub how validation of `sha` goes: a check run with an App (its id is
        returned, to update it), a commit status with a token. `state` is pending, success,
        failure or error."""
        owner, name = full_name.split("/", 1)
        api = await self._api()
        if self.credentials.kind == "app":
            fields: dict[str, Any] = {
                "name": "Genway validation",
                "output": {"title": summary[:255], "summary": summary, "text": text[:60_000]},
                "details_url": target_url,
            }
            if state == "pending":
                fields["status"] = "in_progress"
            else:
                fields["status"] = "completed"
                fields["conclusion"] = {"success": "success", "failure": "failure"}.get(
                    state, "neutral"
                )
            if check_run_id is None:
                run = await self._call(
                    "creating a check run",
                    api.rest.checks.async_create(owner, name, head_sha=sha, **fields),
                )
                return int(run["id"])
            await self._call(
                "updating the check run",
                api.rest.checks.async_update(owner, name, check_run_id, **fields),
            )
            return check_run_id
        await self._call(
            "setting the commit status",
            api.rest.repos.async_create_commit_status(
                owner,
                name,
                sha,
                state=cast(StatusState, state),
                context="genway/validation",
                description=summary[:140],
                target_url=target_url,
            ),
        )
        return None


def _epoch(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
