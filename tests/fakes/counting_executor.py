"""`test.count`: an executor plug-in that records every execution, for multi-process job tests.

Load it in a worker with `GENWAY_EXECUTOR_MODULES=tests.fakes.counting_executor` (the process
must be able to import `tests`, e.g. cwd or PYTHONPATH at the repository root). Each execution
appends one line `job_id attempt pid` to the file named by `GENWAY_TEST_COUNT_FILE` (one
`O_APPEND` write per execution, so lines of concurrent processes never interleave), then sleeps
`input["seconds"]` in `input["steps"]` cooperative steps (`ctx.sleep`, so cancellation stops it),
reporting progress after each step.
"""

from __future__ import annotations

import os
from typing import Any

from pydantic import Field

from genway.jobs.models import Job
from genway.kit.schemas import RequestModel
from genway.worker.context import JobContext, JobFailed
from genway.worker.registry import executor

KIND = "test.count"
COUNT_FILE_ENV = "GENWAY_TEST_COUNT_FILE"


class CountInput(RequestModel):
    seconds: float = Field(default=0.0, ge=0, le=3600)
    steps: int = Field(default=1, ge=1, le=1000)


def record_execution(job_id: int, attempt: int) -> None:
    """Append `job_id attempt pid` to the count file in a single write."""
    path = os.environ.get(COUNT_FILE_ENV)
    if not path:
        raise JobFailed("no_count_file", f"{COUNT_FILE_ENV} is not set in the worker")
    line = f"{job_id} {attempt} {os.getpid()}\n".encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        written = os.write(fd, line)
    finally:
        os.close(fd)
    if written != len(line):  # a short write would break the one-line-per-execution contract
        raise JobFailed("short_write", f"wrote {written} of {len(line)} bytes to {path}")


@executor(
    KIND,
    input_model=CountInput,
    default_timeout_s=600,
    description="Record the execution in GENWAY_TEST_COUNT_FILE, then sleep `seconds`",
)
async def count(job: Job, ctx: JobContext) -> dict[str, Any]:
    spec = CountInput.model_validate(job.input)
    record_execution(job.id, ctx.attempt)
    for step in range(1, spec.steps + 1):
        await ctx.sleep(spec.seconds / spec.steps)
        await ctx.progress(step / spec.steps, f"step {step}/{spec.steps}")
    return {"pid": os.getpid(), "attempt": ctx.attempt, "slept_s": spec.seconds}
