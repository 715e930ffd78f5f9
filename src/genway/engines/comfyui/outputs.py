"""Copying a prompt's output images from the backend into Genway's store as they appear, and
naming them so that names are unique in the organization (backends count files separately).

Copies run in the background while the prompt goes on (the last node's copy overlaps with the
backend finishing up); `settle` waits for them and raises the first failure."""

from __future__ import annotations

import asyncio
import mimetypes
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from genway.db import Database
from genway.engines.comfyui.client import ComfyUIClient
from genway.engines.comfyui.inputs import BackendFiles
from genway.engines.comfyui.protocol import HistoryEntry, ImageRef, NodeOutput
from genway.jobs.models import Job
from genway.storage import service as artifacts
from genway.storage.blobs import BlobStore
from genway.storage.models import Artifact
from genway.storage.names import join_name, sanitize_filename, sanitize_folder

TEMP_FOLDER = "temp"


def genway_ref(image: ImageRef, job_id: int, job_folder: str = "") -> ImageRef:
    """How Genway names a backend's output file: `name_00001_.png` becomes `name_00001_-j42.png`
    in the subfolder the client asked for (the job's own folder on the backend taken off), so
    `/view` without a subfolder still finds exactly one file."""
    stem, dot, suffix = image.filename.rpartition(".")
    filename = f"{stem}-j{job_id}.{suffix}" if dot and stem else f"{image.filename}-j{job_id}"
    kind = TEMP_FOLDER if image.type == TEMP_FOLDER else "output"
    subfolder = image.subfolder.replace("\\", "/")
    if job_folder and (subfolder == job_folder or subfolder.startswith(job_folder + "/")):
        subfolder = subfolder[len(job_folder) :]
    return ImageRef(sanitize_filename(filename), sanitize_folder(subfolder), kind)


def artifact_name(ref: ImageRef) -> str:
    """Where a Genway image reference is stored: temp files under `temp/`."""
    folder = join_name(TEMP_FOLDER, ref.subfolder) if ref.type == TEMP_FOLDER else ref.subfolder
    return join_name(folder, ref.filename)


def _as_json(ref: ImageRef) -> dict[str, str]:
    return {"filename": ref.filename, "subfolder": ref.subfolder, "type": ref.type}


class OutputCollector:
    """One attempt's outputs: stored artifacts and the ComfyUI-shaped per-node output."""

    def __init__(
        self,
        job: Job,
        database: Database,
        store: BlobStore,
        client: ComfyUIClient,
        files: BackendFiles,
    ) -> None:
        self.job, self.database, self.store, self.client = job, database, store, client
        self.files = files
        self.copied: dict[ImageRef, ImageRef] = {}
        self.outputs: dict[str, dict[str, Any]] = {}
        self.artifacts: list[dict[str, Any]] = []
        self._pending: list[asyncio.Task[None]] = []

    async def forget_earlier_attempts(self) -> None:
        async with self.database.transaction() as session:
            await artifacts.drop_job_outputs(session, self.job.org_id, self.job.id)

    def node_executed(
        self, node_id: str, output: NodeOutput, stored: Callable[[dict[str, Any]], None]
    ) -> None:
        """Start copying the node's images; `stored(ui_output)` runs once they are in the store
        (so a client told about them can fetch them)."""
        task = asyncio.create_task(self._copy_node(node_id, output, stored))
        # A copy outliving a failed or cancelled attempt must not log "never retrieved".
        task.add_done_callback(lambda done: done.cancelled() or done.exception())
        self._pending.append(task)

    async def settle(self) -> None:
        """Wait for the copies started so far. Raises the first one's error."""
        pending, self._pending = self._pending, []
        await asyncio.gather(*pending)

    async def _copy_node(
        self, node_id: str, output: NodeOutput, stored: Callable[[dict[str, Any]], None]
    ) -> None:
        stored(await self._node_output(node_id, output))

    async def _node_output(self, node_id: str, output: NodeOutput) -> dict[str, Any]:
        """Copy the node's images; its UI output with Genway's file names. Only the job's own
        files are copied: an output outside its folder on the backend is not this job's."""
        own = [image for image in output.images if self.files.owns(image)]
        self.files.add(own)
        refs = [await self._copy(node_id, image) for image in own]
        images = [_as_json(ref) for ref in refs]
        ui = {**output.raw, "images": images} if output.images else dict(output.raw)
        known = self.outputs.setdefault(node_id, {})
        for key, value in ui.items():
            # A node that runs several times (lists) adds to its output, as in ComfyUI's history.
            if isinstance(value, list) and isinstance(known.get(key), list):
                known[key] = known[key] + [v for v in value if v not in known[key]]
            else:
                known[key] = value
        return ui

    async def finished(self, history: HistoryEntry) -> None:
        """Copy whatever the live messages did not announce (e.g. after falling back to polling)."""
        await self.settle()
        for node_id, output in history.outputs.items():
            pending = [i for i in output.images if i not in self.copied and self.files.owns(i)]
            if node_id not in self.outputs or pending:
                await self._node_output(node_id, output)

    async def _copy(self, node_id: str, image: ImageRef) -> ImageRef:
        if image in self.copied:
            return self.copied[image]
        data = await self.client.view(image.filename, image.subfolder, image.type)
        ref = genway_ref(image, self.job.id, self.files.folder)
        name = artifact_name(ref)
        content_type = mimetypes.guess_type(image.filename)[0] or "application/octet-stream"
        # Shielded: this runs in the task that is cancelled with the job (see relay.py).
        artifact = await asyncio.shield(self._store(name, data, content_type))
        self.copied[image] = ref
        self.artifacts.append(
            {
                "id": artifact.id,
                "name": name,
                "node_id": node_id,
                "content_type": content_type,
                "size": artifact.size,
                "sha256": artifact.sha256,
                "url": f"/v1/organizations/{self.job.org_id}/jobs/{self.job.id}"
                f"/artifacts/{quote(name)}",
            }
        )
        return ref

    async def _store(self, name: str, data: bytes, content_type: str) -> Artifact:
        async with self.database.transaction() as session:
            return await artifacts.add_output(
                session, self.store, self.job.org_id, self.job.id, name, data, content_type
            )

    def result(self, prompt_id: str) -> dict[str, Any]:
        return {"prompt_id": prompt_id, "outputs": self.outputs, "artifacts": self.artifacts}
