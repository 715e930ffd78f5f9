"""Telling an organization that a daily quota is at 80 % or used up: one organization event
(`quota.warning` / `quota.exceeded`) and a notification to its owners and admins."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from genway.notifications.models import NotificationKind
from genway.notifications.service import notify_org_admins
from genway.orgevents.emit import emit
from genway.orgevents.types import QUOTA_EXCEEDED, QUOTA_WARNING
from genway.orgs.models import Organization


async def quota_reached(
    session: AsyncSession,
    org: Organization,
    quota: str,
    limit: int,
    used: int,
    percent: int,
    resets_at: datetime,
) -> None:
    """Record that `org` has used `percent` % of its daily `quota`, in the session's
    transaction (the one that consumed it)."""
    used_up = percent >= 100
    resets = resets_at.isoformat().replace("+00:00", "Z")
    data = {"quota": quota, "limit": limit, "used": used, "percent": percent, "resets_at": resets}
    await emit(session, org.id, QUOTA_EXCEEDED if used_up else QUOTA_WARNING, data)
    name = quota.replace("_", " ")
    if used_up:
        kind = NotificationKind.QUOTA_EXCEEDED
        title = f"Daily {name} quota used up"
        body = (
            f"{org.display_name} has used all {limit} {name} of its daily quota; further "
            f"submissions are refused until the quota resets at {resets}."
        )
    else:
        kind = NotificationKind.QUOTA_WARNING
        title = f"Daily {name} quota at {percent} %"
        body = (
            f"{org.display_name} has used {used} of its {limit} daily {name}; the quota resets "
            f"at {resets}."
        )
    await notify_org_admins(session, org.id, kind, title, body, data)
