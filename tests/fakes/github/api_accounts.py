"""REST endpoints about who is calling: the user, the app and its installations."""

from __future__ import annotations

from tests.fakes.github.activity import GitHubError
from tests.fakes.github.json_views import (
    APP_PERMISSIONS,
    app_json,
    installation_json,
    installation_selection,
    private_user_json,
    repo_json,
    repo_permissions,
)
from tests.fakes.github.rest import REST_DOCS, Answer, Call, Handler, link_header, not_found
from tests.fakes.github.state import App, Installation, iso
from tests.fakes.github.store import covers


def _require_user(call: Call) -> None:
    if call.principal is None:
        raise GitHubError(401, "Requires authentication", REST_DOCS)
    if call.principal.kind != "token":
        raise GitHubError(403, "Resource not accessible by integration", REST_DOCS)


def _require_installation(call: Call) -> None:
    if call.principal is None:
        raise GitHubError(401, "Requires authentication", REST_DOCS)
    if call.principal.kind != "installation":
        raise GitHubError(403, "Resource not accessible by personal access token", REST_DOCS)


def require_app(call: Call) -> App:
    """The app a JWT authenticates; a PAT or installation token gets GitHub's 401."""
    if call.principal is None or call.principal.app is None:
        raise GitHubError(
            401,
            "A JSON web token could not be decoded",
            "https://docs.github.com/rest/apps/apps#get-the-authenticated-app",
        )
    return call.principal.app


async def get_user(call: Call) -> Answer:
    _require_user(call)
    assert call.principal is not None and call.principal.user is not None
    user = call.principal.user
    owned = [repo for repo in call.fake.store.repos.values() if repo.owner is user]
    return Answer(200, private_user_json(call.fake.urls, user, owned))


async def list_user_repos(call: Call) -> Answer:
    _require_user(call)
    assert call.principal is not None and call.principal.user is not None
    user = call.principal.user
    repos = sorted(
        (repo for repo in call.fake.store.repos.values() if repo.owner is user),
        key=lambda repo: repo.full_name.lower(),
    )
    per_page = call.query_int("per_page", 30, 100)
    page = call.query_int("page", 1)
    shown = repos[(page - 1) * per_page : page * per_page]
    body = [
        repo_json(call.fake.urls, repo, repo_permissions(repo, user, installed=False))
        for repo in shown
    ]
    return Answer(200, body, link_header(call.request, page, per_page, len(repos)))


async def list_installation_repos(call: Call) -> Answer:
    _require_installation(call)
    assert call.principal is not None and call.principal.installation is not None
    installation = call.principal.installation
    repos = sorted(
        (repo for repo in call.fake.store.repos.values() if covers(installation, repo)),
        key=lambda repo: repo.full_name.lower(),
    )
    per_page = call.query_int("per_page", 30, 100)
    page = call.query_int("page", 1)
    shown = repos[(page - 1) * per_page : page * per_page]
    body = {
        "total_count": len(repos),
        "repository_selection": installation_selection(installation),
        "repositories": [
            repo_json(call.fake.urls, repo, repo_permissions(repo, None, installed=True))
            for repo in shown
        ],
    }
    return Answer(200, body, link_header(call.request, page, per_page, len(repos)))


async def get_app(call: Call) -> Answer:
    app = require_app(call)
    count = sum(1 for i in call.fake.store.installations.values() if i.app is app)
    return Answer(200, app_json(call.fake.urls, app, count))


async def get_repo_installation(call: Call) -> Answer:
    app = require_app(call)
    repo = call.fake.store.repo(call.params["owner"], call.params["repo"])
    installation = call.fake.store.installation_for(repo, app) if repo else None
    if installation is None:
        raise not_found()
    return Answer(200, installation_json(call.fake.urls, installation))


def _own_installation(call: Call, app: App) -> Installation:
    try:
        installation = call.fake.store.installations.get(int(call.params["installation_id"]))
    except ValueError:
        installation = None
    if installation is None or installation.app is not app:
        raise not_found()
    return installation


async def get_installation(call: Call) -> Answer:
    app = require_app(call)
    return Answer(200, installation_json(call.fake.urls, _own_installation(call, app)))


async def create_installation_token(call: Call) -> Answer:
    app = require_app(call)
    installation = _own_installation(call, app)
    await call.json()
    token = call.fake.store.add_installation_token(installation, call.fake.installation_token_ttl_s)
    assert token.expires_at is not None
    body = {
        "token": token.value,
        "expires_at": iso(token.expires_at),
        "permissions": dict(APP_PERMISSIONS),
        "repository_selection": installation_selection(installation),
    }
    return Answer(201, body)


ROUTES: dict[str, dict[str, Handler]] = {
    "/user": {"GET": get_user},
    "/user/repos": {"GET": list_user_repos},
    "/installation/repositories": {"GET": list_installation_repos},
    "/app": {"GET": get_app},
    "/repos/{owner}/{repo}/installation": {"GET": get_repo_installation},
    "/app/installations/{installation_id}": {"GET": get_installation},
    "/app/installations/{installation_id}/access_tokens": {"POST": create_installation_token},
}
