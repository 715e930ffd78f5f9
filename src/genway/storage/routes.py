"""Uploads (`/v1/organizations/{org_id}/uploads`, legacy `/api/v1/upload`), job artifacts, and
signed downloads (`/files/...`) that need no header."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, status
from fastapi.responses import FileResponse

from genway.auth.deps import OrgContext, OrgReader, SettingsDep, require
from genway.auth.permissions import Action
from genway.db import SessionDep
from genway.jobs.service import get_job
from genway.kit.pagination import Page, PageDep
from genway.kit.schemas import Id
from genway.storage import service
from genway.storage.deps import (
    BlobStoreDep,
    SignerDep,
    file_response,
    public_base,
    read_multipart,
)
from genway.storage.models import ArtifactKind
from genway.storage.schemas import ArtifactList, ArtifactResponse

router = APIRouter(tags=["artifacts"])

Uploader = Annotated[OrgContext, require(Action.CREATE_JOBS)]
CallerUploader = Annotated[OrgContext, require(Action.CREATE_JOBS, scope="caller")]
ORG = "/v1/organizations/{org_id}"


async def _upload(
    request: Request,
    context: OrgContext,
    session: SessionDep,
    store: BlobStoreDep,
    signer: SignerDep,
    settings: SettingsDep,
) -> ArtifactResponse:
    upload, fields = await read_multipart(request, settings.upload_max_bytes)
    artifact = await service.save_upload(
        session,
        store,
        context.org_id,
        upload,
        max_bytes=settings.upload_max_bytes,
        folder=fields.get("subfolder", ""),
        overwrite=fields.get("overwrite", "true").lower() in ("true", "1", "yes"),
    )
    return ArtifactResponse.of(artifact, signer, public_base(request, settings))


@router.post(f"{ORG}/uploads", response_model=ArtifactResponse, status_code=status.HTTP_201_CREATED)
async def create_upload(
    request: Request,
    context: Uploader,
    session: SessionDep,
    store: BlobStoreDep,
    signer: SignerDep,
    settings: SettingsDep,
) -> ArtifactResponse:
    """Upload an image (multipart field `file` or `image`; optional `subfolder`, `overwrite`)
    for workflows to load by its `name`. 413 beyond the size limit, 415 for anything that is
    not an image of the type its name and Content-Type claim."""
    return await _upload(request, context, session, store, signer, settings)


@router.get(f"{ORG}/uploads", response_model=Page[ArtifactResponse])
async def list_uploads(
    request: Request,
    context: OrgReader,
    session: SessionDep,
    page: PageDep,
    signer: SignerDep,
    settings: SettingsDep,
) -> Page[ArtifactResponse]:
    rows, total = await service.list_uploads(session, context.org_id, page)
    base = public_base(request, settings)
    return Page.build([ArtifactResponse.of(a, signer, base) for a in rows], total, page)


@router.get(f"{ORG}/uploads/{{upload_id}}", response_model=ArtifactResponse)
async def get_upload(
    upload_id: Id,
    request: Request,
    context: OrgReader,
    session: SessionDep,
    signer: SignerDep,
    settings: SettingsDep,
) -> ArtifactResponse:
    artifact = await service.get_artifact(session, context.org_id, upload_id, ArtifactKind.UPLOAD)
    return ArtifactResponse.of(artifact, signer, public_base(request, settings))


@router.get(f"{ORG}/jobs/{{job_id}}/artifacts", response_model=ArtifactList)
async def list_job_artifacts(
    job_id: Id,
    request: Request,
    context: OrgReader,
    session: SessionDep,
    signer: SignerDep,
    settings: SettingsDep,
) -> ArtifactList:
    """The job's outputs, each with a fresh signed URL."""
    job = await get_job(session, context.org_id, job_id)
    rows = await service.job_outputs(session, context.org_id, job.id)
    base = public_base(request, settings)
    return ArtifactList(items=[ArtifactResponse.of(a, signer, base) for a in rows])


@router.get(
    f"{ORG}/jobs/{{job_id}}/artifacts/{{name:path}}",
    response_class=FileResponse,
    responses={200: {"content": {"image/png": {}}}},
)
async def download_job_artifact(
    job_id: Id, name: str, context: OrgReader, session: SessionDep, store: BlobStoreDep
) -> FileResponse:
    job = await get_job(session, context.org_id, job_id)
    return file_response(store, await service.job_output(session, context.org_id, job.id, name))


@router.get(
    "/files/{org_id}/{artifact_id}/{filename}",
    response_class=FileResponse,
    responses={200: {"content": {"image/png": {}}}},
)
async def download_signed(
    org_id: Id,
    artifact_id: Id,
    filename: str,
    session: SessionDep,
    store: BlobStoreDep,
    signer: SignerDep,
    expires: Annotated[int, Query()],
    signature: Annotated[str, Query(max_length=100)],
) -> FileResponse:
    """An artifact through a signed link: no credentials, until `expires` (Unix seconds)."""
    signer.verify(org_id, artifact_id, expires, signature)
    return file_response(store, await service.get_artifact(session, org_id, artifact_id))


@router.post(
    "/api/v1/upload",
    response_model=ArtifactResponse,
    status_code=status.HTTP_201_CREATED,
    tags=["artifacts (legacy)"],
)
async def legacy_upload(
    request: Request,
    context: CallerUploader,
    session: SessionDep,
    store: BlobStoreDep,
    signer: SignerDep,
    settings: SettingsDep,
) -> ArtifactResponse:
    """Seed 001's upload, in the caller's organization; same checks and answer as above."""
    return await _upload(request, context, session, store, signer, settings)
