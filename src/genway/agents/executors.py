"""`agent.run`: one agent task answered by the routed model, streamed as job events; the code
task's edits are applied to the project's files as one revision."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

import genway.models  # noqa: F401  (a worker process writes rows whose keys span every table)
from genway.agents.calls import JobRef, UsageTally, call_model, llm_failure
from genway.agents.context import conversation, project_section, user_message
from genway.agents.edits import InvalidEdits, parse_edit_plan, plan_changes
from genway.agents.recording import EventRecorder
from genway.agents.schemas import AgentRunInput
from genway.agents.system_prompts import Task, system_prompt
from genway.engines.llm.providers import LLMError
from genway.engines.llm.router import ModelRouter, RoutingError
from genway.engines.llm.runtime import get_router
from genway.errors import GenwayError
from genway.jobs.models import Job
from genway.projects.files import SizeLimits, all_files, write_files
from genway.projects.service import ProjectNotFound, get_project
from genway.worker.context import JobCancelled, JobContext, JobFailed
from genway.worker.registry import executor

AGENT_RUN = "agent.run"
SUMMARY_CHARS = 300
T = TypeVar("T")


def router_for(ctx: JobContext) -> ModelRouter:
    """The worker process's router. Raises JobFailed when the routing file is unusable."""
    try:
        return get_router(ctx.worker.settings)
    except (RoutingError, OSError) as exc:
        raise JobFailed("llm_not_configured", f"Cannot load the model routes: {exc}") from exc


async def until_cancelled(ctx: JobContext, work: Awaitable[T]) -> T:
    """Await `work`, stopping it as soon as the job is cancelled (raises JobCancelled): a model
    call can take minutes, longer than the worker waits for a cooperative stop."""
    task = asyncio.ensure_future(work)
    cancelled = asyncio.ensure_future(ctx.cancelled.wait())
    try:
        await asyncio.wait({task, cancelled}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:  # the executor itself is stopped (deadline): stop the work too
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        raise
    finally:
        cancelled.cancel()
    if not task.done():
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        raise JobCancelled
    return task.result()


def summarize(text: str) -> str:
    """The first non-empty line, shortened: what a run list shows."""
    for line in text.splitlines():
        if line.strip():
            line = line.strip().lstrip("#").strip()
            return line if len(line) <= SUMMARY_CHARS else line[: SUMMARY_CHARS - 1] + "…"
    return ""


async def project_text(ctx: JobContext, org_id: int, project_id: int) -> str:
    """The project and its files as shown to the model. Raises JobFailed if it is gone."""
    async with ctx.worker.database.sessions() as session:
        try:
            project = await get_project(session, org_id, project_id)
            files = await all_files(session, org_id, project_id)
        except ProjectNotFound as exc:
            raise JobFailed("project_not_found", f"Project {project_id} not found") from exc
        return project_section(project, files)


async def apply_edits(
    ctx: JobContext, job: Job, project_id: int | None, text: str, recorder: EventRecorder
) -> dict[str, Any]:
    """Parse the code task's edit plan and, with a project, write it as one revision."""
    try:
        plan = parse_edit_plan(text)
    except InvalidEdits as exc:
        raise JobFailed("invalid_edits", str(exc)) from exc
    listed = [{"path": e.path, "action": e.action} for e in plan.edits]
    outcome: dict[str, Any] = {"summary": plan.summary or summarize(text), "revision": None}
    if project_id is None or not plan.edits:
        return {**outcome, "edits": [e.model_dump() for e in plan.edits]}
    ctx.raise_if_cancelled()
    settings = ctx.worker.settings
    limits = SizeLimits(settings.project_file_max_bytes, settings.project_max_bytes)
    try:
        changes = plan_changes(plan)
        async with ctx.worker.database.transaction() as session:
            written = await write_files(
                session,
                job.org_id,
                project_id,
                changes,
                limits,
                author_id=job.user_id,
                job_id=job.id,
                message=outcome["summary"] or f"agent run {job.id}",
            )
    except GenwayError as exc:
        raise JobFailed("edits_rejected", f"The agent's edits were refused: {exc.detail}") from exc
    recorder.output(job.id, job.org_id, "edits", {"revision": written.revision, "files": listed})
    return {**outcome, "revision": written.revision, "edits": listed}


@executor(
    AGENT_RUN,
    input_model=AgentRunInput,
    default_timeout_s=300.0,
    description="Run an agent task (research, wireframe, code, qa, pedagogy) on a prompt",
)
async def run_agent(job: Job, ctx: JobContext) -> dict[str, Any]:
    spec = AgentRunInput.model_validate(job.input)
    router = router_for(ctx)
    project_id = spec.project_id or job.project_id
    tally = UsageTally()
    ref = JobRef(job.id, job.org_id, job.user_id)
    async with EventRecorder(ctx.worker.database, ctx.worker.broadcaster) as recorder:
        recorder.output(job.id, job.org_id, "request", {"task": spec.task, "prompt": spec.prompt})
        project = await project_text(ctx, job.org_id, project_id) if project_id else None
        message = user_message(spec.prompt, spec.context, project, len(spec.images))
        call = call_model(
            router,
            recorder,
            ref,
            tally,
            task=spec.task,
            messages=conversation([t.model_dump() for t in spec.history], message),
            system=system_prompt(spec.task),
            model_override=spec.model,
        )
        try:
            completion = await until_cancelled(ctx, call)
        except LLMError as error:
            raise llm_failure(error) from error
        result: dict[str, Any] = {
            "task": spec.task,
            "text": completion.text,
            "summary": summarize(completion.text),
            "model": f"{completion.provider}:{completion.model}",
            "finish_reason": completion.finish_reason,
        }
        if spec.task is Task.CODE:
            result.update(await apply_edits(ctx, job, project_id, completion.text, recorder))
        result["usage"] = tally.as_dict()
        recorder.output(
            job.id, job.org_id, "result", {"summary": result["summary"], "model": result["model"]}
        )
    return result
