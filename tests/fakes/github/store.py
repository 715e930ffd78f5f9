"""The fake's registry of accounts, credentials, apps and repositories, and who may do what.

Pure bookkeeping: no I/O besides creating key pairs. Access follows GitHub: a repository's
owner administers it, an app installation may read and write the repositories it covers,
anyone may read a public repository.
"""

from __future__ import annotations

import secrets
import string
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.fakes.github.state import App, AuthKind, Installation, Repo, Token, User, next_id

_TOKEN_ALPHABET = string.ascii_letters + string.digits


def _random(length: int) -> str:
    return "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(length))


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: a user's PAT, an app (JWT) or an installation's token."""

    kind: AuthKind
    user: User | None = None
    app: App | None = None
    installation: Installation | None = None


class Store:
    """Accounts, tokens, apps, installations and repositories, by name and id."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.users: dict[str, User] = {}
        self.tokens: dict[str, Token] = {}
        self.apps: dict[int, App] = {}
        self.installations: dict[int, Installation] = {}
        self.repos: dict[tuple[str, str], Repo] = {}

    def user(self, login: str) -> User:
        """The account `login`, made on first mention."""
        if login not in self.users:
            self.users[login] = User(login)
        return self.users[login]

    def add_pat(self, user: User) -> str:
        value = f"github_pat_{_random(22)}_{_random(59)}"
        self.tokens[value] = Token(value, "token", user)
        return value

    def add_installation_token(self, installation: Installation, ttl_s: float) -> Token:
        value = f"ghs_{_random(36)}"
        token = Token(
            value,
            "installation",
            installation.app.bot,
            installation=installation,
            expires_at=time.time() + ttl_s,
        )
        self.tokens[value] = token
        return token

    def add_app(self, name: str, owner: User) -> App:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        private_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ).decode()
        public_pem = (
            key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )
        slug = name.lower().replace(" ", "-")
        bot = User(f"{slug}[bot]", type="Bot")
        app = App(next_id(), slug, name, owner, bot, private_pem, public_pem, f"Iv23{_random(16)}")
        self.apps[app.id] = app
        return app

    def app_for_issuer(self, issuer: object) -> App | None:
        """The app a JWT's `iss` names: its id (int or str) or its client id."""
        for app in self.apps.values():
            if str(issuer) in (str(app.id), app.client_id):
                return app
        return None

    def repo(self, owner: str, name: str) -> Repo | None:
        return self.repos.get((owner.lower(), name.lower()))

    def installation_for(self, repo: Repo, app: App) -> Installation | None:
        for installation in self.installations.values():
            if installation.app is app and covers(installation, repo):
                return installation
        return None

    def visible_repos(self, principal: Principal | None) -> list[Repo]:
        return [repo for repo in self.repos.values() if can_read(principal, repo)]


def covers(installation: Installation, repo: Repo) -> bool:
    """Whether an installation grants access to `repo`."""
    if repo.owner is not installation.account:
        return False
    names = installation.repository_names
    return names is None or repo.name.lower() in {name.lower() for name in names}


def can_read(principal: Principal | None, repo: Repo) -> bool:
    return not repo.private or can_write(principal, repo)


def can_write(principal: Principal | None, repo: Repo) -> bool:
    if principal is None:
        return False
    if principal.kind == "installation":
        return principal.installation is not None and covers(principal.installation, repo)
    return principal.kind == "token" and principal.user is repo.owner


def is_admin(principal: Principal | None, repo: Repo) -> bool:
    """Hooks need admin rights: the owner's PAT or an installation covering the repository."""
    return can_write(principal, repo)
