"""`test.span`: an executor plug-in that records when each execution starts and ends, so a chaos
test can prove that no job ever ran twice at the same time.

Load it in a worker with `GENWAY_EXECUTOR_MODULES=tests.chaos.span_executor`. Each execution
appends `start job_id attempt pid t` when it begins and `end job_id attempt pid t outcome` when it
ends however it ends (`ok`, `cancelled`, `error`), one `O_APPEND` write each, to the file named by
`GENWAY_TEST_SPAN_FILE`; `t` is `time.monotonic_ns()`, one clock for every process of the machine.
In between it sleeps `input["seconds"]` in `input["steps"]` cooperative steps with progress.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field

from genway.jobs.models import Job
from genway.kit.schemas import RequestModel
from genway.worker.context import JobCancelled, JobContext, JobFailed
from genway.worker.registry import executor

KIND = "test.span"
SPAN_FILE_ENV = "GENWAY_TEST_SPAN_FILE"


class SpanInput(RequestModel):
    seconds: float = Field(default=0.0, ge=0, le=3600)
    steps: int = Field(default=1, ge=1, le=1000)


def _record(*fields: object) -> None:
    path = os.environ.get(SPAN_FILE_ENV)
    if not path:
        raise JobFailed("no_span_file", f"{SPAN_FILE_ENV} is not set in the worker")
    line = (" ".join(str(f) for f in fields) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


@executor(
    KIND,
    input_model=SpanInput,
    default_timeout_s=600,
    description="Record the start and end of the execution in GENWAY_TEST_SPAN_FILE",
)
async def span(job: Job, ctx: JobContext) -> dict[str, Any]:
    spec = SpanInput.model_validate(job.input)
    who = (job.id, ctx.attempt, os.getpid())
    _record("start", *who, time.monotonic_ns())
    outcome = "error"
    try:
        for step in range(1, spec.steps + 1):
            await ctx.sleep(spec.seconds / spec.steps)
            await ctx.progress(step / spec.steps, f"step {step}/{spec.steps}")
        outcome = "ok"
    except (asyncio.CancelledError, JobCancelled):
        outcome = "cancelled"
        raise
    finally:
        _record("end", *who, time.monotonic_ns(), outcome)
    return {"pid": os.getpid(), "attempt": ctx.attempt}


def span_job(seconds: float, steps: int = 1, **fields: Any) -> dict[str, Any]:
    """A `test.span` job request."""
    return {"kind": KIND, "input": {"seconds": seconds, "steps": steps}, **fields}


@dataclass(frozen=True)
class Span:
    """One execution: from `start` to `end` (None while it runs)."""

    job_id: int
    attempt: int
    pid: int
    start: int
    end: int | None = None
    outcome: str | None = None


def read_spans(path: Path) -> list[Span]:
    """Every execution in the file, in the order they started."""
    if not path.exists():
        return []
    open_spans: dict[tuple[int, int, int], Span] = {}
    spans: list[Span] = []
    for line in path.read_text().splitlines():
        kind, job_id, attempt, pid, at, *rest = line.split()
        key = (int(job_id), int(attempt), int(pid))
        if kind == "start":
            open_spans[key] = Span(*key, int(at))
        else:
            started = open_spans.pop(key)
            spans.append(Span(*key, started.start, int(at), rest[0]))
    spans.extend(open_spans.values())
    return sorted(spans, key=lambda s: s.start)


def overlapping(spans: list[Span]) -> list[tuple[Span, Span]]:
    """Pairs of executions of one job that ran at the same time (an unfinished one runs on)."""
    by_job: dict[int, list[Span]] = {}
    for s in spans:
        by_job.setdefault(s.job_id, []).append(s)
    pairs = []
    for runs in by_job.values():
        runs.sort(key=lambda s: s.start)
        for earlier, later in itertools.pairwise(runs):
            if earlier.end is None or later.start < earlier.end:
                pairs.append((earlier, later))
    return pairs
