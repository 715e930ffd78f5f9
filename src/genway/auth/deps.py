"""Dependencies that authenticate, load the organization from the path, and check permissions."""

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Path, Request
from sqlalchemy import select
from starlette.requests import HTTPConnection

from genway.auth.permissions import Action, Role, can
from genway.auth.principal import AuthMethod, Principal
from genway.auth.secrets import looks_like_api_key
from genway.auth.service import (
    authenticate_access_token,
    authenticate_api_key,
    ensure_org_active,
)
from genway.config import Settings
from genway.db import Database, SessionDep
from genway.errors import Forbidden, NotFound, Unauthorized
from genway.kit.schemas import MAX_ID
from genway.orgs.models import Membership, Organization
from genway.ratelimit.enforce import enforce_job_creation_limit, enforce_request_limits


async def get_settings(request: HTTPConnection) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


def credential_from_headers(request: HTTPConnection) -> str | None:
    """The API key or access token from `Authorization: Bearer` or `X-API-Key`."""
    api_key = request.headers.get("x-api-key")
    if api_key:
        return api_key.strip()
    authorization = request.headers.get("authorization")
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise Unauthorized("Malformed Authorization header; expected 'Bearer <token>'")
    return value.strip()


async def authenticate(
    request: HTTPConnection, credential: str | None, settings: Settings
) -> Principal:
    """Resolve a credential to a principal and note who is calling, for the request log."""
    if credential is None:
        raise Unauthorized("Authentication required: send 'Authorization: Bearer <key>'")
    database: Database = request.app.state.db
    if looks_like_api_key(credential):
        cache = getattr(request.app.state, "principal_cache", None)
        principal = await authenticate_api_key(database, credential, settings, cache)
    else:
        async with database.sessions() as session:
            principal = await authenticate_access_token(session, credential, settings)
    request.state.user_id = principal.user_id
    if principal.key_org is not None:
        request.state.org_id = principal.key_org.id
    return principal


async def current_principal(request: Request) -> Principal:
    principal = await authenticate(
        request, credential_from_headers(request), request.app.state.settings
    )
    # A key's organization is known now; a login's is known once the path names one.
    await enforce_request_limits(request, principal.key_org, principal.user_id)
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


@dataclass(frozen=True)
class OrgContext:
    """The organization a request acts on, the caller, and the caller's role in it."""

    org: Organization
    principal: Principal
    role: Role

    @property
    def org_id(self) -> int:
        return self.org.id

    @property
    def user_id(self) -> int:
        return self.principal.user_id

    def require(self, action: Action) -> None:
        """Raises Forbidden when the caller's role does not allow `action`."""
        if not can(self.role, action):
            raise Forbidden(f"Role '{self.role}' is not allowed to {action.describe()}")


async def resolve_org(
    session: SessionDep, principal: Principal, org_id: int, request: Request
) -> OrgContext:
    """The caller's context in `org_id`; another org's id answers 404, like a missing one."""
    not_found = NotFound(f"Organization {org_id} not found")
    if principal.method is AuthMethod.API_KEY:
        assert principal.key_org is not None and principal.key_role is not None
        if principal.key_org.id != org_id:
            raise not_found
        return OrgContext(principal.key_org, principal, principal.key_role)
    row = (
        await session.execute(
            select(Organization, Membership.role)
            .join(Membership, Membership.org_id == Organization.id)
            .where(Organization.id == org_id, Membership.user_id == principal.user_id)
        )
    ).one_or_none()
    if row is None:
        raise not_found
    org, role = row
    ensure_org_active(org)
    request.state.org_id = org.id
    await enforce_request_limits(request, org, principal.user_id)
    return OrgContext(org, principal, Role(role))


async def org_context(
    request: Request,
    session: SessionDep,
    principal: CurrentPrincipal,
    org_id: Annotated[int, Path(ge=1, le=MAX_ID, description="Organization id")],
) -> OrgContext:
    return await resolve_org(session, principal, org_id, request)


async def caller_org_context(
    request: Request,
    session: SessionDep,
    principal: CurrentPrincipal,
    x_organization_id: Annotated[int | None, Header(ge=1, le=MAX_ID)] = None,
) -> OrgContext:
    """For legacy routes without an org in the path: the key's org, or the user's chosen one.

    A logged-in user may pick the organization with `X-Organization-Id`; otherwise the first
    organization they joined is used.
    """
    if principal.method is AuthMethod.API_KEY:
        assert principal.key_org is not None
        return await resolve_org(session, principal, principal.key_org.id, request)
    if x_organization_id is None:
        x_organization_id = await session.scalar(
            select(Membership.org_id)
            .where(Membership.user_id == principal.user_id)
            .order_by(Membership.id)
            .limit(1)
        )
        if x_organization_id is None:
            raise NotFound("You are not a member of any organization")
    return await resolve_org(session, principal, x_organization_id, request)


def require(action: Action, *, scope: str = "path") -> object:
    """A dependency: the org context (from the path, or the caller's for legacy routes),
    after checking the caller's role allows `action`."""
    source = org_context if scope == "path" else caller_org_context

    async def dependency(
        request: Request, context: Annotated[OrgContext, Depends(source)]
    ) -> OrgContext:
        context.require(action)
        if action is Action.CREATE_JOBS:
            await enforce_job_creation_limit(request, context.org)
        return context

    return Depends(dependency)


OrgReader = Annotated[OrgContext, require(Action.READ)]
CallerOrgReader = Annotated[OrgContext, require(Action.READ, scope="caller")]
