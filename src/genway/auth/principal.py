"""Who is calling: a user, through an API key (bound to one org) or a login (JWT)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from genway.auth.permissions import Role
from genway.orgs.models import Organization, User


class AuthMethod(StrEnum):
    API_KEY = "api_key"
    JWT = "jwt"


@dataclass(frozen=True)
class Principal:
    user: User
    method: AuthMethod
    key_id: int | None = None
    key_org: Organization | None = None
    key_role: Role | None = None
    session_id: int | None = None

    @property
    def user_id(self) -> int:
        return self.user.id

    @property
    def is_platform_admin(self) -> bool:
        return self.user.is_platform_admin
