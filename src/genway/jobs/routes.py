"""`/v1/organizations/{org_id}/jobs`: submit, list, read, cancel, and stream events (SSE)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response, status
from fastapi.responses import StreamingResponse

from genway.auth.deps import OrgContext, OrgReader, SettingsDep, require
from genway.auth.permissions import Action
from genway.auth.streams import stream_access
from genway.db import SessionDep
from genway.jobs import service
from genway.jobs.deps import EstimatorDep, admitted, submitter
from genway.jobs.eta import Estimator
from genway.jobs.models import Job
from genway.jobs.schemas import CancelResponse, JobCreate, JobPage, JobResponse
from genway.jobs.states import JobStatus
from genway.kit import fastjson
from genway.kit.schemas import MAX_ID, Id, UtcDatetime
from genway.realtime.guard import GuardedStreamingResponse
from genway.realtime.streams import job_event_stream

router = APIRouter(prefix="/v1/organizations/{org_id}/jobs", tags=["jobs"])

JobCreator = Annotated[OrgContext, require(Action.CREATE_JOBS)]
JobCanceller = Annotated[OrgContext, require(Action.CANCEL_JOBS)]
IdempotencyKey = Annotated[str | None, Header(max_length=255)]


async def job_response(session: SessionDep, job: Job, estimator: Estimator) -> JobResponse:
    """A job as read: with its queue position and estimated start or finish."""
    response = JobResponse.model_validate(job)
    response.queue_position = await service.queue_position(session, job)
    eta = (await estimator.estimate(session, [job])).get(job.id)
    if eta is not None:
        response.estimated_start_at, response.estimated_finish_at = eta.start_at, eta.finish_at
    return response


async def job_page(
    session: SessionDep, jobs: Sequence[Job], next_cursor: str | None, estimator: Estimator
) -> JobPage:
    """A page of jobs with their estimates (computed for the page at once)."""
    etas = await estimator.estimate(session, jobs)
    items = []
    for job in jobs:
        item = JobResponse.model_validate(job)
        eta = etas.get(job.id)
        if eta is not None:
            item.estimated_start_at, item.estimated_finish_at = eta.start_at, eta.finish_at
        items.append(item)
    return JobPage(items=items, next_cursor=next_cursor)


@router.post("", response_model=JobResponse, status_code=status.HTTP_201_CREATED)
async def submit_job(
    body: JobCreate,
    request: Request,
    response: Response,
    context: JobCreator,
    session: SessionDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKey = None,
) -> JobResponse:
    """Queue a job. Repeating a request with the same `Idempotency-Key` returns the same job
    (200); the same key with a different body is 409."""
    job, created = await service.create_job(
        session,
        submitter(context),
        await admitted(request, session, context.org_id, body),
        idempotency_key=idempotency_key,
        max_input_bytes=settings.job_input_max_bytes,
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    response.headers["Location"] = f"/v1/organizations/{context.org_id}/jobs/{job.id}"
    # No queue position here: counting the queue on every submit costs more than the submit.
    return JobResponse.model_validate(job)


@router.get("", response_model=JobPage)
async def list_jobs(
    context: OrgReader,
    session: SessionDep,
    estimator: EstimatorDep,
    status_: Annotated[JobStatus | None, Query(alias="status")] = None,
    kind: Annotated[str | None, Query(max_length=64)] = None,
    project_id: Id | None = None,
    created_after: UtcDatetime | None = None,
    created_before: UtcDatetime | None = None,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> JobPage:
    filters = service.JobFilters(status_, kind, project_id, created_after, created_before)
    jobs, next_cursor = await service.list_jobs(
        session, context.org_id, filters, cursor=cursor, limit=limit
    )
    return await job_page(session, jobs, next_cursor, estimator)


@router.get("/{job_id}", response_model=JobResponse)
async def get_job(
    job_id: Id, context: OrgReader, session: SessionDep, estimator: EstimatorDep
) -> JobResponse:
    job = await service.get_job(session, context.org_id, job_id)
    return await job_response(session, job, estimator)


@router.post("/{job_id}/cancel", response_model=CancelResponse)
async def cancel_job(
    job_id: Id, request: Request, context: JobCanceller, session: SessionDep
) -> CancelResponse:
    """Cancel a queued job at once or signal a running one; a finished job is left as it is."""
    job, message = await service.cancel_job(session, context.org_id, job_id)
    return CancelResponse.model_validate(
        {**JobResponse.model_validate(job).model_dump(), "message": message}
    )


def sse_format(event: dict[str, object] | None) -> str:
    if event is None:
        return ": keep-alive\n\n"
    return f"id: {event['seq']}\nevent: {event['type']}\ndata: {fastjson.dumps_text(event)}\n\n"


@router.get(
    "/{job_id}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def stream_job_events(
    job_id: Id,
    request: Request,
    context: OrgReader,
    session: SessionDep,
    last_event_id: Annotated[str | None, Header()] = None,
    after: Annotated[
        int | None, Query(ge=0, le=MAX_ID, description="Replay events after this seq")
    ] = None,
) -> StreamingResponse:
    """Server-Sent Events: every event after `Last-Event-ID` (or `after`), then live ones; the
    stream ends after the job's final status, or once the caller's credential stops granting
    access (a revoked key, a removed member, a suspended organization)."""
    job = await service.get_job(session, context.org_id, job_id)
    start = after if after is not None else _parse_last_event_id(last_event_id)
    await session.close()  # the stream may last hours; do not hold a connection for it
    guard = await request.app.state.streams.open(stream_access(request, context))

    async def body() -> AsyncIterator[str]:
        stream = job_event_stream(
            request.app.state.db, request.app.state.broadcaster, job.id, job.org_id, start
        )
        async for event in stream:
            yield sse_format(event)

    return GuardedStreamingResponse(body(), guard)


def _parse_last_event_id(value: str | None) -> int:
    if value is None or not value.strip().isdigit():
        return 0
    return int(value.strip())
