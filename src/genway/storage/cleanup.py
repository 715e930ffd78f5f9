"""Deleting uploads no job has referenced for the upload TTL, and blobs nothing points at.

A blob is shared by every artifact with the same content (in any organization), so it is removed
only when no row references it any more, and only if it was not written or reused recently:
an upload of the same content racing with the cleanup keeps its file.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta

import structlog
from sqlalchemy import delete, select

from genway.db import Database, utcnow
from genway.storage.blobs import BlobStore
from genway.storage.models import Artifact, ArtifactKind
from genway.storage.service import count_references

log = structlog.get_logger("genway.storage")


@dataclass
class CleanupReport:
    uploads_deleted: int = 0
    blobs_deleted: int = 0


class UploadCleaner:
    def __init__(
        self,
        database: Database,
        store: BlobStore,
        ttl_s: float,
        *,
        batch: int = 500,
        blob_grace_s: float = 300.0,
    ) -> None:
        self.database = database
        self.store = store
        self.ttl_s = ttl_s
        self.batch = batch
        self.blob_grace_s = min(blob_grace_s, ttl_s)

    async def run_once(self) -> CleanupReport:
        """One pass over the oldest unreferenced uploads (at most `batch` of them)."""
        report = CleanupReport()
        cutoff = utcnow() - timedelta(seconds=self.ttl_s)
        async with self.database.transaction() as session:
            # Across organizations on purpose: this is housekeeping, not a tenant's request.
            stale = (
                await session.execute(
                    select(Artifact.id, Artifact.sha256)
                    .where(
                        Artifact.kind == ArtifactKind.UPLOAD,
                        Artifact.last_referenced_at < cutoff,
                    )
                    .order_by(Artifact.last_referenced_at)
                    .limit(self.batch)
                )
            ).all()
            if stale:
                await session.execute(
                    delete(Artifact).where(
                        Artifact.id.in_([row.id for row in stale]),
                        Artifact.last_referenced_at < cutoff,
                    )
                )
                report.uploads_deleted = len(stale)
        async with self.database.sessions() as session:
            counts = await count_references(session, [row.sha256 for row in stale])
        for sha256, references in counts.items():
            if references == 0 and self.store.delete(sha256, unused_for_s=self.blob_grace_s):
                report.blobs_deleted += 1
        if report.uploads_deleted:
            log.info("uploads_cleaned", uploads=report.uploads_deleted, blobs=report.blobs_deleted)
        return report

    async def run_forever(self, interval_s: float) -> None:
        while True:
            try:
                await self.run_once()
            except Exception as exc:  # housekeeping must never take the process down
                log.error("upload_cleanup_failed", error=str(exc))
            await asyncio.sleep(interval_s)
