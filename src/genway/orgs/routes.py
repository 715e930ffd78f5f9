"""`/v1/users/me` and `/v1/organizations/...`: organizations, their users and members."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, status

from genway.auth.deps import CurrentPrincipal, OrgContext, OrgReader, require
from genway.auth.permissions import Action, Role
from genway.auth.principal import AuthMethod
from genway.db import SessionDep
from genway.errors import Forbidden
from genway.kit.pagination import Page, PageDep
from genway.kit.schemas import Id
from genway.orgs import service
from genway.orgs.schemas import (
    MemberResponse,
    MemberUpdate,
    OrganizationCreate,
    OrganizationResponse,
    OrganizationUpdate,
    UserResponse,
)

router = APIRouter(tags=["organizations"])

OrgManager = Annotated[OrgContext, require(Action.MANAGE_ORG)]
MemberManager = Annotated[OrgContext, require(Action.MANAGE_MEMBERS)]


def _member(member: service.Member) -> MemberResponse:
    return MemberResponse(
        user_id=member.user.id,
        email=member.user.email,
        full_name=member.user.full_name,
        role=Role(member.membership.role),
        joined_at=member.membership.created_at,
    )


@router.get("/v1/users/me", response_model=UserResponse, tags=["users"])
async def get_current_user(principal: CurrentPrincipal) -> UserResponse:
    return UserResponse.model_validate(principal.user)


@router.get("/v1/organizations", response_model=Page[OrganizationResponse])
async def list_organizations(
    session: SessionDep, principal: CurrentPrincipal, page: PageDep
) -> Page[OrganizationResponse]:
    orgs, total = await service.list_organizations(session, principal, page)
    return Page.build([OrganizationResponse.model_validate(o) for o in orgs], total, page)


@router.post(
    "/v1/organizations", response_model=OrganizationResponse, status_code=status.HTTP_201_CREATED
)
async def create_organization(
    body: OrganizationCreate, session: SessionDep, principal: CurrentPrincipal
) -> OrganizationResponse:
    if principal.method is AuthMethod.API_KEY:
        raise Forbidden(
            "Creating an organization needs a user login; an API key acts only in its own "
            "organization"
        )
    slug, display_name = await service.org_naming(session, body.name, body.slug, body.display_name)
    org = await service.create_organization(
        session, slug, principal.user, display_name=display_name
    )
    return OrganizationResponse.model_validate(org)


@router.get("/v1/organizations/{org_id}", response_model=OrganizationResponse)
async def get_organization(context: OrgReader) -> OrganizationResponse:
    return OrganizationResponse.model_validate(context.org)


@router.patch("/v1/organizations/{org_id}", response_model=OrganizationResponse)
async def update_organization(
    body: OrganizationUpdate, context: OrgManager, session: SessionDep
) -> OrganizationResponse:
    # Load a fresh row: `context.org` may come from the principal cache, and merging it would
    # write its (possibly older) values back.
    org = await service.get_organization(session, context.org_id)
    if body.tier is not None and body.tier != org.tier and not context.principal.is_platform_admin:
        # Anyone may create an organization: a tier its owner could raise would limit no one.
        raise Forbidden(
            "Only platform administrators change an organization's tier "
            f"(PATCH /api/v1/admin/orgs/{org.id})"
        )
    org = await service.update_organization(session, org, body)
    return OrganizationResponse.model_validate(org)


@router.get("/v1/organizations/{org_id}/users", response_model=Page[UserResponse], tags=["users"])
async def list_users(context: OrgReader, session: SessionDep, page: PageDep) -> Page[UserResponse]:
    users, total = await service.list_org_users(session, context.org_id, page)
    return Page.build([UserResponse.model_validate(u) for u in users], total, page)


@router.get(
    "/v1/organizations/{org_id}/users/{user_id}", response_model=UserResponse, tags=["users"]
)
async def get_user(user_id: Id, context: OrgReader, session: SessionDep) -> UserResponse:
    return UserResponse.model_validate(await service.get_org_user(session, context.org_id, user_id))


@router.get("/v1/organizations/{org_id}/members", response_model=Page[MemberResponse])
async def list_members(
    context: OrgReader, session: SessionDep, page: PageDep
) -> Page[MemberResponse]:
    members, total = await service.list_members(session, context.org_id, page)
    return Page.build([_member(m) for m in members], total, page)


@router.get("/v1/organizations/{org_id}/members/{user_id}", response_model=MemberResponse)
async def get_member(user_id: Id, context: OrgReader, session: SessionDep) -> MemberResponse:
    return _member(await service.get_member(session, context.org_id, user_id))


@router.patch("/v1/organizations/{org_id}/members/{user_id}", response_model=MemberResponse)
async def change_member_role(
    user_id: Id, body: MemberUpdate, context: MemberManager, session: SessionDep
) -> MemberResponse:
    member = await service.change_member_role(
        session, context.org_id, context.role, user_id, body.role
    )
    return _member(member)


@router.delete(
    "/v1/organizations/{org_id}/members/{user_id}", status_code=status.HTTP_204_NO_CONTENT
)
async def remove_member(user_id: Id, context: MemberManager, session: SessionDep) -> None:
    await service.remove_member(session, context.org_id, context.role, user_id)
