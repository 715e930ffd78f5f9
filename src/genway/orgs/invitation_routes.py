"""Invitations: owners and admins invite an address; the invited user accepts or declines."""

from __future__ import annotations

from fastapi import APIRouter, status

from genway.auth.deps import CurrentPrincipal
from genway.auth.principal import AuthMethod, Principal
from genway.db import SessionDep
from genway.errors import Forbidden
from genway.kit.pagination import Page, PageDep
from genway.kit.schemas import Id
from genway.orgs import invitations
from genway.orgs.models import Invitation, Organization, User
from genway.orgs.routes import MemberManager
from genway.orgs.schemas import InvitationCreate, InvitationResponse

router = APIRouter(tags=["organizations"])


def _response(invitation: Invitation, org: Organization) -> InvitationResponse:
    return InvitationResponse(
        id=invitation.id,
        org_id=org.id,
        organization=org.display_name,
        email=invitation.email,
        role=invitation.role,
        status=invitation.status,
        created_at=invitation.created_at,
        expires_at=invitation.expires_at,
    )


def _user_login(principal: Principal) -> User:
    if principal.method is AuthMethod.API_KEY:
        raise Forbidden("Answering an invitation needs a user login, not an API key")
    return principal.user


async def _invite(
    body: InvitationCreate, context: MemberManager, session: SessionDep
) -> InvitationResponse:
    """Invite an address to the organization (the same answer whether or not anyone has
    registered it; a registered user is told in-app). 409 for a current member."""
    invitation = await invitations.invite(
        session, context.org, context.principal.user, context.role, body.email, body.role
    )
    return _response(invitation, context.org)


router.post(
    "/v1/organizations/{org_id}/invitations",
    response_model=InvitationResponse,
    status_code=status.HTTP_201_CREATED,
)(_invite)
router.post(
    "/v1/organizations/{org_id}/members",
    response_model=InvitationResponse,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Add a member (by invitation)",
    description="Members join by accepting an invitation: this invites the address (202) "
    "exactly as `POST .../invitations` does.",
)(_invite)


@router.get("/v1/organizations/{org_id}/invitations", response_model=Page[InvitationResponse])
async def list_invitations(
    context: MemberManager, session: SessionDep, page: PageDep
) -> Page[InvitationResponse]:
    """Pending invitations, newest first."""
    rows, total = await invitations.org_invitations(session, context.org_id, page)
    return Page.build([_response(row, context.org) for row in rows], total, page)


@router.delete(
    "/v1/organizations/{org_id}/invitations/{invitation_id}",
    status_code=status.HTTP_204_NO_CONTENT,
)
async def revoke_invitation(invitation_id: Id, context: MemberManager, session: SessionDep) -> None:
    await invitations.revoke(session, context.org_id, invitation_id)


@router.get("/v1/users/me/invitations", response_model=Page[InvitationResponse], tags=["users"])
async def my_invitations(
    principal: CurrentPrincipal, session: SessionDep, page: PageDep
) -> Page[InvitationResponse]:
    """Invitations of your address that wait for your answer."""
    rows, total = await invitations.my_invitations(session, principal.user, page)
    return Page.build([_response(inv, org) for inv, org in rows], total, page)


@router.post(
    "/v1/users/me/invitations/{invitation_id}/accept",
    response_model=InvitationResponse,
    tags=["users"],
)
async def accept_invitation(
    invitation_id: Id, principal: CurrentPrincipal, session: SessionDep
) -> InvitationResponse:
    """Join the organization with the invited role."""
    user = _user_login(principal)
    invitation, org = await invitations.respond(session, user, invitation_id, accept=True)
    return _response(invitation, org)


@router.post(
    "/v1/users/me/invitations/{invitation_id}/decline",
    response_model=InvitationResponse,
    tags=["users"],
)
async def decline_invitation(
    invitation_id: Id, principal: CurrentPrincipal, session: SessionDep
) -> InvitationResponse:
    user = _user_login(principal)
    invitation, org = await invitations.respond(session, user, invitation_id, accept=False)
    return _response(invitation, org)
