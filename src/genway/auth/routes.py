"""`/api/v1/auth/*`: register, login, refresh, logout, me, and the caller's own API keys."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status
from sqlalchemy import select

from genway.auth import service
from genway.auth.deps import CallerOrgReader, CurrentPrincipal, OrgContext, SettingsDep, require
from genway.auth.permissions import Action, Role
from genway.auth.schemas import (
    LoginRequest,
    LogoutRequest,
    MembershipSummary,
    MeResponse,
    RefreshRequest,
    RegisterRequest,
    TokenResponse,
)
from genway.db import SessionDep
from genway.errors import TooManyRequests, Unauthorized
from genway.keys import service as keys_service
from genway.keys.routes import create_key_for
from genway.keys.schemas import APIKeyCreate, APIKeyCreated, APIKeyResponse
from genway.kit.pagination import Page, PageDep
from genway.kit.schemas import Id
from genway.orgs.models import Membership, Organization
from genway.orgs.schemas import UserResponse
from genway.ratelimit.client_ip import client_ip
from genway.ratelimit.enforce import enforce_anonymous_limit
from genway.ratelimit.limiter import RateLimiter

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])
anonymous = [Depends(enforce_anonymous_limit)]

CallerKeyManager = Annotated[OrgContext, require(Action.MANAGE_KEYS, scope="caller")]


def _pair(pair: service.TokenPair) -> TokenResponse:
    return TokenResponse(
        access_token=pair.access_token,
        refresh_token=pair.refresh_token,
        token_type=pair.token_type,
        expires_in=pair.expires_in,
    )


@router.post(
    "/register",
    response_model=UserResponse,
    status_code=status.HTTP_201_CREATED,
    dependencies=anonymous,
)
async def register(
    body: RegisterRequest, session: SessionDep, settings: SettingsDep
) -> UserResponse:
    user = await service.register_user(session, body.email, body.password, body.full_name, settings)
    return UserResponse.model_validate(user)


@router.post("/login", response_model=TokenResponse, dependencies=anonymous)
async def login(
    body: LoginRequest, request: Request, session: SessionDep, settings: SettingsDep
) -> TokenResponse:
    limiter: RateLimiter = request.app.state.limiter
    limit = f"{settings.login_failures_per_minute}/minute"
    identity = (body.email.strip().lower(), client_ip(request, settings.trusted_proxies))
    verdict = await limiter.test(limit, "login-failures", *identity)
    if verdict is not None and not verdict.allowed:
        raise TooManyRequests(
            "Too many failed logins; try again later",
            headers={"Retry-After": str(verdict.retry_after_s)},
        )
    try:
        pair = await service.login(session, body.email, body.password, settings)
    except Unauthorized:
        await limiter.hit(limit, "login-failures", *identity)
        raise
    return _pair(pair)


@router.post("/refresh", response_model=TokenResponse, dependencies=anonymous)
async def refresh(
    body: RefreshRequest, session: SessionDep, settings: SettingsDep
) -> TokenResponse:
    return _pair(await service.refresh(session, body.refresh_token, settings))


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(
    session: SessionDep, principal: CurrentPrincipal, body: LogoutRequest | None = None
) -> Response:
    await service.logout(session, principal, body.refresh_token if body else None)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/me", response_model=MeResponse)
async def me(principal: CurrentPrincipal, session: SessionDep) -> MeResponse:
    rows = (
        await session.execute(
            select(Organization.id, Organization.name, Membership.role)
            .join(Membership, Membership.org_id == Organization.id)
            .where(Membership.user_id == principal.user_id)
            .order_by(Membership.id)
        )
    ).all()
    user = UserResponse.model_validate(principal.user).model_dump()
    return MeResponse(
        **user,
        organizations=[MembershipSummary(org_id=i, org_name=n, role=Role(r)) for i, n, r in rows],
        auth_method=principal.method,
        org_id=principal.key_org.id if principal.key_org else None,
    )


@router.post("/keys", response_model=APIKeyCreated, status_code=status.HTTP_201_CREATED)
async def create_key(
    body: APIKeyCreate, context: CallerKeyManager, session: SessionDep
) -> APIKeyCreated:
    return await create_key_for(session, context, body)


@router.get("/keys", response_model=Page[APIKeyResponse])
async def list_my_keys(
    context: CallerOrgReader, session: SessionDep, page: PageDep
) -> Page[APIKeyResponse]:
    keys, total = await keys_service.list_api_keys(
        session, context.org_id, page, user_id=context.user_id
    )
    return Page.build([APIKeyResponse.model_validate(k) for k in keys], total, page)


@router.delete("/keys/{key_id}", response_model=APIKeyResponse)
async def revoke_my_key(
    key_id: Id, context: CallerOrgReader, session: SessionDep
) -> APIKeyResponse:
    """Anyone may revoke their own keys; admins may revoke the organization's keys of roles up
    to their own."""
    key = await keys_service.get_api_key(session, context.org_id, key_id)
    if key.user_id != context.user_id:
        context.require(Action.MANAGE_KEYS)
    revoked = await keys_service.revoke_api_key(
        session, key, by_user_id=context.user_id, by_role=context.role
    )
    return APIKeyResponse.model_validate(revoked)
