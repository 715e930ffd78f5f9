"""A job's own files on the backend that runs it: its inputs staged in a folder of its own, its
outputs saved under that folder, and all of them erased when the job ends.

The folder is `genway/{prompt_id}` in the backend's input and output directories: nothing of
another job is ever in it, and the policy (node_policy.py) refuses any value that could name
anything outside it. A stock ComfyUI has no API to delete a file, so "erased" means overwritten
with zero bytes through `/upload/image` (which writes to the input, output and temp folders).
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import PurePosixPath

import structlog

from genway.engines.comfyui.admission import Admitted
from genway.engines.comfyui.client import ComfyUIClient
from genway.engines.comfyui.errors import ComfyUIError
from genway.engines.comfyui.protocol import ImageRef
from genway.engines.comfyui.workflows import Workflow
from genway.storage.blobs import BlobStore
from genway.worker.context import JobFailed

log = structlog.get_logger("genway.engines.comfyui")

STAGING_ROOT = "genway"


def job_folder(prompt_id: str) -> str:
    """The job's folder on a backend (inputs and outputs alike)."""
    return f"{STAGING_ROOT}/{prompt_id}"


@dataclass
class BackendFiles:
    """The files one attempt of a job left on one backend, to erase when it ends."""

    prompt_id: str
    refs: set[ImageRef] = field(default_factory=set)

    @property
    def folder(self) -> str:
        return job_folder(self.prompt_id)

    def owns(self, image: ImageRef) -> bool:
        """Whether an output the backend reports is this job's (its folder, or a temp preview)."""
        if image.type == "temp":
            return True
        subfolder = image.subfolder.replace("\\", "/")
        return image.type == "output" and (
            subfolder == self.folder or subfolder.startswith(self.folder + "/")
        )

    def add(self, images: Iterable[ImageRef]) -> None:
        self.refs.update(image for image in images if self.owns(image))

    async def erase(self, client: ComfyUIClient) -> None:
        """Overwrite every file of the job with nothing and drop the backend's history entry.
        Failures are logged: the job's outcome does not depend on them."""
        refs, self.refs = list(self.refs), set()
        calls = [client.upload_image(b"", r.filename, r.subfolder, True, type=r.type) for r in refs]
        results = await asyncio.gather(
            *calls, client.delete_history([self.prompt_id]), return_exceptions=True
        )
        failures = [r for r in results if isinstance(r, BaseException)]
        for failure in failures:
            if not isinstance(failure, ComfyUIError):
                raise failure
        if failures:
            log.warning("comfyui_erase_failed", prompt_id=self.prompt_id, error=str(failures[0]))


async def stage(
    client: ComfyUIClient,
    store: BlobStore,
    workflow: Workflow,
    admitted: Admitted,
    files: BackendFiles,
) -> Workflow:
    """A copy of the workflow reading the job's own copies of its files and saving into its own
    folder. Raises BackendUnavailable (the caller retries elsewhere) or JobFailed."""
    rewritten = copy.deepcopy(workflow)
    staged: dict[str, str] = {}
    for value, artifact in admitted.files.items():
        try:
            data = await store.read(artifact.sha256)
        except FileNotFoundError as exc:
            raise JobFailed(
                "missing_inputs", f"The file of '{artifact.name}' is no longer stored"
            ) from exc
        suffix = PurePosixPath(artifact.name).suffix or ".png"
        name = f"{artifact.sha256[:40]}{suffix}"
        uploaded = await client.upload_image(data, name, files.folder, overwrite=True)
        files.refs.add(ImageRef(uploaded.name, uploaded.subfolder, "input"))
        staged[value] = uploaded.reference
    for ref in admitted.verdict.uploads:
        reference = staged[ref.value]
        # Loaders of the output folder read the staged copy through ComfyUI's annotation.
        inputs = rewritten[ref.node_id]["inputs"]
        inputs[ref.input_name] = reference if ref.folder == "input" else f"{reference} [input]"
    for prefix in admitted.verdict.prefixes:
        rewritten[prefix.node_id]["inputs"][prefix.input_name] = f"{files.folder}/{prefix.value}"
    return rewritten
