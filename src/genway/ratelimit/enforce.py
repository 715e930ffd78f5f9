"""Applying request limits: per organization, per user inside it, job creation, anonymous
endpoints per client address. The verdict closest to its limit is reported in the headers."""

from __future__ import annotations

import math
import time
from typing import Any

from starlette.requests import HTTPConnection

from genway.config import Settings
from genway.errors import TooManyRequests
from genway.orgs.models import Organization
from genway.ratelimit.client_ip import client_ip
from genway.ratelimit.limiter import RateLimiter, Verdict
from genway.ratelimit.tiers import limits_for

STATE_KEY = "ratelimit_verdict"


def _remember(connection: HTTPConnection, verdict: Verdict | None) -> None:
    if verdict is None:
        return
    state = connection.scope.setdefault("state", {})
    current: Verdict | None = state.get(STATE_KEY)
    if current is None or verdict.remaining < current.remaining or not verdict.allowed:
        state[STATE_KEY] = verdict


def _refuse(verdict: Verdict) -> TooManyRequests:
    return TooManyRequests(
        "Rate limit exceeded",
        headers={"Retry-After": str(verdict.retry_after_s)},
        extra={"limit": verdict.limit, "window_s": verdict.window_s, "scope": verdict.scope},
    )


async def _apply(
    connection: HTTPConnection, amount: int | None, window_s: int, *identifiers: str
) -> None:
    if amount is None:
        return
    limiter: RateLimiter = connection.app.state.limiter
    verdict = await limiter.hit(f"{amount}/{window_s}second", *identifiers)
    _remember(connection, verdict)
    if verdict is not None and not verdict.allowed:
        raise _refuse(verdict)


def _enabled(connection: HTTPConnection) -> Settings | None:
    settings: Settings = connection.app.state.settings
    return settings if settings.ratelimit_enabled else None


async def enforce_request_limits(
    connection: HTTPConnection, org: Organization | None, user_id: int
) -> None:
    """The organization's standard limit, then the user's inside it. Raises TooManyRequests."""
    settings = _enabled(connection)
    if settings is None:
        return
    if org is None:
        # No organization in play (e.g. /v1/users/me after a login): the user's own limit.
        await _apply(connection, 60, 30, "user", str(user_id))
        return
    limits = limits_for(org)
    await _apply(
        connection, limits.requests_per_window, limits.window_s, "organization", str(org.id)
    )
    org_cap, user_cap = limits.requests_per_window, limits.user_requests_per_window
    if user_cap is not None and (org_cap is None or user_cap < org_cap):
        # A user limit at or above the organization's can never be the one that refuses:
        # counting it would cost a storage round trip for nothing.
        await _apply(connection, user_cap, limits.window_s, "user", f"{org.id}:{user_id}")


async def enforce_job_creation_limit(connection: HTTPConnection, org: Organization) -> None:
    """Job (and agent run) submissions per organization per minute. Raises TooManyRequests."""
    settings = _enabled(connection)
    if settings is None:
        return
    limits = limits_for(org)
    await _apply(connection, limits.jobs_per_minute, 60, "job-creation", str(org.id))


async def enforce_anonymous_limit(connection: HTTPConnection) -> None:
    """Unauthenticated endpoints (register, login, refresh) per client address."""
    settings = _enabled(connection)
    if settings is None:
        return
    address = client_ip(connection, settings.trusted_proxies)
    await _apply(connection, settings.anonymous_requests_per_minute, 60, "anonymous", address)


def ratelimit_headers(verdict: Verdict) -> list[tuple[bytes, bytes]]:
    reset_in = max(0, math.ceil(verdict.reset_at - time.time()))
    values: dict[str, Any] = {
        "x-ratelimit-limit": verdict.limit,
        "x-ratelimit-remaining": verdict.remaining,
        "x-ratelimit-reset": int(verdict.reset_at),
        "ratelimit-policy": f'"{verdict.scope}";q={verdict.limit};w={verdict.window_s}',
        "ratelimit": f'"{verdict.scope}";r={verdict.remaining};t={reset_in}',
    }
    return [(name.encode(), str(value).encode()) for name, value in values.items()]
