"""Invitations: how a user joins an organization someone else created.

An owner or admin invites an email address with a role; the answer is the same whether or not
anyone has registered that address (so invitations reveal no accounts). A registered user is
told in-app; anyone who registers that address later finds the invitation at
`GET /v1/users/me/invitations`. The membership exists only once the user accepts, so nobody is
placed in an organization they did not choose, and no organization becomes anybody's default
without their consent. Invitations expire after `INVITATION_TTL`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from genway.auth.permissions import Role
from genway.db import utcnow
from genway.errors import Conflict, NotFound
from genway.kit.pagination import PageParams, paginate
from genway.notifications import delivery
from genway.notifications.models import NotificationKind
from genway.orgs.models import Invitation, InvitationStatus, Membership, Organization, User
from genway.orgs.service import check_can_grant, get_user_by_email, normalize_email

INVITATION_TTL = timedelta(days=14)


class InvitationNotFound(NotFound):
    detail = "Invitation not found"


async def invite(
    session: AsyncSession,
    org: Organization,
    inviter: User,
    actor_role: Role,
    email: str,
    role: Role,
) -> Invitation:
    """Invite `email` as `role` (a pending invitation of the same address is renewed). Raises
    Forbidden (a role above the inviter's), Conflict (already a member)."""
    check_can_grant(actor_role, role)
    address = normalize_email(email)
    user = await get_user_by_email(session, address)
    if user is not None and await _is_member(session, org.id, user.id):
        raise Conflict(f"{address} is already a member of this organization")
    now = utcnow()
    invitation = await session.scalar(
        select(Invitation).where(
            Invitation.org_id == org.id,
            Invitation.email == address,
            Invitation.status == InvitationStatus.PENDING,
        )
    )
    if invitation is None:
        invitation = Invitation(org_id=org.id, email=address, created_at=now)
        session.add(invitation)
    invitation.role, invitation.invited_by = role, inviter.id
    invitation.expires_at = now + INVITATION_TTL
    await session.flush()
    if user is not None:
        await _tell(session, org, inviter, user, invitation)
    return invitation


async def _tell(
    session: AsyncSession, org: Organization, inviter: User, user: User, invitation: Invitation
) -> None:
    title = f"Invitation to {org.display_name}"
    body = (
        f"{inviter.full_name or inviter.email} invites you to join {org.display_name} as "
        f"{invitation.role}. Accept or decline it at /v1/users/me/invitations."
    )
    data = {"invitation_id": invitation.id, "org_id": org.id, "role": invitation.role}
    recipient = [delivery.Recipient(user.id, user.email, in_app=True, by_email=False)]
    await session.run_sync(
        lambda sync: delivery.deliver(
            sync, org.id, recipient, NotificationKind.INVITATION, title, body, data
        )
    )


async def _is_member(session: AsyncSession, org_id: int, user_id: int) -> bool:
    found = await session.scalar(
        select(Membership.id).where(Membership.org_id == org_id, Membership.user_id == user_id)
    )
    return found is not None


async def org_invitations(
    session: AsyncSession, org_id: int, params: PageParams
) -> tuple[Sequence[Invitation], int]:
    """The organization's pending invitations, newest first."""
    query = (
        select(Invitation)
        .where(Invitation.org_id == org_id, Invitation.status == InvitationStatus.PENDING)
        .order_by(Invitation.id.desc())
    )
    return await paginate(session, query, params)


async def revoke(session: AsyncSession, org_id: int, invitation_id: int) -> None:
    """Withdraw a pending invitation. Raises InvitationNotFound."""
    invitation = await session.scalar(
        select(Invitation).where(
            Invitation.org_id == org_id,
            Invitation.id == invitation_id,
            Invitation.status == InvitationStatus.PENDING,
        )
    )
    if invitation is None:
        raise InvitationNotFound(f"Invitation {invitation_id} not found")
    invitation.status, invitation.responded_at = InvitationStatus.REVOKED, utcnow()
    await session.flush()


async def my_invitations(
    session: AsyncSession, user: User, params: PageParams
) -> tuple[Sequence[tuple[Invitation, Organization]], int]:
    """The pending, unexpired invitations of the user's address, newest first, with their
    organization."""
    mine = (
        Invitation.email == normalize_email(user.email),
        Invitation.status == InvitationStatus.PENDING,
        Invitation.expires_at > utcnow(),
    )
    total = await session.scalar(select(func.count(Invitation.id)).where(*mine))
    rows = await session.execute(
        select(Invitation, Organization)
        .join(Organization, Organization.id == Invitation.org_id)
        .where(*mine)
        .order_by(Invitation.id.desc())
        .offset(params.skip)
        .limit(params.limit)
    )
    return [(row[0], row[1]) for row in rows], int(total or 0)


async def respond(
    session: AsyncSession, user: User, invitation_id: int, *, accept: bool
) -> tuple[Invitation, Organization]:
    """Accept (joining the organization with the invited role) or decline an invitation of
    the user's own address. Raises InvitationNotFound (none, not theirs, expired, answered)."""
    row = (
        await session.execute(
            select(Invitation, Organization)
            .join(Organization, Organization.id == Invitation.org_id)
            .where(
                Invitation.id == invitation_id,
                Invitation.email == normalize_email(user.email),
                Invitation.status == InvitationStatus.PENDING,
                Invitation.expires_at > utcnow(),
            )
            .with_for_update(of=Invitation)
        )
    ).first()
    if row is None:
        raise InvitationNotFound(f"Invitation {invitation_id} not found")
    invitation, org = row[0], row[1]
    invitation.responded_at = utcnow()
    if not accept:
        invitation.status = InvitationStatus.DECLINED
    else:
        invitation.status = InvitationStatus.ACCEPTED
        if not await _is_member(session, org.id, user.id):
            session.add(Membership(org_id=org.id, user_id=user.id, role=invitation.role))
    await session.flush()
    return invitation, org
