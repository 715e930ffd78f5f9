"""Admitting a workflow for an organization: the file policy (node_policy.py) and the files
its upload inputs name, looked up among the organization's own uploads and outputs only.

Used at submission on every dialect (400 with ComfyUI's `node_errors`) and again by the worker
against the catalogue of the backend that will run the job, before anything reaches it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from genway.engines.comfyui.node_policy import (
    Catalogue,
    FileReference,
    NodePolicy,
    Verdict,
    check_workflow,
    strip_annotation,
)
from genway.engines.comfyui.workflows import Workflow
from genway.errors import GenwayError
from genway.storage import service as artifacts
from genway.storage.models import Artifact, ArtifactKind
from genway.storage.names import join_name

TEMP_FOLDER = "temp"

# What Genway knows of stock ComfyUI's file nodes when no backend answers at submission (the
# worker checks again against the real catalogue before the job reaches a backend).
_UPLOAD = {"image_upload": True}
STOCK_FILE_NODES: dict[str, Any] = {
    "LoadImage": {"input": {"required": {"image": [[], _UPLOAD]}}, "python_module": "nodes"},
    "LoadImageMask": {"input": {"required": {"image": [[], _UPLOAD]}}, "python_module": "nodes"},
    "LoadImageOutput": {
        "input": {"required": {"image": ["COMBO", {**_UPLOAD, "image_folder": "output"}]}},
        "python_module": "nodes",
    },
    "LoadLatent": {"input": {"required": {"latent": [[]]}}, "python_module": "nodes"},
    "LoadImageSetFromFolderNode": {
        "input": {"required": {"folder": [[]]}},
        "python_module": "comfy_extras.nodes_train",
    },
    "LoadImageTextSetFromFolderNode": {
        "input": {"required": {"folder": [[]]}},
        "python_module": "comfy_extras.nodes_train",
    },
    "SaveImage": {
        "input": {"required": {"images": ["IMAGE"], "filename_prefix": ["STRING", {}]}},
        "python_module": "nodes",
    },
}


def fallback_catalogue() -> Catalogue:
    return Catalogue(STOCK_FILE_NODES, frozenset())


class WorkflowRefused(GenwayError):
    """ComfyUI's 400 answer to a workflow it refuses: `{"error": {...}, "node_errors": {...}}`.
    Every dialect answers it (the jobs API and `/api/v1/generate` too)."""

    status_code = 400

    def __init__(
        self, kind: str, message: str, details: str = "", node_errors: dict[str, Any] | None = None
    ) -> None:
        self.node_errors = node_errors or {}
        error = {"type": kind, "message": message, "details": details, "extra_info": {}}
        super().__init__(message, extra={"error": error, "node_errors": self.node_errors})


def refused(node_errors: dict[str, Any]) -> WorkflowRefused:
    return WorkflowRefused(
        "prompt_outputs_failed_validation", "Prompt outputs failed validation", "", node_errors
    )


@dataclass(frozen=True)
class Admitted:
    """A workflow that passed: its policy verdict and the artifact behind each upload input."""

    verdict: Verdict
    files: dict[str, Artifact]  # by the value the client gave

    @property
    def inputs(self) -> dict[str, int]:
        """The mapping a job keeps: value in the workflow -> artifact id."""
        return {value: artifact.id for value, artifact in self.files.items()}


def judge(workflow: Workflow, catalogue: Catalogue | None, policy: NodePolicy) -> Verdict:
    """The policy's verdict (against the stock file nodes when no catalogue is at hand).
    Raises WorkflowRefused with every refused input."""
    verdict = check_workflow(workflow, catalogue or fallback_catalogue(), policy)
    if verdict.node_errors:
        raise refused(verdict.node_errors)
    return verdict


async def admit(
    session: AsyncSession,
    org_id: int,
    workflow: Workflow,
    explicit: Mapping[str, int],
    catalogue: Catalogue | None,
    policy: NodePolicy,
) -> Admitted:
    """Check the workflow and find its files among the organization's own; marks the uploads
    as used now (the caller commits). Raises WorkflowRefused."""
    verdict = judge(workflow, catalogue, policy)
    files = await find_files(session, org_id, verdict.uploads, explicit)
    missing = Verdict()
    for ref in verdict.uploads:
        if ref.value not in files:
            missing.add(ref.node_id, workflow[ref.node_id]["class_type"], _invalid_file(ref))
    if missing.node_errors:
        raise refused(missing.node_errors)
    await artifacts.touch(session, org_id, [a.id for a in files.values()])
    return Admitted(verdict, files)


def _invalid_file(ref: FileReference) -> dict[str, Any]:
    # ComfyUI's own words for a LoadImage name that does not exist.
    return {
        "type": "custom_validation_failed",
        "message": "Custom validation failed for node",
        "details": f"{ref.input_name} - Invalid image file: {ref.value}",
        "extra_info": {"input_name": ref.input_name},
    }


async def find_files(
    session: AsyncSession,
    org_id: int,
    refs: list[FileReference],
    explicit: Mapping[str, int],
) -> dict[str, Artifact]:
    """The organization's artifact behind each upload input: by the explicit mapping (value ->
    artifact id), else by name among its uploads (`name`, `name [input]`) or outputs
    (`name [output]`, `name [temp]`, or any name on a loader of the output folder)."""
    by_id = await artifacts.artifacts_by_id(
        session, org_id, [explicit[r.value] for r in refs if r.value in explicit]
    )
    found: dict[str, Artifact] = {}
    for ref in refs:
        if ref.value in found:
            continue
        artifact: Artifact | None
        if ref.value in explicit:
            artifact = by_id.get(explicit[ref.value])
        else:
            name, folder = strip_annotation(ref.value)
            folder = folder or ref.folder
            if folder == "input":
                artifact = (await artifacts.uploads_by_name(session, org_id, [name])).get(name)
            else:
                stored = join_name(TEMP_FOLDER, name) if folder == TEMP_FOLDER else name
                artifact = await artifacts.find_by_name(
                    session, org_id, ArtifactKind.OUTPUT, stored
                )
        if artifact is not None:
            found[ref.value] = artifact
    return found
