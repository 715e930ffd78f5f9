"""The REST plumbing shared by every endpoint: authentication, injected rate limits, GitHub's
response headers, checking each answer against the OpenAPI description, and the request log.

Endpoints are plain async functions of a `Call` returning an `Answer` (or raising
`GitHubError`); `RestApi.routes` mounts them under `/api/v3` at their OpenAPI path templates,
which is also how each answer finds the operation it is checked against.
"""

from __future__ import annotations

import json
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol
from urllib.parse import urlencode

import jwt
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from tests.fakes.github.activity import Activity, GitHubError
from tests.fakes.github.json_views import Urls
from tests.fakes.github.schema import github_openapi
from tests.fakes.github.state import Repo, RequestRecord
from tests.fakes.github.store import Principal, Store, can_read

API_PREFIX = "/api/v3"
API_VERSION = "2022-11-28"
REST_DOCS = "https://docs.github.com/rest"
RATE_LIMIT_DOCS = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
SECONDARY_DOCS = (
    "https://docs.github.com/free-pro-team@latest/rest/overview/rate-limits-for-the-rest-api"
    "#about-secondary-rate-limits"
)
JWT_MAX_LIFETIME_S = 600
CLOCK_DRIFT_S = 60
ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


class Fake(Protocol):
    """What endpoints may use of the fake."""

    installation_token_ttl_s: float

    @property
    def store(self) -> Store: ...

    @property
    def activity(self) -> Activity: ...

    @property
    def urls(self) -> Urls: ...


@dataclass
class Answer:
    """An endpoint's answer: status, JSON body (None: empty) and extra headers."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Call:
    """One REST request, as an endpoint sees it."""

    request: Request
    fake: Fake
    principal: Principal | None
    params: dict[str, str]

    async def json(self) -> dict[str, Any]:
        raw = await self.request.body()
        if not raw:
            return {}
        try:
            body = json.loads(raw)
        except ValueError as error:
            raise GitHubError(400, "Problems parsing JSON", REST_DOCS) from error
        if not isinstance(body, dict):
            raise GitHubError(400, "Problems parsing JSON", REST_DOCS)
        return body

    def repo(self) -> Repo:
        """The `{owner}/{repo}` of the path, or GitHub's 404 when unseen by the caller."""
        repo = self.fake.store.repo(self.params["owner"], self.params["repo"])
        if repo is None or not can_read(self.principal, repo):
            raise not_found()
        return repo

    def query_int(self, name: str, default: int, maximum: int | None = None) -> int:
        raw = self.request.query_params.get(name)
        try:
            value = int(raw) if raw is not None else default
        except ValueError:
            value = default
        value = max(value, 1)
        return min(value, maximum) if maximum is not None else value


Handler = Callable[[Call], Awaitable[Answer]]


def not_found() -> GitHubError:
    return GitHubError(404, "Not Found", REST_DOCS)


def bad_credentials() -> GitHubError:
    return GitHubError(401, "Bad credentials", REST_DOCS)


@dataclass(frozen=True)
class _Throttle:
    kind: Literal["primary", "secondary"]
    retry_after: int


class RestApi:
    """Serves the endpoints and keeps `requests` and `schema_violations`."""

    def __init__(self, fake: Fake) -> None:
        self.fake = fake
        self.requests: list[RequestRecord] = []
        self.schema_violations: list[str] = []
        self._throttles: deque[_Throttle] = deque()
        self._used: dict[str, int] = {}
        self._window_reset = int(time.time()) + 3600

    def rate_limit_next(
        self, count: int, kind: Literal["primary", "secondary"], retry_after: int
    ) -> None:
        self._throttles.extend(_Throttle(kind, retry_after) for _ in range(count))

    def routes(self, table: dict[str, dict[str, Handler]]) -> list[BaseRoute]:
        """Routes for `{template: {method: handler}}` plus GitHub's 404 for anything else."""
        routes: list[BaseRoute] = []
        for template, handlers in table.items():

            async def endpoint(
                request: Request, template: str = template, handlers: dict[str, Handler] = handlers
            ) -> Response:
                return await self._serve(request, template, handlers)

            routes.append(Route(API_PREFIX + template, endpoint, methods=ALL_METHODS))

        async def fallback(request: Request) -> Response:
            return await self._serve(request, None, {})

        routes.append(Route(API_PREFIX + "/{rest:path}", fallback, methods=ALL_METHODS))
        routes.append(Route(API_PREFIX, fallback, methods=ALL_METHODS))
        return routes

    async def _serve(
        self, request: Request, template: str | None, handlers: dict[str, Handler]
    ) -> Response:
        request_id = "{:04X}:{:04X}:{:06X}:{:06X}:{:08X}".format(
            *(secrets.randbelow(16**n) for n in (4, 4, 6, 6, 8))
        )
        principal: Principal | None = None
        operation = template if template and request.method in handlers else None
        try:
            principal = self._authenticate(request.headers.get("authorization"))
            answer = self._throttled(principal, request_id)
            if answer is None:
                handler = handlers.get(request.method)
                if handler is None:
                    raise not_found()
                call = Call(request, self.fake, principal, dict(request.path_params))
                answer = await handler(call)
        except GitHubError as error:
            answer = Answer(error.status, error.body)
        return self._respond(request, operation, principal, answer, request_id)

    def _respond(
        self,
        request: Request,
        operation: str | None,
        principal: Principal | None,
        answer: Answer,
        request_id: str,
    ) -> Response:
        path = request.url.path.removeprefix(API_PREFIX) or "/"
        violations = github_openapi().violations(
            request.method, operation, answer.status, answer.body
        )
        self.schema_violations.extend(f"{v} (request {request.method} {path})" for v in violations)
        self.requests.append(
            RequestRecord(
                request.method, path, answer.status, principal.kind if principal else None
            )
        )
        headers = {
            **self._rate_headers(principal),
            "x-github-request-id": request_id,
            "x-github-api-version-selected": API_VERSION,
            "x-github-media-type": "github.v3; format=json",
            **answer.headers,
        }
        if answer.body is None:
            return Response(status_code=answer.status, headers=headers)
        content = json.dumps(answer.body, indent=2).encode()
        return Response(
            content, answer.status, headers, media_type="application/json; charset=utf-8"
        )

    # -- authentication ------------------------------------------------------------------

    def _authenticate(self, header: str | None) -> Principal | None:
        if not header:
            return None
        scheme, _, credential = header.strip().partition(" ")
        credential = credential.strip()
        if scheme.lower() not in ("bearer", "token") or not credential:
            raise bad_credentials()
        if credential.count(".") == 2 and credential.startswith("eyJ"):
            return self._authenticate_app(credential)
        token = self.fake.store.tokens.get(credential)
        if token is None or token.expired():
            raise bad_credentials()
        return Principal(token.kind, token.user, installation=token.installation)

    def _authenticate_app(self, credential: str) -> Principal:
        def refuse(message: str) -> GitHubError:
            return GitHubError(401, message, REST_DOCS)

        try:
            claims = jwt.decode(credential, options={"verify_signature": False})
            app = self.fake.store.app_for_issuer(claims["iss"])
        except (jwt.PyJWTError, KeyError) as error:
            raise refuse("A JSON web token could not be decoded") from error
        if app is None:
            raise refuse(f"Integration not found for the 'iss' claim ({claims.get('iss')})")
        try:
            claims = jwt.decode(
                credential,
                app.public_key_pem,
                algorithms=["RS256"],
                options={"require": ["iat", "exp", "iss"]},
                leeway=CLOCK_DRIFT_S,
            )
        except jwt.ExpiredSignatureError as error:
            raise refuse(
                "'Expiration time' claim ('exp') must be a numeric value representing the "
                "future time at which the assertion expires"
            ) from error
        except jwt.PyJWTError as error:
            raise refuse("A JSON web token could not be decoded") from error
        now = time.time()
        if claims["exp"] > now + JWT_MAX_LIFETIME_S + CLOCK_DRIFT_S:
            raise refuse(
                "'Expiration time' claim ('exp') is too far in the future; "
                "it must be no more than 10 minutes from now"
            )
        if claims["iat"] > now + CLOCK_DRIFT_S:
            raise refuse("'Issued at' claim ('iat') must be an Integer representing the time")
        return Principal("app_jwt", app=app)

    # -- rate limits ---------------------------------------------------------------------

    @staticmethod
    def _rate_key(principal: Principal | None) -> str:
        if principal is None:
            return "anonymous"
        if principal.app is not None:
            return f"app:{principal.app.id}"
        if principal.installation is not None:
            return f"installation:{principal.installation.id}"
        assert principal.user is not None
        return f"user:{principal.user.id}"

    def _rate_headers(self, principal: Principal | None) -> dict[str, str]:
        now = int(time.time())
        if now >= self._window_reset:
            self._window_reset, self._used = now + 3600, {}
        key = self._rate_key(principal)
        used = self._used[key] = self._used.get(key, 0) + 1
        limit = 60 if principal is None else 5000
        return {
            "x-ratelimit-limit": str(limit),
            "x-ratelimit-remaining": str(max(limit - used, 0)),
            "x-ratelimit-reset": str(self._window_reset),
            "x-ratelimit-used": str(used),
            "x-ratelimit-resource": "core",
        }

    def _throttled(self, principal: Principal | None, request_id: str) -> Answer | None:
        if not self._throttles:
            return None
        throttle = self._throttles.popleft()
        if throttle.kind == "secondary":
            message = (
                "You have exceeded a secondary rate limit. Please wait a few minutes before "
                "you try again. If you reach out to GitHub Support for help, please include "
                f"the request ID {request_id}."
            )
            body = {"message": message, "documentation_url": SECONDARY_DOCS}
            return Answer(403, body, {"retry-after": str(throttle.retry_after)})
        reset = int(time.time()) + throttle.retry_after
        who = principal.user.id if principal and principal.user else 0
        message = (
            f"API rate limit exceeded for user ID {who}. If you reach out to GitHub Support "
            f"for help, please include the request ID {request_id} and timestamp "
            f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}."
        )
        limit = "60" if principal is None else "5000"
        headers = {
            "x-ratelimit-limit": limit,
            "x-ratelimit-remaining": "0",
            "x-ratelimit-reset": str(reset),
            "x-ratelimit-used": limit,
            "x-ratelimit-resource": "core",
        }
        return Answer(403, {"message": message, "documentation_url": RATE_LIMIT_DOCS}, headers)


def link_header(request: Request, page: int, per_page: int, total: int) -> dict[str, str]:
    """GitHub's `Link` pagination header (none when everything fits one page)."""
    last = max((total + per_page - 1) // per_page, 1)
    if last == 1:
        return {}
    base = str(request.url.replace(query=""))
    params = dict(request.query_params)

    def url(number: int) -> str:
        return f"{base}?{urlencode({**params, 'per_page': per_page, 'page': number})}"

    links = []
    if page > 1:
        links += [f'<{url(page - 1)}>; rel="prev"']
    if page < last:
        links += [f'<{url(page + 1)}>; rel="next"', f'<{url(last)}>; rel="last"']
    if page > 1:
        links += [f'<{url(1)}>; rel="first"']
    return {"link": ", ".join(links)}
