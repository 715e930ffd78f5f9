"""Whether the credential an open stream (WebSocket, SSE) was opened with still grants access.

A stream outlives the request that authenticated it; it asks again whenever authentication rows
change (`realtime/guard.py`), through the same resolver and cache as every request.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from starlette.requests import HTTPConnection

from genway.auth.cache import PrincipalCache
from genway.auth.deps import OrgContext, credential_from_headers
from genway.auth.models import LoginSession
from genway.auth.permissions import Role
from genway.auth.principal import AuthMethod, Principal
from genway.auth.service import authenticate_api_key, ensure_org_active
from genway.config import Settings
from genway.db import Database
from genway.errors import Forbidden, Unauthorized
from genway.orgs.models import Membership, Organization, User


@dataclass(frozen=True)
class StreamAccess:
    """What a stream was opened with: the credential, who it resolved to, and the organization
    whose events the stream carries."""

    credential: str
    principal: Principal
    org: Organization

    @property
    def org_id(self) -> int:
        return self.org.id


def stream_access(connection: HTTPConnection, context: OrgContext) -> StreamAccess:
    """The access of a stream whose request was authenticated from its headers."""
    return StreamAccess(credential_from_headers(connection) or "", context.principal, context.org)


async def current_stream_role(
    database: Database, settings: Settings, cache: PrincipalCache | None, access: StreamAccess
) -> Role:
    """The caller's role in the stream's organization now. Raises Unauthorized (key revoked or
    expired, user deactivated, logged out) or Forbidden (organization suspended, membership
    removed)."""
    if access.principal.method is AuthMethod.API_KEY:
        principal = await authenticate_api_key(database, access.credential, settings, cache)
        assert principal.key_org is not None and principal.key_role is not None
        if principal.key_org.id != access.org_id:  # a key never changes organization
            raise Forbidden("API key no longer belongs to this organization")
        return principal.key_role
    # A login: its access token may expire while the stream is open (as a request's would
    # not, once it is answered); what ends the stream is its session, user or membership.
    async with database.sessions() as session:
        row = (
            await session.execute(
                select(User.is_active, LoginSession.revoked_at, Organization, Membership.role)
                .join(LoginSession, LoginSession.user_id == User.id)
                .join(Organization, Organization.id == access.org_id)
                .outerjoin(
                    Membership,
                    (Membership.org_id == Organization.id) & (Membership.user_id == User.id),
                )
                .where(
                    User.id == access.principal.user_id,
                    LoginSession.id == access.principal.session_id,
                )
            )
        ).one_or_none()
    if row is None:
        raise Unauthorized("Invalid access token")
    is_active, revoked_at, org, role = row
    if revoked_at is not None:
        raise Unauthorized("Session has been logged out")
    if not is_active:
        raise Unauthorized("User account is deactivated")
    if role is None:
        raise Forbidden(f"No longer a member of organization {org.id}")
    ensure_org_active(org)
    return Role(role)
