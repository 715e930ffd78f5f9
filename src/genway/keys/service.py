"""Create, list and revoke org-scoped API keys."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from genway.auth.permissions import Role
from genway.auth.secrets import display_prefix, hash_secret, new_api_key
from genway.db import utcnow
from genway.errors import Forbidden, NotFound
from genway.keys.models import APIKey
from genway.kit.pagination import PageParams, paginate


class APIKeyNotFound(NotFound):
    detail = "API key not found"


async def create_api_key(
    session: AsyncSession,
    *,
    org_id: int,
    user_id: int,
    maker_role: Role,
    name: str = "default",
    role: Role | None = None,
    expires_in_days: int | None = None,
) -> tuple[APIKey, str]:
    """A new key and its secret (the only time it exists in clear). Raises Forbidden when
    `role` is above the maker's."""
    role = role or maker_role
    if role.rank > maker_role.rank:
        raise Forbidden(f"A key's role cannot exceed its maker's role ('{maker_role}')")
    secret = new_api_key()
    key = APIKey(
        org_id=org_id,
        user_id=user_id,
        name=name,
        prefix=display_prefix(secret),
        key_hash=hash_secret(secret),
        role=role,
        expires_at=utcnow() + timedelta(days=expires_in_days) if expires_in_days else None,
    )
    session.add(key)
    await session.flush()
    return key, secret


async def list_api_keys(
    session: AsyncSession, org_id: int, params: PageParams, *, user_id: int | None = None
) -> tuple[Sequence[APIKey], int]:
    query = select(APIKey).where(APIKey.org_id == org_id).order_by(APIKey.id)
    if user_id is not None:
        query = query.where(APIKey.user_id == user_id)
    return await paginate(session, query, params)


async def get_api_key(session: AsyncSession, org_id: int, key_id: int) -> APIKey:
    """Raises APIKeyNotFound when the key is not in this org."""
    key = await session.scalar(select(APIKey).where(APIKey.org_id == org_id, APIKey.id == key_id))
    if key is None:
        raise APIKeyNotFound(f"API key {key_id} not found")
    return key


async def revoke_api_key(
    session: AsyncSession, key: APIKey, *, by_user_id: int, by_role: Role
) -> APIKey:
    """Revoke a key; it is refused from the next request on. Idempotent. Another user's key
    only when its role is at most the revoker's (an admin cannot cut an owner off). Raises
    Forbidden."""
    if key.user_id != by_user_id and Role(key.role).rank > by_role.rank:
        raise Forbidden(
            f"Role '{by_role}' may not revoke a key with role '{key.role}' made by another user"
        )
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        await session.flush()
    return key
