"""Seed 001's synchronous `POST /api/v1/generate`, kept for compatibility: it queues a
comfy.generate job and waits for it up to `GENWAY_SYNC_WAIT_S`."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request, Response, status
from pydantic import ValidationError

from genway.auth.deps import OrgContext, SettingsDep, require
from genway.auth.permissions import Action
from genway.db import Database, SessionDep
from genway.engines.comfyui.job_inputs import GENERATE_KIND
from genway.engines.comfyui.runtime import ComfyUIEngine
from genway.errors import GenwayError, InvalidInput
from genway.jobs import service
from genway.jobs.deps import submitter
from genway.jobs.events import is_final
from genway.jobs.models import Job
from genway.jobs.schemas import JOB_OPTIONS, JobCreate
from genway.jobs.states import JobStatus
from genway.realtime.broadcast import Broadcaster
from genway.realtime.streams import job_event_stream
from genway.storage import service as artifacts
from genway.storage.deps import SignerDep, public_base

router = APIRouter(tags=["images (legacy)"])

CallerJobCreator = Annotated[OrgContext, require(Action.CREATE_JOBS, scope="caller")]
# A failed generation answers like the engine's verdict: bad parameters, or a failure upstream.
FAILURE_STATUS = {"node_errors": 422, "missing_inputs": 422}


def generate_spec(body: dict[str, Any]) -> JobCreate:
    """A comfy.generate job from seed 001's body: image parameters plus job options."""
    options = {key: body[key] for key in JOB_OPTIONS if key in body}
    image = {key: value for key, value in body.items() if key not in options and key != "kind"}
    try:
        return JobCreate.model_validate({"kind": GENERATE_KIND, "input": image, **options})
    except ValidationError as exc:
        raise InvalidInput(
            [{"type": e["type"], "loc": ["body", *e["loc"]], "msg": e["msg"]} for e in exc.errors()]
        ) from exc


async def wait_for_end(
    database: Database, broadcaster: Broadcaster, job: Job, timeout_s: float
) -> bool:
    """Whether the job ended within `timeout_s`."""
    try:
        async with asyncio.timeout(timeout_s):
            async for event in job_event_stream(database, broadcaster, job.id, job.org_id):
                if event is not None and is_final(event):
                    return True
    except TimeoutError:
        return False
    return True


@router.post(
    "/api/v1/generate",
    responses={202: {"description": "Still running: poll `status_url`"}},
)
async def generate(
    request: Request,
    response: Response,
    context: CallerJobCreator,
    session: SessionDep,
    settings: SettingsDep,
    signer: SignerDep,
    body: Annotated[dict[str, Any], Body()],
) -> dict[str, Any]:
    """Generate an image (`prompt`, `negative_prompt`, `width`, `height`, `steps`, `seed`,
    `checkpoint`) and wait: 200 with `image_url` (a signed link) when it is done in time, 202
    with the job's URLs when not; a failed generation answers 422 (parameters the engine
    refused), 409 (cancelled) or 502 (the engine failed); 422 with `code: limit_exceeded` when
    the image is larger than the organization's tier allows."""
    spec = generate_spec(body)
    engine: ComfyUIEngine | None = request.app.state.comfyui
    if engine is not None:
        await engine.admit_generate_input(session, context.org_id, spec.input)
    job, _created = await service.create_job(
        session, submitter(context), spec, max_input_bytes=settings.job_input_max_bytes
    )
    # This request's unit of work ends here (the job is durable before the wait), and no
    # database connection is held while waiting.
    await session.commit()
    await session.close()
    state = request.app.state
    await wait_for_end(state.db, state.broadcaster, job, settings.sync_wait_s)
    job = await service.get_job(session, context.org_id, job.id)
    if JobStatus(job.status).is_terminal:
        return await _outcome(session, job, signer, public_base(request, settings))
    response.status_code = status.HTTP_202_ACCEPTED
    return {
        "job_id": job.id,
        "status": job.status,
        "status_url": f"/api/v1/jobs/{job.id}",
        "result_url": f"/api/v1/jobs/{job.id}/result",
        "events_url": f"/ws/jobs/{job.id}",
    }


async def _outcome(session: SessionDep, job: Job, signer: SignerDep, base: str) -> dict[str, Any]:
    """The answer for an ended job: its images, or the error it failed with."""
    if job.status != JobStatus.SUCCEEDED:
        error = job.error or {}
        code = 409 if job.status == JobStatus.CANCELLED else 502
        code = FAILURE_STATUS.get(str(error.get("code")), code)
        raise GenwayError(
            f"Job {job.id} {job.status}: {error.get('message', 'no result')}",
            status_code=code,
            extra={"job_id": job.id, "status": job.status, "error": job.error},
        )
    outputs = await artifacts.job_outputs(session, job.org_id, job.id)
    images = [
        base + signer.sign(a.org_id, a.id, a.name)
        for a in outputs
        if a.content_type.startswith("image/")
    ]
    return {
        "job_id": job.id,
        "status": job.status,
        "image_url": images[0] if images else None,
        "images": images,
        "result": job.result,
    }
