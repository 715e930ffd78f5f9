"""`promode.session` (a Pro Mode session) and `promode.agent` (one of its agent instances, run
on its own only when a worker picks up an instance the reaper requeued)."""

from __future__ import annotations

import asyncio
from typing import Any

from genway.agents.calls import JobRef, UsageTally, llm_failure
from genway.agents.executors import project_text, router_for
from genway.agents.recording import EventRecorder
from genway.db import utcnow
from genway.engines.llm.providers import LLMError
from genway.jobs.models import Job
from genway.promode.code_runs import CODE_TASKS, code_runner, instance_answer
from genway.promode.instances import INSTANCE_KIND, Instances
from genway.promode.schemas import InstanceInput, SessionInput
from genway.promode.session import SessionRun
from genway.worker.context import JobContext, JobFailed, until_cancelled
from genway.worker.registry import executor

SESSION_KIND = "promode.session"
# Time kept between a session's own deadline and the worker's, to write the best result.
GRACE_S = 30.0


def time_budget(ctx: JobContext, spec: SessionInput) -> float:
    """Seconds the session may spend iterating: its `timeout_minutes`, within the job's
    deadline less the grace needed to return the best result."""
    remaining = (ctx.deadline - utcnow()).total_seconds() - GRACE_S
    return max(0.0, min(spec.timeout_minutes * 60, remaining))


@executor(
    SESSION_KIND,
    input_model=SessionInput,
    default_timeout_s=3600 + GRACE_S,
    description="A Pro Mode session: candidates, a judged bracket, synthesis, iterations",
)
async def run_session(job: Job, ctx: JobContext) -> dict[str, Any]:
    spec = SessionInput.model_validate(job.input)
    router = router_for(ctx)
    budget_s = time_budget(ctx, spec)
    database, broadcaster = ctx.worker.database, ctx.worker.broadcaster
    async with (
        EventRecorder(database, broadcaster) as recorder,
        Instances(ctx, job, recorder) as instances,
    ):
        if ctx.attempt > 1:
            await instances.cancel_leftovers()
        project = await project_text(ctx, job.org_id, spec.project_id)
        coder = None
        if spec.task in CODE_TASKS:
            coder = await code_runner(ctx, router, recorder, job.org_id, spec.project_id)
        session = SessionRun(job, ctx, spec, router, recorder, instances, project, coder)
        session.emit(
            "session_started",
            {
                "candidates": spec.candidates,
                "max_iterations": spec.max_iterations,
                "agents": spec.agents,
                "task": spec.task,
                "time_budget_s": round(budget_s, 3),
            },
        )
        try:
            async with asyncio.timeout(budget_s):
                await until_cancelled(ctx, session.run())
        except TimeoutError:
            session.timed_out = True
            instances.end_error = {
                "code": "timeout",
                "message": f"The session's {spec.timeout_minutes:g}-minute limit was reached",
            }
            best = session.best.entrant.key if session.best else None
            session.emit("timeout", {"iterations_completed": session.completed, "best": best})
        return session.result()


@executor(
    INSTANCE_KIND,
    input_model=InstanceInput,
    default_timeout_s=600.0,
    description="One agent instance of a Pro Mode session",
)
async def run_instance(job: Job, ctx: JobContext) -> dict[str, Any]:
    spec = InstanceInput.model_validate(job.input)
    if job.parent_id != spec.session_id:
        # Instances exist only inside a session (which is what quotas and limits count).
        raise JobFailed("not_an_instance", "promode.agent jobs are created by Pro Mode sessions")
    router = router_for(ctx)
    tally = UsageTally()
    ref = JobRef(job.id, job.org_id, job.user_id)
    async with EventRecorder(ctx.worker.database, ctx.worker.broadcaster) as recorder:
        project = await project_text(ctx, job.org_id, spec.project_id) if spec.project_id else None
        coder = None
        if spec.task in CODE_TASKS and spec.project_id is not None:
            coder = await code_runner(
                ctx, router, recorder, job.org_id, spec.project_id, spec.base_commit
            )
        work = instance_answer(router, recorder, ref, tally, spec, project, coder)
        try:
            answer = await until_cancelled(ctx, work)
        except LLMError as error:
            raise llm_failure(error) from error
    code = {"branch": answer.branch, "commit": answer.commit} if coder is not None else {}
    return {
        "text": answer.text,
        "critique": answer.critique,
        "model": answer.model,
        **code,
        "usage": tally.as_dict(),
    }
