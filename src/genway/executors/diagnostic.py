"""`diagnostic.sleep`: sleeps in steps with progress; for health checks, load tests and docs."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from genway.jobs.models import Job
from genway.kit.schemas import RequestModel
from genway.worker.context import JobContext, JobFailed, RetryableJobError
from genway.worker.registry import executor


class SleepInput(RequestModel):
    seconds: float = Field(default=0.0, ge=0, le=86_400)
    steps: int = Field(default=1, ge=1, le=10_000)
    fail: bool = Field(default=False, description="Fail (not retryable) after sleeping")
    fail_attempts: int = Field(
        default=0, ge=0, le=100, description="Fail retryably on the first N attempts"
    )


@executor(
    "diagnostic.sleep",
    input_model=SleepInput,
    default_timeout_s=3600,
    description="Sleep `seconds` in `steps`, reporting progress each step",
)
async def sleep(job: Job, ctx: JobContext) -> dict[str, Any]:
    spec = SleepInput.model_validate(job.input)
    if ctx.attempt <= spec.fail_attempts:
        raise RetryableJobError("diagnostic_retry", f"asked to fail attempt {ctx.attempt}")
    for step in range(1, spec.steps + 1):
        await ctx.sleep(spec.seconds / spec.steps)
        await ctx.progress(step / spec.steps, f"step {step}/{spec.steps}")
    if spec.fail:
        raise JobFailed("diagnostic_failure", "diagnostic.sleep was asked to fail")
    return {"slept_s": spec.seconds, "steps": spec.steps}
