"""Authentication: resolve credentials to a Principal; register, log in, refresh, log out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from genway.auth.cache import CachedKey, PrincipalCache
from genway.auth.models import LoginSession, RefreshToken
from genway.auth.passwords import hash_password, verify_password
from genway.auth.permissions import Role
from genway.auth.principal import AuthMethod, Principal
from genway.auth.secrets import hash_secret, new_refresh_token, secret_matches
from genway.auth.tokens import InvalidToken, decode_access_token, issue_access_token
from genway.config import Settings
from genway.db import Database, utcnow
from genway.errors import Conflict, Forbidden, InvalidInput, Unauthorized
from genway.keys.models import APIKey, api_keys_table
from genway.orgs.models import Membership, Organization, OrgStatus, User


class RefreshTokenReused(Unauthorized):
    """A spent refresh token came back: its whole login session is revoked, and that
    revocation is kept although the request fails."""

    detail = "Refresh token was already used; the session has been revoked"
    keeps_writes = True


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "bearer"


def ensure_org_active(org: Organization) -> None:
    """Raises Forbidden when the organization is suspended."""
    if org.status == OrgStatus.SUSPENDED:
        raise Forbidden(f"Organization {org.id} is suspended; contact the platform administrator")


async def authenticate_api_key(
    database: Database,
    api_key: str,
    settings: Settings,
    cache: PrincipalCache | None = None,
) -> Principal:
    """The principal behind an API key. Raises Unauthorized or Forbidden (suspended org).

    Opens a database session only when the cache cannot answer (or last use must be recorded).
    """
    key_hash = hash_secret(api_key)
    now = utcnow()
    cached = cache.get(key_hash, now) if cache is not None else None
    if cached is not None:
        cached.last_used_at = await _touch_key(
            database, cached.principal.key_id, cached.last_used_at, now, settings
        )
        return cached.principal
    generation = database.auth_generation
    async with database.sessions() as session:
        principal, key = await _load_key_principal(session, api_key, key_hash, now)
    touched = await _touch_key(database, key.id, key.last_used_at, now, settings)
    if cache is not None:
        cache.put(key_hash, CachedKey(principal, generation, key.expires_at, touched))
    return principal


async def _load_key_principal(
    session: AsyncSession, api_key: str, key_hash: str, now: datetime
) -> tuple[Principal, APIKey]:
    row = (
        await session.execute(
            select(APIKey, User, Organization, Membership.role)
            .join(User, User.id == APIKey.user_id)
            .join(Organization, Organization.id == APIKey.org_id)
            .outerjoin(
                Membership,
                (Membership.org_id == APIKey.org_id) & (Membership.user_id == APIKey.user_id),
            )
            .where(APIKey.key_hash == key_hash)
        )
    ).one_or_none()
    if row is None or not secret_matches(api_key, row[0].key_hash):
        raise Unauthorized("Invalid API key")
    key, user, org, member_role = row
    if key.revoked_at is not None:
        raise Unauthorized("API key has been revoked")
    if key.expires_at is not None and key.expires_at <= now:
        raise Unauthorized("API key has expired")
    if not user.is_active:
        raise Unauthorized("User account is deactivated")
    if member_role is None:
        raise Unauthorized("API key owner is no longer a member of its organization")
    ensure_org_active(org)
    role = Role(key.role).at_most(Role(member_role))
    principal = Principal(
        user=user, method=AuthMethod.API_KEY, key_id=key.id, key_org=org, key_role=role
    )
    return principal, key


async def _touch_key(
    database: Database,
    key_id: int | None,
    last_used_at: datetime | None,
    now: datetime,
    settings: Settings,
) -> datetime | None:
    """Record use at most once per resolution period: writing on every request would put a
    write behind every read. A unit of work of its own: authentication comes before the
    request's. Returns the last-used time now on record."""
    resolution = timedelta(seconds=settings.key_last_used_resolution_s)
    if last_used_at is not None and now - last_used_at < resolution:
        return last_used_at
    table = api_keys_table
    async with database.transaction() as session:
        await session.execute(update(table).where(table.c.id == key_id).values(last_used_at=now))
    return now


async def authenticate_access_token(
    session: AsyncSession, token: str, settings: Settings
) -> Principal:
    """The principal behind a JWT access token whose login session is still live."""
    try:
        claims = decode_access_token(token, settings.resolved_secret_key)
    except InvalidToken as exc:
        raise Unauthorized(str(exc)) from exc
    row = (
        await session.execute(
            select(User, LoginSession)
            .join(LoginSession, LoginSession.user_id == User.id)
            .where(User.id == claims.user_id, LoginSession.id == claims.session_id)
        )
    ).one_or_none()
    if row is None:
        raise Unauthorized("Invalid access token")
    user, login = row
    if login.revoked_at is not None:
        raise Unauthorized("Session has been logged out")
    if not user.is_active:
        raise Unauthorized("User account is deactivated")
    return Principal(user=user, method=AuthMethod.JWT, session_id=login.id)


def _normalize_email(email: str) -> str:
    return email.strip().lower()


async def register_user(
    session: AsyncSession, email: str, password: str, full_name: str | None, settings: Settings
) -> User:
    """Create a user with a password. Raises InvalidInput (weak password), Conflict (taken)."""
    check_password_strength(password, settings)
    email = _normalize_email(email)
    if await session.scalar(select(User.id).where(User.email == email)) is not None:
        raise Conflict("A user with this email already exists")
    user = User(email=email, password_hash=await hash_password(password), full_name=full_name)
    session.add(user)
    await session.flush()
    return user


def check_password_strength(password: str, settings: Settings) -> None:
    """Raises InvalidInput when the password is shorter than the configured minimum."""
    if len(password) < settings.password_min_length:
        raise InvalidInput(
            f"Password must be at least {settings.password_min_length} characters long"
        )


async def login(session: AsyncSession, email: str, password: str, settings: Settings) -> TokenPair:
    """Start a login session. Raises Unauthorized on bad credentials or a deactivated user."""
    user = await session.scalar(select(User).where(User.email == _normalize_email(email)))
    if not await verify_password(password, user.password_hash if user else None) or user is None:
        raise Unauthorized("Incorrect email or password")
    if not user.is_active:
        raise Unauthorized("User account is deactivated")
    login_session = LoginSession(
        user_id=user.id,
        expires_at=utcnow() + timedelta(seconds=settings.refresh_token_ttl_s),
    )
    session.add(login_session)
    await session.flush()
    return await _issue_pair(session, user.id, login_session.id, settings)


async def _issue_pair(
    session: AsyncSession, user_id: int, session_id: int, settings: Settings
) -> TokenPair:
    refresh = new_refresh_token()
    session.add(RefreshToken(session_id=session_id, token_hash=hash_secret(refresh)))
    access = issue_access_token(
        user_id, session_id, settings.resolved_secret_key, settings.access_token_ttl_s
    )
    return TokenPair(access, refresh, settings.access_token_ttl_s)


async def refresh(session: AsyncSession, refresh_token: str, settings: Settings) -> TokenPair:
    """Rotate a refresh token. Reusing a spent one revokes its whole session (theft signal)."""
    row = (
        await session.execute(
            select(RefreshToken, LoginSession, User)
            .join(LoginSession, LoginSession.id == RefreshToken.session_id)
            .join(User, User.id == LoginSession.user_id)
            .where(RefreshToken.token_hash == hash_secret(refresh_token))
        )
    ).one_or_none()
    if row is None:
        raise Unauthorized("Invalid refresh token")
    token, login_session, user = row
    now = utcnow()
    if login_session.revoked_at is not None:
        raise Unauthorized("Session has been logged out")
    if token.used_at is not None:
        login_session.revoked_at = now
        raise RefreshTokenReused()
    if login_session.expires_at <= now:
        raise Unauthorized("Refresh token expired")
    if not user.is_active:
        raise Unauthorized("User account is deactivated")
    claimed = await session.execute(
        update(RefreshToken)
        .where(RefreshToken.id == token.id, RefreshToken.used_at.is_(None))
        .values(used_at=now)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise Unauthorized("Refresh token was already used")
    return await _issue_pair(session, user.id, login_session.id, settings)


async def logout(session: AsyncSession, principal: Principal, refresh_token: str | None) -> None:
    """Revoke the caller's login session (from the access token or the refresh token)."""
    session_id = principal.session_id
    if session_id is None and refresh_token is not None:
        session_id = await session.scalar(
            select(RefreshToken.session_id)
            .join(LoginSession, LoginSession.id == RefreshToken.session_id)
            .where(
                RefreshToken.token_hash == hash_secret(refresh_token),
                LoginSession.user_id == principal.user_id,
            )
        )
    if session_id is None:
        return
    await session.execute(
        update(LoginSession)
        .where(LoginSession.id == session_id, LoginSession.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
