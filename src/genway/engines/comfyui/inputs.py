"""Getting a job's input images onto the backend that runs it.

Every LoadImage input must name one of the organization's uploads (by the explicit mapping in
the job input, or by name); nothing else on a shared backend (another organization's staged
file, an `[output]` annotation) can be read. Each upload is copied to the backend under its
content hash, so identical files are not duplicated there and ComfyUI's cache stays valid.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePosixPath

from genway.db import Database
from genway.engines.comfyui.client import ComfyUIClient
from genway.engines.comfyui.workflows import Workflow, image_references, rewrite_image_inputs
from genway.storage import service as artifacts
from genway.storage.blobs import BlobStore
from genway.storage.models import Artifact
from genway.worker.context import JobFailed

STAGING_FOLDER = "genway"
INPUT_ANNOTATION = " [input]"


def upload_name(reference: str) -> str:
    """The upload a LoadImage value names: `photo.png`, `sub/photo.png`, `photo.png [input]`."""
    return reference.removesuffix(INPUT_ANNOTATION)


async def resolve_inputs(
    database: Database, org_id: int, workflow: Workflow, explicit: Mapping[str, int]
) -> dict[str, Artifact]:
    """The upload behind each image the workflow loads, marked as used now.

    Raises JobFailed("missing_inputs") naming every image that is not an upload of the
    organization."""
    references = image_references(workflow)
    if not references:
        return {}
    async with database.sessions() as session:
        by_id = await artifacts.uploads_by_id(session, org_id, explicit.values())
        by_name = await artifacts.uploads_by_name(
            session, org_id, [upload_name(r) for r in references if r not in explicit]
        )
        found: dict[str, Artifact] = {}
        for reference in references:
            if reference in explicit:
                artifact = by_id.get(explicit[reference])
            else:
                artifact = by_name.get(upload_name(reference))
            if artifact is not None:
                found[reference] = artifact
        await artifacts.touch(session, org_id, [a.id for a in found.values()])
        await session.commit()
    missing = [reference for reference in references if reference not in found]
    if missing:
        raise JobFailed(
            "missing_inputs",
            "LoadImage inputs must name images uploaded to this organization; not found: "
            + ", ".join(missing),
            details={"missing": missing},
        )
    return found


async def stage_inputs(
    client: ComfyUIClient, store: BlobStore, workflow: Workflow, found: Mapping[str, Artifact]
) -> Workflow:
    """A copy of the workflow whose LoadImage inputs read the copies made on this backend.

    Raises BackendUnavailable (the caller retries elsewhere) or JobFailed."""
    staged: dict[str, str] = {}
    for reference, artifact in found.items():
        try:
            data = await store.read(artifact.sha256)
        except FileNotFoundError as exc:
            raise JobFailed(
                "missing_inputs", f"The file of upload '{artifact.name}' is no longer stored"
            ) from exc
        suffix = PurePosixPath(artifact.name).suffix or ".png"
        uploaded = await client.upload_image(
            data, f"{artifact.sha256[:40]}{suffix}", STAGING_FOLDER, overwrite=True
        )
        staged[reference] = uploaded.reference
    return rewrite_image_inputs(workflow, staged)
