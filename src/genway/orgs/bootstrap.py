"""First start: an empty database gets one organization, its owner and a key, printed once."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from genway.auth.permissions import Role
from genway.keys.service import create_api_key
from genway.orgs.models import Tier
from genway.orgs.service import count_organizations, create_organization, create_user

DEFAULT_ORG_NAME = "default"
DEFAULT_OWNER_EMAIL = "owner@genway.local"


@dataclass(frozen=True)
class BootstrapCredentials:
    org_id: int
    org_name: str
    user_id: int
    email: str
    password: str
    api_key: str


async def bootstrap_if_empty(session: AsyncSession) -> BootstrapCredentials | None:
    """Create the default organization when none exists; None when there already is one."""
    if await count_organizations(session) > 0:
        return None
    password = secrets.token_urlsafe(12)
    owner = await create_user(
        session, DEFAULT_OWNER_EMAIL, password=password, full_name="Owner", platform_admin=True
    )
    org = await create_organization(
        session, DEFAULT_ORG_NAME, owner, display_name="Default organization", tier=Tier.ENTERPRISE
    )
    _key, secret = await create_api_key(
        session, org_id=org.id, user_id=owner.id, maker_role=Role.OWNER, name="bootstrap"
    )
    return BootstrapCredentials(org.id, org.name, owner.id, owner.email, password, secret)
