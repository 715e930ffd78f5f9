"""Git's smart HTTP protocol at `/{owner}/{repo}.git/...`, served by the real
`git http-backend` CGI with GitHub's Basic-auth rules (any username, a token as password;
public repositories may be fetched anonymously, pushes always need write access).

After a push (`git-receive-pack`) the repository's refs before and after are compared and the
fake reacts as GitHub does: `push` webhooks, pull request heads moved, `synchronize` sent.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import os
import shutil

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from tests.fakes.github import git_ops
from tests.fakes.github.rest import Fake
from tests.fakes.github.state import Repo
from tests.fakes.github.store import Principal, can_read, can_write

GIT = shutil.which("git") or "git"
CHALLENGE = {"WWW-Authenticate": 'Basic realm="GitHub"'}


class _WrongCredentials(Exception):
    """The Basic credentials name no live token."""


def _credentials(fake: Fake, header: str | None) -> Principal | None:
    """The principal a Basic header names (any username, a token as password); None when
    there is no header; `_WrongCredentials` when the token is unknown or expired."""
    if not header:
        return None
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        raise _WrongCredentials
    try:
        _username, _, password = base64.b64decode(encoded.strip()).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError) as error:
        raise _WrongCredentials from error
    token = fake.store.tokens.get(password)
    if token is None or token.expired():
        raise _WrongCredentials
    return Principal(token.kind, token.user, installation=token.installation)


def _split_cgi(output: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
    for separator in (b"\r\n\r\n", b"\n\n"):
        head, found, body = output.partition(separator)
        if found:
            break
    else:
        return 502, [], output
    status = 200
    headers: list[tuple[str, str]] = []
    for line in head.decode("latin-1").splitlines():
        name, _, value = line.partition(":")
        if name.lower() == "status":
            status = int(value.strip().split()[0])
        elif name:
            headers.append((name.strip(), value.strip()))
    return status, headers, body


class GitHttp:
    """The endpoint serving every repository's git traffic."""

    def __init__(self, fake: Fake) -> None:
        self.fake = fake

    def routes(self) -> list[Route]:
        return [
            Route("/{owner}/{repo}.git/{rest:path}", self.serve, methods=["GET", "POST"]),
        ]

    async def serve(self, request: Request) -> Response:
        params = request.path_params
        service = request.query_params.get("service") or params["rest"].rsplit("/", 1)[-1]
        pushing = service == "git-receive-pack"
        repo = self.fake.store.repo(params["owner"], params["repo"])
        try:
            principal = _credentials(self.fake, request.headers.get("authorization"))
        except _WrongCredentials:
            return PlainTextResponse("Invalid username or token.\n", 401, headers=CHALLENGE)
        if principal is None and (pushing or not _public(repo)):
            return PlainTextResponse("Authentication required\n", 401, headers=CHALLENGE)
        if repo is None or not can_read(principal, repo):
            return PlainTextResponse("Repository not found.\n", 404)
        if pushing and not can_write(principal, repo):
            login = principal.user.login if principal and principal.user else "anonymous"
            return PlainTextResponse(
                f"Permission to {repo.full_name}.git denied to {login}.\n", 403
            )
        receiving = pushing and request.method == "POST"
        before = await asyncio.to_thread(git_ops.refs, repo.path) if receiving else {}
        response = await self._backend(request, repo, principal, params["rest"])
        if receiving and principal is not None and principal.user is not None:
            after = await asyncio.to_thread(git_ops.refs, repo.path)
            await self.fake.activity.refs_changed_async(repo, before, after, principal.user)
        return response

    async def _backend(
        self, request: Request, repo: Repo, principal: Principal | None, rest: str
    ) -> Response:
        body = await request.body()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": str(self.fake.store.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "GIT_CONFIG_NOSYSTEM": "1",
            "HOME": str(self.fake.store.root),
            "PATH_INFO": f"/{repo.path.relative_to(self.fake.store.root).as_posix()}/{rest}",
            "REQUEST_METHOD": request.method,
            "QUERY_STRING": request.url.query,
            "REMOTE_ADDR": request.client.host if request.client else "127.0.0.1",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "CONTENT_TYPE": request.headers.get("content-type", ""),
        }
        if body:
            env["CONTENT_LENGTH"] = str(len(body))
        if principal is not None and principal.user is not None:
            env["REMOTE_USER"] = principal.user.login
        for header, variable in (
            ("git-protocol", "GIT_PROTOCOL"),
            ("content-encoding", "HTTP_CONTENT_ENCODING"),
        ):
            if header in request.headers:
                env[variable] = request.headers[header]
        process = await asyncio.create_subprocess_exec(
            GIT,
            "http-backend",
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await process.communicate(body)
        status, headers, payload = _split_cgi(stdout)
        if process.returncode and not stdout:
            return PlainTextResponse(stderr.decode(errors="replace"), 500)
        response = Response(payload, status)
        for name, value in headers:
            response.headers.append(name, value)
        return response


def _public(repo: Repo | None) -> bool:
    return repo is not None and not repo.private
