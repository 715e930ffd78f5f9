"""An organization's ComfyUI prompts (its comfy.* jobs) as the ComfyUI-compatible API sees them:
submit with ComfyUI's checks and error shapes, find by prompt id, list, count, cancel.

All reads go through `org_jobs(org_id)`: another organization's prompt ids are unknown here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from genway.engines.comfyui.admission import WorkflowRefused, admit
from genway.engines.comfyui.cost import WorkflowOverLimit, admit_cost
from genway.engines.comfyui.job_inputs import COMFY_KINDS, WORKFLOW_KIND
from genway.engines.comfyui.node_policy import Catalogue, NodePolicy
from genway.engines.comfyui.prompt_ids import parse_prompt_id
from genway.engines.comfyui.workflows import InvalidWorkflow, Workflow, validate_api_workflow
from genway.jobs.models import Job
from genway.jobs.schemas import JobCreate
from genway.jobs.service import JOB_IN_ORG, Submitter, cancel_job, create_job, org_jobs
from genway.jobs.states import JobStatus
from genway.kit.schemas import MAX_ID

ACTIVE = (JobStatus.QUEUED, JobStatus.RUNNING)
TERMINAL = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


# ComfyUI's 400 answer to `POST /prompt`: `{"error": {...}, "node_errors": {...}}`.
PromptRejected = WorkflowRefused


def _comfy_jobs(org_id: int) -> Any:
    return org_jobs(org_id).where(Job.kind.in_(COMFY_KINDS))


async def find_prompt(session: AsyncSession, org_id: int, prompt_id: str) -> Job | None:
    """The organization's job with this prompt id; None for any other id."""
    parsed = parse_prompt_id(prompt_id)
    if parsed is None:
        return None
    nonce, job_id = parsed
    if job_id > MAX_ID:  # no such job: an id the database's keys cannot hold
        return None
    job: Job | None = await session.scalar(JOB_IN_ORG, {"org_id": org_id, "job_id": job_id})
    if job is None or job.kind not in COMFY_KINDS or job.input.get("prompt_nonce") != nonce:
        return None
    return job


async def active_prompts(session: AsyncSession, org_id: int, limit: int = 1000) -> Sequence[Job]:
    """Queued and running prompts, oldest first."""
    query = _comfy_jobs(org_id).where(Job.status.in_(ACTIVE)).order_by(Job.id).limit(limit)
    return (await session.scalars(query)).all()


async def finished_prompts(session: AsyncSession, org_id: int, limit: int) -> Sequence[Job]:
    """The newest prompts that ran and ended, oldest of them first (ComfyUI's history order).
    A prompt cancelled before it started never ran, so it has no history (as in ComfyUI)."""
    query = (
        _comfy_jobs(org_id)
        .where(Job.status.in_(TERMINAL), Job.started_at.is_not(None))
        .order_by(Job.id.desc())
        .limit(limit)
    )
    return list(reversed((await session.scalars(query)).all()))


async def prompts_after(session: AsyncSession, org_id: int, after_id: int) -> Sequence[Job]:
    query = _comfy_jobs(org_id).where(Job.id > after_id).order_by(Job.id).limit(1000)
    return (await session.scalars(query)).all()


async def latest_prompt_id(session: AsyncSession, org_id: int) -> int:
    """The highest job id among the organization's prompts (0 without any)."""
    query = select(func.max(Job.id)).where(Job.org_id == org_id, Job.kind.in_(COMFY_KINDS))
    return int(await session.scalar(query) or 0)


async def queue_remaining(session: AsyncSession, org_id: int) -> int:
    """The organization's queued and running prompts: ComfyUI's `exec_info.queue_remaining`."""
    query = select(func.count(Job.id)).where(
        Job.org_id == org_id, Job.kind.in_(COMFY_KINDS), Job.status.in_(ACTIVE)
    )
    return int(await session.scalar(query) or 0)


async def cancel_prompts(session: AsyncSession, org_id: int, jobs: Sequence[Job]) -> None:
    """Cancel each job (queued: at once; running: interrupted by its worker)."""
    for job in jobs:
        await cancel_job(session, org_id, job.id)


def check_structure(prompt: object) -> Workflow:
    """Raises PromptRejected for anything that is not an API-format workflow."""
    if prompt is None:
        raise PromptRejected("no_prompt", "No prompt provided", "No prompt provided")
    try:
        return validate_api_workflow(prompt)
    except InvalidWorkflow as exc:
        raise PromptRejected("invalid_prompt", "Invalid prompt", "; ".join(exc.problems)) from exc


def check_catalogue(workflow: Workflow, object_info: Mapping[str, Any]) -> None:
    """ComfyUI's own first checks, against a backend's node catalogue. Raises PromptRejected."""
    for node_id, node in workflow.items():
        if node["class_type"] not in object_info:
            message = f"Cannot execute because node {node['class_type']} does not exist."
            raise PromptRejected("invalid_prompt", message, f"Node ID '#{node_id}'")
    if not any(object_info[n["class_type"]].get("output_node") for n in workflow.values()):
        raise PromptRejected("prompt_no_outputs", "Prompt has no outputs")


def job_spec(
    job_input: dict[str, Any], extra_data: dict[str, Any], body: dict[str, Any]
) -> JobCreate:
    """The job of a prompt. Genway's extension: `extra_data.webhook` (and
    `extra_data.webhook_events_filter`) is the job's own webhook (stock clients send neither)."""
    try:
        return JobCreate(
            kind=WORKFLOW_KIND,
            input=job_input,
            priority=1 if body.get("front") else 0,
            webhook=extra_data.get("webhook"),
            webhook_events_filter=extra_data.get("webhook_events_filter"),
        )
    except ValidationError as exc:
        message = "; ".join(f"extra_data.{e['loc'][0]}: {e['msg']}" for e in exc.errors())
        raise PromptRejected("invalid_prompt", message) from exc


async def submit_prompt(
    session: AsyncSession,
    submitter: Submitter,
    body: dict[str, Any],
    catalogue: Catalogue | None,
    policy: NodePolicy,
    *,
    max_input_bytes: int,
) -> Job:
    """Queue a `POST /prompt` body as a comfy.workflow job. The catalogue (when a backend
    answered) lets unknown nodes be refused at once, as ComfyUI does; the tier's cost limits
    and the file policy apply with or without it. Raises PromptRejected, PayloadTooLarge,
    QuotaExceeded."""
    workflow = check_structure(body.get("prompt"))
    if catalogue is not None:
        check_catalogue(workflow, catalogue.object_info)
    try:
        await admit_cost(session, submitter.org_id, workflow, catalogue)
    except WorkflowOverLimit as exc:
        raise exc.as_refused() from exc
    admitted = await admit(session, submitter.org_id, workflow, {}, catalogue, policy)
    inputs = admitted.inputs
    client_id = body.get("client_id")
    extra_data = body.get("extra_data")
    job_input = {
        "workflow": workflow,
        "inputs": inputs,
        "client_id": str(client_id)[:256] if client_id else None,
        "extra_data": extra_data if isinstance(extra_data, dict) else {},
    }
    spec = job_spec(job_input, extra_data if isinstance(extra_data, dict) else {}, body)
    job, _created = await create_job(session, submitter, spec, max_input_bytes=max_input_bytes)
    return job
