"""The inputs of the two ComfyUI job kinds, and what the rest of Genway reads from such a job:
its prompt id, its workflow, the ComfyUI client that submitted it."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from genway.engines.comfyui.prompt_ids import NONCE_PATTERN, new_nonce, prompt_id_for
from genway.engines.comfyui.workflows import (
    InvalidWorkflow,
    Txt2ImgParams,
    Workflow,
    render_txt2img,
    validate_api_workflow,
)
from genway.jobs.models import Job
from genway.kit.schemas import RequestModel

WORKFLOW_KIND = "comfy.workflow"
GENERATE_KIND = "comfy.generate"
COMFY_KINDS = (WORKFLOW_KIND, GENERATE_KIND)

_NONCE_FIELD = Field(
    default_factory=new_nonce,
    pattern=NONCE_PATTERN,
    description="Set by Genway: with the job id it makes the job's ComfyUI prompt id",
)


class WorkflowInput(RequestModel):
    """`comfy.workflow`: an API-format workflow; LoadImage inputs name uploads."""

    workflow: dict[str, Any] = Field(description="API-format workflow ('Save (API Format)')")
    inputs: dict[str, int] = Field(
        default_factory=dict,
        description="Image names in the workflow mapped to upload ids; other LoadImage names "
        "are looked up among the organization's uploads by name",
    )
    client_id: str | None = Field(default=None, max_length=256)
    extra_data: dict[str, Any] = Field(default_factory=dict)
    prompt_nonce: str = _NONCE_FIELD

    @field_validator("workflow")
    @classmethod
    def _api_format(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            return validate_api_workflow(value)
        except InvalidWorkflow as exc:
            raise ValueError("; ".join(exc.problems[:10])) from None


class GenerateInput(Txt2ImgParams):
    """`comfy.generate`: seed 001's text-to-image parameters, rendered into the template."""

    prompt_nonce: str = _NONCE_FIELD


def prompt_id_of(job: Job) -> str:
    """The ComfyUI prompt id of a comfy job."""
    return prompt_id_for(str(job.input["prompt_nonce"]), job.id)


def client_id_of(job: Job) -> str | None:
    """The `client_id` a ComfyUI client submitted the job with (None: any of its sockets)."""
    client_id = job.input.get("client_id") if job.kind == WORKFLOW_KIND else None
    return client_id if isinstance(client_id, str) else None


def workflow_of(job: Job, template: Workflow) -> Workflow:
    """The workflow the job runs (a comfy.generate job's is rendered from `template`)."""
    if job.kind == GENERATE_KIND:
        return render_txt2img(GenerateInput.model_validate(job.input), template)
    workflow = job.input.get("workflow")  # checked when the job was submitted
    return dict(workflow) if isinstance(workflow, dict) else {}


def extra_data_of(job: Job) -> dict[str, Any]:
    extra = job.input.get("extra_data") if job.kind == WORKFLOW_KIND else None
    data = dict(extra) if isinstance(extra, dict) else {}
    client_id = client_id_of(job)
    if client_id is not None:
        data["client_id"] = client_id
    return data
