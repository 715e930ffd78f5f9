"""ComfyUI's native jobs API (ComfyUI after 0.3.64; its own frontend calls it): `GET /jobs`,
`GET /jobs/{id}`, `POST /jobs/{id}/cancel`, `POST /jobs/cancel` (and the same under `/api`).
Served from Genway's job store whatever the backends' version, in the caller's organization:
another organization's prompt ids are unknown here, as on the other ComfyUI routes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from genway.compat.comfyui.deps import ComfyCanceller, ComfyReader, EngineDep
from genway.compat.comfyui.shapes import NATIVE_STATUS, native_job, workflow_id_of
from genway.db import SessionDep
from genway.engines.comfyui import prompts
from genway.engines.comfyui.job_inputs import COMFY_KINDS
from genway.errors import InvalidInput, NotFound
from genway.jobs.models import Job
from genway.jobs.service import org_jobs
from genway.jobs.states import JobStatus

router = APIRouter(tags=["ComfyUI-compatible"])

# ComfyUI keeps at most 10,000 prompts in its history; a listing that filters by workflow or
# sorts by duration (done in memory, as ComfyUI does) looks at the newest 10,000 likewise.
LIST_SCAN_MAX = 10_000
CANCEL_BATCH_MAX = 100
OFFSET_MAX = 2**31 - 1  # beyond what a database's OFFSET takes
SORT_FIELDS = ("created_at", "execution_duration")
SORT_ORDERS = ("asc", "desc")
_GENWAY_STATUS = {native: status for status, native in NATIVE_STATUS.items()}


class PromptNotFound(NotFound):
    detail = "Job not found"


def _statuses(status: str | None) -> list[JobStatus]:
    """`status=completed,failed` as Genway's statuses (every one without). Raises InvalidInput."""
    if not status:
        return list(JobStatus)
    wanted = [part.strip() for part in status.split(",") if part.strip()]
    unknown = [part for part in wanted if part not in _GENWAY_STATUS]
    if unknown:
        choices = ", ".join(_GENWAY_STATUS)
        raise InvalidInput(f"Invalid status '{unknown[0]}'; one of: {choices}", status_code=400)
    return [_GENWAY_STATUS[part] for part in wanted]


def _duration_ms(job: Job) -> float:
    if job.started_at is None or job.finished_at is None:
        return 0.0
    return (job.finished_at - job.started_at).total_seconds() * 1000


async def list_prompt_jobs(
    session: AsyncSession,
    org_id: int,
    statuses: Sequence[JobStatus],
    *,
    workflow_id: str | None,
    by_duration: bool,
    newest_first: bool,
    offset: int,
    limit: int | None,
) -> tuple[list[Job], int]:
    """The organization's ComfyUI jobs in these statuses, one page, and how many there are."""
    query = org_jobs(org_id).where(Job.kind.in_(COMFY_KINDS), Job.status.in_(list(statuses)))
    if workflow_id is None and not by_duration:
        total = await session.scalar(select(func.count()).select_from(query.subquery()))
        order = Job.id.desc() if newest_first else Job.id.asc()
        page = query.order_by(order).offset(offset).limit(limit or LIST_SCAN_MAX)
        return list((await session.scalars(page)).all()), int(total or 0)
    newest = (await session.scalars(query.order_by(Job.id.desc()).limit(LIST_SCAN_MAX))).all()
    jobs = [job for job in newest if workflow_id is None or workflow_id_of(job) == workflow_id]
    if by_duration:
        jobs.sort(key=lambda job: (_duration_ms(job), job.id), reverse=newest_first)
    elif not newest_first:
        jobs.reverse()
    end = offset + limit if limit is not None else None
    return jobs[offset:end], len(jobs)


@router.get("/jobs")
async def list_jobs(
    context: ComfyReader,
    session: SessionDep,
    engine: EngineDep,
    status: str | None = None,
    workflow_id: str | None = None,
    sort_by: str = "created_at",
    sort_order: str = "desc",
    limit: Annotated[int | None, Query(ge=1, le=LIST_SCAN_MAX)] = None,
    offset: Annotated[int, Query(ge=0, le=OFFSET_MAX)] = 0,
) -> dict[str, Any]:
    """The organization's ComfyUI prompts, newest first by default:
    `{"jobs": [...], "pagination": {"offset", "limit", "total", "has_more"}}`."""
    if sort_by not in SORT_FIELDS:
        raise InvalidInput(f"sort_by must be one of: {', '.join(SORT_FIELDS)}", status_code=400)
    if sort_order not in SORT_ORDERS:
        raise InvalidInput("sort_order must be 'asc' or 'desc'", status_code=400)
    jobs, total = await list_prompt_jobs(
        session,
        context.org_id,
        _statuses(status),
        workflow_id=workflow_id or None,
        by_duration=sort_by == "execution_duration",
        newest_first=sort_order == "desc",
        offset=offset,
        limit=limit,
    )
    return {
        "jobs": [native_job(job, engine.template) for job in jobs],
        "pagination": {
            "offset": offset,
            "limit": limit,
            "total": total,
            "has_more": offset + len(jobs) < total,
        },
    }


async def _prompt_job(session: AsyncSession, org_id: int, job_id: str) -> Job:
    """Raises PromptNotFound for an unknown id (another organization's included)."""
    job = await prompts.find_prompt(session, org_id, job_id)
    if job is None:
        raise PromptNotFound(f"Job {job_id} not found")
    return job


@router.get("/jobs/{job_id}")
async def get_job(
    job_id: str, context: ComfyReader, session: SessionDep, engine: EngineDep
) -> dict[str, Any]:
    """One prompt with its workflow, and once it ran its outputs and `execution_status`."""
    job = await _prompt_job(session, context.org_id, job_id)
    return native_job(job, engine.template, detail=True)


@router.post("/jobs/{job_id}/cancel")
async def cancel_job(
    job_id: str, context: ComfyCanceller, session: SessionDep, engine: EngineDep
) -> dict[str, bool]:
    """Cancel a prompt whatever its state: a pending one leaves the queue, a running one is
    interrupted; `{"cancelled": false}` for one that already ended."""
    job = await _prompt_job(session, context.org_id, job_id)
    active = JobStatus(job.status) in prompts.ACTIVE
    if active:
        await prompts.cancel_prompts(session, context.org_id, [job])
        engine.prompts.notify(context.org_id)
    return {"cancelled": active}


async def _job_ids(request: Request) -> list[str]:
    """`{"job_ids": [...]}`. Raises InvalidInput."""
    try:
        body = await request.json()
    except (ValueError, RecursionError):
        body = None
    job_ids = body.get("job_ids") if isinstance(body, dict) else None
    if not isinstance(job_ids, list) or not all(isinstance(i, str) for i in job_ids):
        raise InvalidInput('The body must be {"job_ids": [ids]}', status_code=400)
    if len(job_ids) > CANCEL_BATCH_MAX:
        raise InvalidInput(f"At most {CANCEL_BATCH_MAX} job ids at once", status_code=400)
    return list(dict.fromkeys(job_ids))


@router.post("/jobs/cancel")
async def cancel_jobs(
    request: Request, context: ComfyCanceller, session: SessionDep, engine: EngineDep
) -> dict[str, bool]:
    """Cancel each of `job_ids` that is the organization's and still pending or running;
    unknown ids (another organization's included) are ignored. `{"cancelled": true}` when at
    least one was."""
    targets = []
    for job_id in await _job_ids(request):
        job = await prompts.find_prompt(session, context.org_id, job_id)
        if job is not None and JobStatus(job.status) in prompts.ACTIVE:
            targets.append(job)
    if targets:
        await prompts.cancel_prompts(session, context.org_id, targets)
        engine.prompts.notify(context.org_id)
    return {"cancelled": bool(targets)}
