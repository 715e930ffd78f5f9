"""Instant executors of quota-bearing kinds, so quota tests do not depend on a real engine."""

from __future__ import annotations

from typing import Any

from genway.jobs.models import Job
from genway.worker.context import JobContext
from genway.worker.registry import executor

IMAGE_PROBE = "comfy.quota-probe"


@executor(IMAGE_PROBE, description="Counts as one image; does nothing")
async def image_probe(job: Job, ctx: JobContext) -> dict[str, Any]:
    return {"images": []}
