"""The ComfyUI job kinds: `comfy.workflow` (a client's API-format workflow) and
`comfy.generate` (seed 001's text-to-image parameters rendered into the txt2img template)."""

from __future__ import annotations

from typing import Any

from genway.engines.comfyui.execution import PromptExecution
from genway.engines.comfyui.job_inputs import (
    GENERATE_KIND,
    WORKFLOW_KIND,
    GenerateInput,
    WorkflowInput,
    extra_data_of,
    prompt_id_of,
    workflow_of,
)
from genway.engines.comfyui.runtime import active_engine
from genway.jobs.models import Job
from genway.worker.context import JobContext
from genway.worker.registry import executor


@executor(
    WORKFLOW_KIND,
    input_model=WorkflowInput,
    default_timeout_s=900,
    description="Run an API-format ComfyUI workflow on the healthiest backend",
)
async def run_workflow(job: Job, ctx: JobContext) -> dict[str, Any]:
    spec = WorkflowInput.model_validate(job.input)
    execution = PromptExecution(job, ctx, active_engine(), prompt_id_of(job), extra_data_of(job))
    return await execution.run(spec.workflow, spec.inputs)


@executor(
    GENERATE_KIND,
    input_model=GenerateInput,
    default_timeout_s=900,
    description="Text to image: prompt, negative_prompt, width, height, steps, seed, checkpoint",
)
async def run_generate(job: Job, ctx: JobContext) -> dict[str, Any]:
    engine = active_engine()
    execution = PromptExecution(job, ctx, engine, prompt_id_of(job), {})
    return await execution.run(workflow_of(job, engine.template), {})
