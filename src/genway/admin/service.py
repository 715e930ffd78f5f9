"""Platform administration: organizations' tiers, limits and status; users; service stats."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from genway.admin.schemas import AdminOrgUpdate, AdminUserUpdate
from genway.db import utcnow
from genway.errors import Conflict, NotFound
from genway.jobs.models import Job
from genway.jobs.states import JobStatus
from genway.kit.pagination import PageParams, paginate
from genway.orgs.models import Organization, User


async def list_users(session: AsyncSession, params: PageParams) -> tuple[Sequence[User], int]:
    return await paginate(session, select(User).order_by(User.id), params)


async def list_orgs(
    session: AsyncSession, params: PageParams
) -> tuple[Sequence[Organization], int]:
    return await paginate(session, select(Organization).order_by(Organization.id), params)


async def update_org(session: AsyncSession, org_id: int, changes: AdminOrgUpdate) -> Organization:
    """Change tier, status (suspend/reactivate) or limit overrides; takes effect on the next
    request. Raises NotFound."""
    org = await session.get(Organization, org_id)
    if org is None:
        raise NotFound(f"Organization {org_id} not found")
    if changes.tier is not None:
        org.tier = changes.tier
    if changes.status is not None:
        org.status = changes.status
    if changes.overrides is not None:
        merged = dict(org.overrides or {})
        for key, value in changes.overrides.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        org.overrides = merged
    await session.flush()
    return org


async def update_user(
    session: AsyncSession, user_id: int, changes: AdminUserUpdate, acting_user_id: int
) -> User:
    """Activate/deactivate a user or change platform-admin status. Raises NotFound, Conflict."""
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound(f"User {user_id} not found")
    if user_id == acting_user_id and (
        changes.is_active is False or changes.is_platform_admin is False
    ):
        raise Conflict("You cannot deactivate yourself or drop your own platform-admin status")
    if changes.is_active is not None:
        user.is_active = changes.is_active
    if changes.is_platform_admin is not None:
        user.is_platform_admin = changes.is_platform_admin
    await session.flush()
    return user


async def collect_stats(session: AsyncSession) -> dict[str, Any]:
    """Service-wide figures for `/api/v1/admin/stats` and `/metrics`."""
    now = utcnow()
    by_status = dict(
        (await session.execute(select(Job.status, func.count()).group_by(Job.status))).all()
    )
    by_kind: dict[str, dict[str, int]] = {}
    rows = await session.execute(
        select(Job.kind, Job.status, func.count()).group_by(Job.kind, Job.status)
    )
    for kind, status, count in rows:
        by_kind.setdefault(kind, {})[status] = count
    oldest = await session.scalar(
        select(func.min(Job.created_at)).where(Job.status == JobStatus.QUEUED)
    )
    hour_ago = now - timedelta(hours=1)
    finished = dict(
        (
            await session.execute(
                select(Job.status, func.count())
                .where(Job.finished_at >= hour_ago)
                .group_by(Job.status)
            )
        ).all()
    )
    finished_total = sum(finished.values())
    failed = finished.get(JobStatus.FAILED, 0)
    if oldest is not None and oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=now.tzinfo)
    return {
        "organizations": int(await session.scalar(select(func.count(Organization.id))) or 0),
        "users": int(await session.scalar(select(func.count(User.id))) or 0),
        "jobs_by_status": {status.value: by_status.get(status.value, 0) for status in JobStatus},
        "jobs_by_kind": by_kind,
        "queue_depth": by_status.get(JobStatus.QUEUED, 0),
        "oldest_queued_age_s": round((now - oldest).total_seconds(), 3) if oldest else 0.0,
        "finished_last_hour": finished_total,
        "failed_last_hour": failed,
        "error_rate_last_hour": round(failed / finished_total, 4) if finished_total else 0.0,
    }
