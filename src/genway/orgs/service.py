"""Organizations, their users and memberships: plain async functions, session first."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Select, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from genway.auth.passwords import hash_password
from genway.auth.permissions import Role
from genway.auth.principal import AuthMethod, Principal
from genway.errors import Conflict, Forbidden, InvalidInput, NotFound
from genway.kit.pagination import PageParams, paginate
from genway.orgs.models import DEFAULT_ORG_SETTINGS, Membership, Organization, Tier, User
from genway.orgs.schemas import ORG_NAME_PATTERN, OrganizationUpdate


class OrganizationNotFound(NotFound):
    detail = "Organization not found"


class UserNotFound(NotFound):
    detail = "User not found"


class LastOwner(Conflict):
    detail = "An organization must keep at least one owner"


def normalize_email(email: str) -> str:
    return email.strip().lower()


async def get_user_by_email(session: AsyncSession, email: str) -> User | None:
    user: User | None = await session.scalar(
        select(User).where(User.email == normalize_email(email))
    )
    return user


async def create_user(
    session: AsyncSession,
    email: str,
    *,
    password: str | None = None,
    full_name: str | None = None,
    platform_admin: bool = False,
) -> User:
    """A new user. Raises Conflict when the email is taken."""
    if await get_user_by_email(session, email) is not None:
        raise Conflict(f"A user with email {normalize_email(email)} already exists")
    user = User(
        email=normalize_email(email),
        password_hash=await hash_password(password) if password else None,
        full_name=full_name,
        is_platform_admin=platform_admin,
    )
    session.add(user)
    await session.flush()
    return user


async def create_organization(
    session: AsyncSession,
    name: str,
    owner: User,
    *,
    display_name: str | None = None,
    tier: Tier = Tier.FREE,
) -> Organization:
    """A new organization with `owner` as its owner. Raises Conflict when the name is taken."""
    if await session.scalar(select(Organization.id).where(Organization.name == name)) is not None:
        raise Conflict(f"An organization named '{name}' already exists")
    org = Organization(
        name=name,
        display_name=display_name or name,
        tier=tier,
        settings=dict(DEFAULT_ORG_SETTINGS),
        overrides={},
    )
    session.add(org)
    await session.flush()
    session.add(Membership(org_id=org.id, user_id=owner.id, role=Role.OWNER))
    await session.flush()
    return org


async def count_organizations(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count(Organization.id))) or 0)


async def list_organizations(
    session: AsyncSession, principal: Principal, params: PageParams
) -> tuple[Sequence[Organization], int]:
    """The organizations the caller can act in: an API key's one org, or a user's memberships."""
    query = select(Organization).order_by(Organization.id)
    if principal.method is AuthMethod.API_KEY:
        assert principal.key_org is not None
        query = query.where(Organization.id == principal.key_org.id)
    else:
        query = query.join(Membership, Membership.org_id == Organization.id).where(
            Membership.user_id == principal.user_id
        )
    return await paginate(session, query, params)


async def get_organization(session: AsyncSession, org_id: int) -> Organization:
    """Raises OrganizationNotFound."""
    org = await session.get(Organization, org_id, populate_existing=True)
    if org is None:
        raise OrganizationNotFound(f"Organization {org_id} not found")
    return org


async def update_organization(
    session: AsyncSession, org: Organization, changes: OrganizationUpdate
) -> Organization:
    """Apply a partial update to the organization's display name, tier or settings."""
    if changes.display_name is not None:
        org.display_name = changes.display_name
    if changes.tier is not None:
        org.tier = changes.tier
    if changes.settings is not None:
        merged = {**DEFAULT_ORG_SETTINGS, **(org.settings or {})}
        merged.update(changes.settings.model_dump(exclude_none=True))
        org.settings = merged
    session.add(org)
    await session.flush()
    return org


def _org_users_query(org_id: int) -> Select[User]:
    return (
        select(User)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.org_id == org_id)
        .order_by(User.id)
    )


async def list_org_users(
    session: AsyncSession, org_id: int, params: PageParams
) -> tuple[Sequence[User], int]:
    return await paginate(session, _org_users_query(org_id), params)


async def get_org_user(session: AsyncSession, org_id: int, user_id: int) -> User:
    """A user who is a member of the org. Raises UserNotFound otherwise."""
    user: User | None = await session.scalar(_org_users_query(org_id).where(User.id == user_id))
    if user is None:
        raise UserNotFound(f"User {user_id} not found")
    return user


@dataclass(frozen=True)
class Member:
    user: User
    membership: Membership


async def list_members(
    session: AsyncSession, org_id: int, params: PageParams
) -> tuple[list[Member], int]:
    query = (
        select(User, Membership)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.org_id == org_id)
        .order_by(Membership.id)
    )
    total = await session.scalar(
        select(func.count()).select_from(Membership).where(Membership.org_id == org_id)
    )
    rows = (await session.execute(query.offset(params.skip).limit(params.limit))).all()
    return [Member(user, membership) for user, membership in rows], int(total or 0)


async def get_member(session: AsyncSession, org_id: int, user_id: int) -> Member:
    """Raises UserNotFound when the user is not a member of the org."""
    row = (
        await session.execute(
            select(User, Membership)
            .join(Membership, Membership.user_id == User.id)
            .where(Membership.org_id == org_id, Membership.user_id == user_id)
        )
    ).one_or_none()
    if row is None:
        raise UserNotFound(f"User {user_id} is not a member of this organization")
    return Member(row[0], row[1])


def check_can_grant(actor_role: Role, role: Role) -> None:
    if role.rank > actor_role.rank:
        raise Forbidden(f"Role '{actor_role}' cannot grant the '{role}' role")


async def _owner_count(session: AsyncSession, org_id: int) -> int:
    """The organization's owners, counted under a lock on its row (held until the commit), so
    two owners demoting or removing each other at once cannot both pass the last-owner rule.
    The lock is a write of the row to itself: PostgreSQL locks the row, and SQLite (no
    `FOR UPDATE`) takes its write lock, on both before the count is read."""
    await session.execute(
        update(Organization).where(Organization.id == org_id).values(id=Organization.id)
    )
    return int(
        await session.scalar(
            select(func.count())
            .select_from(Membership)
            .where(Membership.org_id == org_id, Membership.role == Role.OWNER)
        )
        or 0
    )


async def change_member_role(
    session: AsyncSession, org_id: int, actor_role: Role, user_id: int, role: Role
) -> Member:
    """Change a member's role. Raises UserNotFound, Forbidden, LastOwner."""
    member = await get_member(session, org_id, user_id)
    current = Role(member.membership.role)
    check_can_grant(actor_role, role)
    check_can_grant(actor_role, current)
    if (
        current is Role.OWNER
        and role is not Role.OWNER
        and await _owner_count(session, org_id) <= 1
    ):
        raise LastOwner("The last owner cannot be demoted; make another member owner first")
    member.membership.role = role
    await session.flush()
    return member


async def remove_member(session: AsyncSession, org_id: int, actor_role: Role, user_id: int) -> None:
    """Remove a member (their keys in this org stop working). Raises UserNotFound, LastOwner."""
    member = await get_member(session, org_id, user_id)
    current = Role(member.membership.role)
    check_can_grant(actor_role, current)
    if current is Role.OWNER and await _owner_count(session, org_id) <= 1:
        raise LastOwner("The last owner cannot be removed")
    await session.delete(member.membership)
    await session.flush()


def slugify(text: str) -> str:
    """A lower-case slug of `text` (`Acme Inc.` → `acme-inc`; `org` if nothing is left)."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", folded.lower()).strip("-")[:100].strip("-")
    return slug or "org"


async def org_naming(
    session: AsyncSession, name: str, slug: str | None, display_name: str | None
) -> tuple[str, str]:
    """(unique slug, display name) of a new organization. `name` is the slug when it is one (a
    taken one is then a Conflict at creation); otherwise it is the display name, and a free slug
    is derived from it (`acme-inc`, then `acme-inc-2`, ...). An explicit `slug` wins. Raises
    InvalidInput for a malformed `slug`."""
    display = display_name or name.strip()
    if slug is not None:
        if not re.match(ORG_NAME_PATTERN, slug):
            raise InvalidInput("A slug is 1-100 lower-case letters, digits or dashes")
        return slug, display
    if re.match(ORG_NAME_PATTERN, name):
        return name, display
    base = slugify(name)
    taken = set(
        await session.scalars(
            select(Organization.name).where(
                or_(Organization.name == base, Organization.name.startswith(f"{base}-"))
            )
        )
    )
    candidate, number = base, 1
    while candidate in taken:
        number += 1
        candidate = f"{base[: 100 - len(str(number)) - 1]}-{number}"
    return candidate, display
