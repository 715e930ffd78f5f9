"""Artifacts of an organization: store checked uploads and job outputs, find them by id or name.

Every query starts from `org_artifacts(org_id)`, so no lookup can reach another organization's
files. Blobs are written before their row, so a committed row always has its file.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import Select, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from genway.db import utcnow
from genway.errors import NotFound, PayloadTooLarge
from genway.kit.pagination import PageParams, paginate
from genway.storage.blobs import BlobStore
from genway.storage.images import inspect_image
from genway.storage.models import Artifact, ArtifactKind
from genway.storage.names import (
    join_name,
    numbered,
    sanitize_filename,
    sanitize_folder,
    with_extension,
)

MAX_NUMBERED_NAMES = 1000


class ArtifactNotFound(NotFound):
    detail = "Artifact not found"


@dataclass(frozen=True)
class UploadedFile:
    """One file from a multipart request, before any check."""

    filename: str
    data: bytes
    content_type: str | None


def org_artifacts(org_id: int) -> Select[Artifact]:
    """Every query for an organization's artifacts starts here."""
    return select(Artifact).where(Artifact.org_id == org_id)


async def get_artifact(
    session: AsyncSession, org_id: int, artifact_id: int, kind: ArtifactKind | None = None
) -> Artifact:
    """Raises ArtifactNotFound when it does not exist in this organization (or is another kind)."""
    query = org_artifacts(org_id).where(Artifact.id == artifact_id)
    if kind is not None:
        query = query.where(Artifact.kind == kind)
    artifact = await session.scalar(query)
    if artifact is None:
        raise ArtifactNotFound(f"Artifact {artifact_id} not found")
    return artifact


async def _latest_upload(session: AsyncSession, org_id: int, name: str) -> Artifact | None:
    query = (
        org_artifacts(org_id)
        .where(Artifact.kind == ArtifactKind.UPLOAD, Artifact.name == name)
        .order_by(Artifact.id.desc())
        .limit(1)
    )
    artifact: Artifact | None = await session.scalar(query)
    return artifact


async def save_upload(
    session: AsyncSession,
    store: BlobStore,
    org_id: int,
    upload: UploadedFile,
    *,
    max_bytes: int,
    folder: str = "",
    overwrite: bool = True,
) -> Artifact:
    """Check an uploaded image and store it under its sanitized name; commits.

    The same content under the same name returns the existing upload. A different file under a
    taken name replaces it for new lookups, or with `overwrite=False` gets ComfyUI's
    `name (n).ext`. Raises PayloadTooLarge, UnsupportedMediaType."""
    if len(upload.data) > max_bytes:
        raise PayloadTooLarge(f"The file is {len(upload.data)} bytes; the limit is {max_bytes}")
    info = await asyncio.to_thread(inspect_image, upload.data, upload.filename, upload.content_type)
    filename = with_extension(sanitize_filename(upload.filename), info.extension)
    folder = sanitize_folder(folder)
    sha256 = await store.put(upload.data)
    name = join_name(folder, filename)
    for n in range(1, MAX_NUMBERED_NAMES + 1):
        existing = await _latest_upload(session, org_id, name)
        if existing is not None and existing.sha256 == sha256:
            existing.last_referenced_at = utcnow()
            await session.flush()
            return existing
        if existing is None or overwrite:
            break
        name = join_name(folder, numbered(filename, n))
    artifact = Artifact(
        org_id=org_id,
        kind=ArtifactKind.UPLOAD,
        name=name,
        sha256=sha256,
        size=len(upload.data),
        content_type=info.content_type,
    )
    session.add(artifact)
    await session.flush()
    return artifact


async def add_output(
    session: AsyncSession,
    store: BlobStore,
    org_id: int,
    job_id: int,
    name: str,
    data: bytes,
    content_type: str,
) -> Artifact:
    """Store one output file of a job (the caller commits)."""
    sha256 = await store.put(data)
    artifact = Artifact(
        org_id=org_id,
        job_id=job_id,
        kind=ArtifactKind.OUTPUT,
        name=name,
        sha256=sha256,
        size=len(data),
        content_type=content_type,
    )
    session.add(artifact)
    await session.flush()
    return artifact


async def drop_job_outputs(session: AsyncSession, org_id: int, job_id: int) -> None:
    """Forget the outputs an earlier attempt stored (their blobs go with the cleanup loop)."""
    await session.execute(
        delete(Artifact).where(
            Artifact.org_id == org_id,
            Artifact.job_id == job_id,
            Artifact.kind == ArtifactKind.OUTPUT,
        )
    )


async def job_outputs(session: AsyncSession, org_id: int, job_id: int) -> Sequence[Artifact]:
    """The job's outputs in the order they were produced."""
    query = org_artifacts(org_id).where(
        Artifact.job_id == job_id, Artifact.kind == ArtifactKind.OUTPUT
    )
    return (await session.scalars(query.order_by(Artifact.id))).all()


async def job_output(session: AsyncSession, org_id: int, job_id: int, name: str) -> Artifact:
    """Raises ArtifactNotFound."""
    query = org_artifacts(org_id).where(
        Artifact.job_id == job_id, Artifact.kind == ArtifactKind.OUTPUT, Artifact.name == name
    )
    artifact = await session.scalar(query.order_by(Artifact.id.desc()).limit(1))
    if artifact is None:
        raise ArtifactNotFound(f"Job {job_id} has no artifact named '{name}'")
    return artifact


async def first_image(session: AsyncSession, org_id: int, job_id: int) -> Artifact | None:
    """The job's first image output, if any."""
    query = org_artifacts(org_id).where(
        Artifact.job_id == job_id,
        Artifact.kind == ArtifactKind.OUTPUT,
        Artifact.content_type.startswith("image/"),
    )
    artifact: Artifact | None = await session.scalar(query.order_by(Artifact.id).limit(1))
    return artifact


async def find_by_name(
    session: AsyncSession, org_id: int, kind: ArtifactKind, name: str
) -> Artifact | None:
    """The newest artifact named `name`; a bare file name also matches it in any folder."""
    match = Artifact.name == name
    if "/" not in name:
        match = or_(match, Artifact.name.endswith(f"/{name}", autoescape=True))
    query = org_artifacts(org_id).where(Artifact.kind == kind, match)
    artifact: Artifact | None = await session.scalar(query.order_by(Artifact.id.desc()).limit(1))
    return artifact


async def uploads_by_name(
    session: AsyncSession, org_id: int, names: Iterable[str]
) -> dict[str, Artifact]:
    """The newest upload for each of `names` that exists."""
    wanted = list(set(names))
    if not wanted:
        return {}
    query = org_artifacts(org_id).where(
        Artifact.kind == ArtifactKind.UPLOAD, Artifact.name.in_(wanted)
    )
    return {
        artifact.name: artifact for artifact in await session.scalars(query.order_by(Artifact.id))
    }


async def artifacts_by_id(
    session: AsyncSession, org_id: int, ids: Iterable[int]
) -> dict[int, Artifact]:
    """The organization's uploads and outputs among `ids`."""
    wanted = list(set(ids))
    if not wanted:
        return {}
    query = org_artifacts(org_id).where(Artifact.id.in_(wanted))
    return {artifact.id: artifact for artifact in await session.scalars(query)}


async def touch(session: AsyncSession, org_id: int, ids: Iterable[int]) -> None:
    """Mark uploads as used by a job now, keeping them from the cleanup (the caller commits)."""
    wanted = list(set(ids))
    if wanted:
        await session.execute(
            update(Artifact)
            .where(Artifact.org_id == org_id, Artifact.id.in_(wanted))
            .values(last_referenced_at=utcnow())
        )


async def list_uploads(
    session: AsyncSession, org_id: int, params: PageParams
) -> tuple[Sequence[Artifact], int]:
    """The organization's uploads, newest first."""
    query = org_artifacts(org_id).where(Artifact.kind == ArtifactKind.UPLOAD)
    return await paginate(session, query.order_by(Artifact.id.desc()), params)


async def upload_names(session: AsyncSession, org_id: int, limit: int = 1000) -> list[str]:
    """Names of the organization's uploads, newest first, each once."""
    query = (
        select(Artifact.name)
        .where(Artifact.org_id == org_id, Artifact.kind == ArtifactKind.UPLOAD)
        .group_by(Artifact.name)
        .order_by(func.max(Artifact.id).desc())
        .limit(limit)
    )
    return list(await session.scalars(query))


async def count_references(session: AsyncSession, sha256s: Iterable[str]) -> dict[str, int]:
    """How many artifact rows (of any organization) still point at each blob."""
    wanted = list(set(sha256s))
    if not wanted:
        return {}
    rows = await session.execute(
        select(Artifact.sha256, func.count())
        .where(Artifact.sha256.in_(wanted))
        .group_by(Artifact.sha256)
    )
    counts = {sha: 0 for sha in wanted}
    counts.update({sha: int(n) for sha, n in rows})
    return counts
