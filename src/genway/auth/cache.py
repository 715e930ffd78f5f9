"""A per-process cache of API-key principals that does not serve a revoked key.

Every commit that touches a row authentication depends on (keys, users, memberships,
organizations, login sessions) bumps the database's `auth_generation`; a cached entry is used only
while its generation is current. In embedded mode (SQLite, one process) this process sees every
such commit. With several processes (PostgreSQL), each one's auth changes reach the others
through the Redis fan-out, which bumps their generation within milliseconds; because a message
can be lost while Redis is unreachable, entries are then also kept at most
`GENWAY_AUTH_CACHE_MAX_AGE_S` (5 s).
Without Redis, several processes cannot hear of each other's changes: no cache.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime

from genway.auth.principal import Principal
from genway.config import Settings
from genway.db import Database
from genway.realtime.broadcast import Broadcaster

MAX_ENTRIES = 10_000


@dataclass
class CachedKey:
    principal: Principal
    generation: int
    expires_at: datetime | None
    last_used_at: datetime | None
    cached_at: float = field(default_factory=time.monotonic)


class PrincipalCache:
    def __init__(
        self, database: Database, *, enabled: bool, max_age_s: float | None = None
    ) -> None:
        self.database = database
        self.enabled = enabled
        self.max_age_s = max_age_s
        self._entries: dict[str, CachedKey] = {}

    @classmethod
    def for_runtime(
        cls, database: Database, broadcaster: Broadcaster, settings: Settings
    ) -> PrincipalCache:
        if broadcaster.shares_auth_changes:
            return cls(database, enabled=True, max_age_s=settings.auth_cache_max_age_s)
        return cls(database, enabled=settings.is_sqlite)

    def get(self, key_hash: str, now: datetime) -> CachedKey | None:
        if not self.enabled:
            return None
        entry = self._entries.get(key_hash)
        if entry is None:
            return None
        if (
            entry.generation != self.database.auth_generation
            or (entry.expires_at is not None and entry.expires_at <= now)
            or (self.max_age_s is not None and time.monotonic() - entry.cached_at > self.max_age_s)
        ):
            del self._entries[key_hash]
            return None
        return entry

    def put(self, key_hash: str, entry: CachedKey) -> None:
        if not self.enabled:
            return
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()
        self._entries[key_hash] = entry
