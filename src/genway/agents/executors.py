"""`agent.run`: an agent task. Code and QA runs on a project work in a checkout of their branch
with tools (`project_run.py`); the other tasks, and runs without a project, are one streamed
model answer."""

from __future__ import annotations

from typing import Any

import genway.models  # noqa: F401  (a worker process writes rows whose keys span every table)
from genway.agents.calls import JobRef, UsageTally, call_model, llm_failure
from genway.agents.context import conversation, project_section, user_message
from genway.agents.edits import InvalidEdits, parse_edit_plan
from genway.agents.project_run import ProjectRun
from genway.agents.recording import EventRecorder
from genway.agents.schemas import AgentRunInput
from genway.agents.system_prompts import Task, system_prompt
from genway.engines.llm.providers import LLMError
from genway.engines.llm.router import ModelRouter, RoutingError
from genway.engines.llm.runtime import get_router
from genway.jobs.models import Job
from genway.projects.files import all_files
from genway.projects.service import ProjectNotFound, get_project
from genway.worker.context import JobContext, JobFailed, until_cancelled
from genway.worker.registry import executor

AGENT_RUN = "agent.run"
SUMMARY_CHARS = 300


def router_for(ctx: JobContext) -> ModelRouter:
    """The worker process's router. Raises JobFailed when the routing file is unusable."""
    try:
        return get_router(ctx.worker.settings)
    except (RoutingError, OSError) as exc:
        raise JobFailed("llm_not_configured", f"Cannot load the model routes: {exc}") from exc


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
            files = await all_files(session, org_id, project_id, settings=ctx.worker.settings)
        except ProjectNotFound as exc:
            raise JobFailed("project_not_found", f"Project {project_id} not found") from exc
        return project_section(project, files)


TOOL_TASKS = frozenset({Task.CODE, Task.QA})


async def answer_in_text(
    ctx: JobContext,
    spec: AgentRunInput,
    router: ModelRouter,
    recorder: EventRecorder,
    ref: JobRef,
    tally: UsageTally,
    project_id: int | None,
) -> dict[str, Any]:
    """One model answer, streamed: research, wireframes, teaching, and any run without a
    project to work on. A code answer that holds a JSON edit plan reports its edits."""
    project = await project_text(ctx, ref.org_id, project_id) if project_id else None
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
        try:
            plan = parse_edit_plan(completion.text)
        except InvalidEdits:
            return result  # prose: the answer is the result
        result["summary"] = plan.summary or result["summary"]
        result["edits"] = [edit.model_dump() for edit in plan.edits]
    return result


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
        if spec.task in TOOL_TASKS and project_id is not None:
            run = ProjectRun(job, ctx, spec, router, recorder, ref, tally, project_id)
            try:
                result = await run.run()
            except JobFailed as failure:
                if isinstance(failure.details, dict):
                    failure.details["usage"] = tally.as_dict()
                raise
        else:
            recorder.output(
                job.id, job.org_id, "request", {"task": spec.task, "prompt": spec.prompt}
            )
            result = await answer_in_text(ctx, spec, router, recorder, ref, tally, project_id)
        result.setdefault("summary", summarize(result.get("text") or ""))
        result["usage"] = tally.as_dict()
        recorder.output(
            job.id, job.org_id, "result", {"summary": result["summary"], "model": result["model"]}
        )
    return result
