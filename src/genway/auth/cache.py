"""A per-process cache of API-key principals that can never serve a revoked key.

Every commit that touches a row authentication depends on (keys, users, memberships,
organizations, login sessions) bumps the database's `auth_generation`; a cached entry is used only
while its generation is current. The cache is enabled only where this process sees every such
commit: embedded mode (SQLite, one API process). With PostgreSQL several processes share the
database, so each request reads it (asyncpg round trips are cheap there).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from genway.auth.principal import Principal
from genway.db import Database

MAX_ENTRIES = 10_000


@dataclass
class CachedKey:
    principal: Principal
    generation: int
    expires_at: datetime | None
    last_used_at: datetime | None


class PrincipalCache:
    def __init__(self, database: Database, *, enabled: bool) -> None:
        self.database = database
        self.enabled = enabled
        self._entries: dict[str, CachedKey] = {}

    def get(self, key_hash: str, now: datetime) -> CachedKey | None:
        if not self.enabled:
            return None
        entry = self._entries.get(key_hash)
        if entry is None:
            return None
        if entry.generation != self.database.auth_generation or (
            entry.expires_at is not None and entry.expires_at <= now
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
