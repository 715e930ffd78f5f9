"""Seed 001's job API, `/api/v1/jobs`, scoped to the caller's organization, and the job
WebSocket `/ws/jobs/{id}`: thin adapters over the same job service."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, Response, WebSocket, status
from fastapi.responses import FileResponse
from fastapi.websockets import WebSocketDisconnect
from pydantic import ValidationError
from sqlalchemy import select

from genway.auth.deps import CallerOrgReader, OrgContext, SettingsDep, authenticate, require
from genway.auth.permissions import Action
from genway.auth.principal import AuthMethod
from genway.auth.service import ensure_org_active
from genway.auth.streams import StreamAccess
from genway.db import SessionDep
from genway.errors import GenwayError, InvalidInput
from genway.jobs import service
from genway.jobs.deps import EstimatorDep, admitted, submitter
from genway.jobs.models import Job
from genway.jobs.routes import IdempotencyKey, job_page, job_response
from genway.jobs.schemas import (
    JOB_OPTIONS,
    CancelResponse,
    JobCreate,
    JobPage,
    JobResponse,
    LegacyJobCreated,
)
from genway.jobs.states import JobStatus
from genway.kit.schemas import MAX_ID, Id
from genway.orgs.models import Membership, Organization
from genway.ratelimit.enforce import enforce_request_limits
from genway.realtime.guard import guarded, websocket_close_reason
from genway.realtime.streams import job_event_stream
from genway.storage.deps import BlobStoreDep, file_response
from genway.storage.service import first_image

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs (legacy)"])
ws_router = APIRouter(tags=["jobs (legacy)"])

CallerJobCreator = Annotated[OrgContext, require(Action.CREATE_JOBS, scope="caller")]
CallerJobCanceller = Annotated[OrgContext, require(Action.CANCEL_JOBS, scope="caller")]

GENERATE_KIND = "comfy.generate"


def legacy_spec(body: dict[str, Any]) -> JobCreate:
    """A canonical job request from a legacy body: `{"prompt", ...}` without `kind` is seed 001's
    image generation (`comfy.generate`) with the body's other fields as its input."""
    if "kind" not in body and "prompt" in body:
        options: dict[str, Any] = {k: body[k] for k in JOB_OPTIONS if k in body}
        image_input = {k: v for k, v in body.items() if k not in options}
        body = {"kind": GENERATE_KIND, "input": image_input, **options}
    try:
        return JobCreate.model_validate(body)
    except ValidationError as exc:
        raise InvalidInput(
            [{"type": e["type"], "loc": ["body", *e["loc"]], "msg": e["msg"]} for e in exc.errors()]
        ) from exc


@router.post("", response_model=LegacyJobCreated, status_code=status.HTTP_201_CREATED)
async def submit_job(
    request: Request,
    response: Response,
    context: CallerJobCreator,
    session: SessionDep,
    settings: SettingsDep,
    body: Annotated[dict[str, Any], Body()],
    idempotency_key: IdempotencyKey = None,
) -> LegacyJobCreated:
    job, created = await service.create_job(
        session,
        submitter(context),
        await admitted(request, session, context.org_id, legacy_spec(body)),
        idempotency_key=idempotency_key,
        max_input_bytes=settings.job_input_max_bytes,
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return LegacyJobCreated(
        job_id=job.id,
        status=job.status,
        kind=job.kind,
        created_at=job.created_at,
        status_url=f"/api/v1/jobs/{job.id}",
        events_url=f"/ws/jobs/{job.id}",
    )


@router.get("", response_model=JobPage)
async def list_jobs(
    context: CallerOrgReader,
    session: SessionDep,
    estimator: EstimatorDep,
    status_: Annotated[JobStatus | None, Query(alias="status")] = None,
    kind: Annotated[str | None, Query(max_length=64)] = None,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> JobPage:
    jobs, next_cursor = await service.list_jobs(
        session, context.org_id, service.JobFilters(status_, kind), cursor=cursor, limit=limit
    )
    return await job_page(session, jobs, next_cursor, estimator)


@router.get("/{job_id}", response_model=JobResponse)
async def get_job(
    job_id: Id, context: CallerOrgReader, session: SessionDep, estimator: EstimatorDep
) -> JobResponse:
    job = await service.get_job(session, context.org_id, job_id)
    return await job_response(session, job, estimator)


@router.get(
    "/{job_id}/result",
    response_model=None,
    responses={200: {"content": {"application/json": {}, "image/png": {}}}},
)
async def get_job_result(
    job_id: Id, context: CallerOrgReader, session: SessionDep, store: BlobStoreDep
) -> dict[str, Any] | FileResponse:
    """The job's result once it succeeded (for an image job: its first image, with its content
    type); 409 with the job's status before that."""
    job = await service.get_job(session, context.org_id, job_id)
    if job.status == JobStatus.SUCCEEDED:
        image = await first_image(session, context.org_id, job.id)
        if image is not None:
            return file_response(store, image)
        return {"job_id": job.id, "status": job.status, "result": job.result}
    if job.status in (JobStatus.FAILED, JobStatus.CANCELLED):
        raise GenwayError(
            f"Job {job.id} {job.status}; it has no result",
            status_code=409,
            extra={"job_id": job.id, "status": job.status, "error": job.error},
        )
    raise GenwayError(
        f"Job {job.id} is {job.status}; the result is not ready yet",
        status_code=409,
        extra={"job_id": job.id, "status": job.status, "progress": job.progress},
    )


@router.delete("/{job_id}", response_model=CancelResponse)
async def cancel_job(
    job_id: Id, request: Request, context: CallerJobCanceller, session: SessionDep
) -> CancelResponse:
    job, message = await service.cancel_job(session, context.org_id, job_id)
    return CancelResponse.model_validate(
        {**JobResponse.model_validate(job).model_dump(), "message": message}
    )


WS_UNAUTHORIZED = 4401
WS_FORBIDDEN = 4403
WS_NOT_FOUND = 4404
WS_TOO_MANY = 4429


async def refuse(websocket: WebSocket, code: int, reason: str) -> None:
    """Accept, then close with an application code: a refused handshake can only say 403,
    while a close frame tells the client why (4401 credentials, 4403 suspended, 4404 missing)."""
    await websocket.accept()
    await websocket.close(code=code, reason=reason[:120])


def websocket_credential(websocket: WebSocket) -> str | None:
    """A key or token from `Authorization: Bearer`, `X-API-Key`, or `?token=` (browsers)."""
    header = websocket.headers.get("x-api-key")
    if header:
        return header.strip()
    authorization = websocket.headers.get("authorization", "")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    token = websocket.query_params.get("token")
    return token.strip() if token else None


@ws_router.websocket("/ws/jobs/{job_id}")
async def job_websocket(
    websocket: WebSocket, job_id: Id, after: Annotated[int, Query(ge=0, le=MAX_ID)] = 0
) -> None:
    """JSON events of one job: replay after `?after=N`, then live; closes when the job ends
    (1000), or with 4401 (bad or revoked credentials) / 4403 (suspended, no longer a member) /
    4404 (no such job in the caller's organization) / 4429 (rate limit, too many streams)."""
    app = websocket.app
    try:
        found = await _job_stream_access(websocket, job_id)
        guard = await app.state.streams.open(found[0]) if found is not None else None
    except GenwayError as exc:
        code = {403: WS_FORBIDDEN, 429: WS_TOO_MANY}.get(exc.status_code, WS_UNAUTHORIZED)
        await refuse(websocket, code, websocket_close_reason(exc))
        return
    if found is None or guard is None:
        await refuse(websocket, WS_NOT_FOUND, f"Job {job_id} not found")
        return
    job = found[1]
    try:
        await websocket.accept()
        stream = job_event_stream(app.state.db, app.state.broadcaster, job.id, job.org_id, after)
        async for event in guarded(guard, stream):
            if event is None:
                await websocket.send_json({"type": "keepalive"})
                continue
            await websocket.send_json(event)
        if guard.lost is not None:
            await websocket.close(code=guard.lost.code, reason=guard.lost.reason)
        else:
            await websocket.close(code=1000, reason="job finished")
    except WebSocketDisconnect:
        return
    finally:
        await app.state.streams.close(guard)


async def _job_stream_access(websocket: WebSocket, job_id: int) -> tuple[StreamAccess, Job] | None:
    """The caller's access to the organization of job `job_id`, and the job; None when none of
    the caller's organizations has it. Raises Unauthorized, Forbidden, TooManyRequests."""
    app = websocket.app
    credential = websocket_credential(websocket)
    principal = await authenticate(websocket, credential, app.state.settings)
    async with app.state.db.sessions() as session:
        if principal.method is AuthMethod.API_KEY:
            assert principal.key_org is not None
            orgs = [principal.key_org]
        else:
            orgs = list(
                await session.scalars(
                    select(Organization)
                    .join(Membership, Membership.org_id == Organization.id)
                    .where(Membership.user_id == principal.user_id)
                    .order_by(Membership.id)
                )
            )
        for org in orgs:
            try:
                job = await service.get_job(session, org.id, job_id)
            except service.JobNotFound:
                continue
            ensure_org_active(org)
            await enforce_request_limits(websocket, org, principal.user_id)
            return StreamAccess(credential or "", principal, org), job
    await enforce_request_limits(websocket, principal.key_org, principal.user_id)
    return None
