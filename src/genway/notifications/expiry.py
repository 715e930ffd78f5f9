"""Warning the creator of an API key that expires within a week, once per key."""

from __future__ import annotations

import asyncio
import math
from datetime import datetime, timedelta

import structlog
from sqlalchemy import update

from genway.db import Database, utcnow
from genway.keys.models import api_keys_table
from genway.notifications.models import NotificationKind
from genway.notifications.service import notify_users

log = structlog.get_logger("genway.notifications")

WARN_WITHIN = timedelta(days=7)
keys = api_keys_table


class KeyExpiryScanner:
    def __init__(self, database: Database, warn_within: timedelta = WARN_WITHIN) -> None:
        self.database = database
        self.warn_within = warn_within

    async def run_once(self) -> int:
        """Notify the creator of every live key entering the warning window; returns how many
        keys were warned of. The key is marked in the same statement that selects it, so
        concurrent scanners (one per process) warn of each key once."""
        now = utcnow()
        async with self.database.transaction() as session:
            # Core, on the bare table: marking a key is no change authentication cares about.
            due = (
                await session.execute(
                    update(keys)
                    .where(
                        keys.c.revoked_at.is_(None),
                        keys.c.expiry_warned_at.is_(None),
                        keys.c.expires_at > now,
                        keys.c.expires_at <= now + self.warn_within,
                    )
                    .values(expiry_warned_at=now)
                    .returning(
                        keys.c.id,
                        keys.c.org_id,
                        keys.c.user_id,
                        keys.c.name,
                        keys.c.prefix,
                        keys.c.expires_at,
                    )
                )
            ).all()
            for key in due:
                await notify_users(
                    session,
                    key.org_id,
                    [key.user_id],
                    NotificationKind.KEY_EXPIRING,
                    f"API key '{key.name}' {_expires_in(key.expires_at, now)}",
                    f"The API key '{key.name}' ({key.prefix}…) that you created expires at "
                    f"{_iso(key.expires_at)}.",
                    {
                        "key_id": key.id,
                        "name": key.name,
                        "prefix": key.prefix,
                        "expires_at": _iso(key.expires_at),
                    },
                )
        return len(due)

    async def run_forever(self, interval_s: float) -> None:
        while True:
            try:
                await self.run_once()
            except Exception as exc:  # housekeeping must never take the process down
                log.error("key_expiry_scan_failed", error=str(exc))
            await asyncio.sleep(interval_s)


def _expires_in(expires_at: datetime, now: datetime) -> str:
    left = expires_at - now
    if left <= timedelta(days=1):
        return "expires within a day"
    return f"expires in {math.ceil(left / timedelta(days=1))} days"


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")
