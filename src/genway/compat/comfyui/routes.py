"""ComfyUI's HTTP API over Genway, in the caller's organization: `/prompt`, `/queue`,
`/history`, `/view`, `/upload/image`, `/interrupt`, `/object_info`, `/system_stats` (and the same
under `/api`, as current ComfyUI serves them). Mapping only: the work is in the job, prompt and
artifact services. Prompt ids are Genway's; another organization's are unknown here."""

from __future__ import annotations

import copy
import os
import platform
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse

from genway.auth.deps import SettingsDep
from genway.compat.comfyui.deps import ComfyCanceller, ComfyCreator, ComfyReader, EngineDep
from genway.compat.comfyui.shapes import history_entry, queue_item
from genway.db import SessionDep
from genway.engines.comfyui import prompts
from genway.engines.comfyui.job_inputs import prompt_id_of
from genway.engines.comfyui.node_policy import (
    Catalogue,
    InputKind,
    InputSpec,
    looks_like_path,
    path_named,
)
from genway.engines.comfyui.outputs import TEMP_FOLDER
from genway.errors import GenwayError, InvalidInput, NotFound
from genway.jobs.deps import submitter
from genway.jobs.states import JobStatus
from genway.storage import service as artifacts
from genway.storage.deps import BlobStoreDep, file_response, read_multipart
from genway.storage.models import ArtifactKind
from genway.storage.names import join_name

router = APIRouter(tags=["ComfyUI-compatible"])

HISTORY_DEFAULT = 100
HISTORY_MAX = 1000
NESTED_TOO_DEEPLY = "The body is nested too deeply to be a workflow"


class NoBackend(GenwayError):
    status_code = 503
    detail = "No ComfyUI backend is available right now"
    RETRY_AFTER_S = 10  # the pool re-checks unhealthy backends every few seconds

    def __init__(self) -> None:
        super().__init__(headers={"Retry-After": str(self.RETRY_AFTER_S)})


async def _json_object(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except RecursionError:
        raise InvalidInput(NESTED_TOO_DEEPLY, status_code=400) from None
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _check_client_prompt_id(value: object) -> None:
    """Newer ComfyUI refuses a client's `prompt_id` that is not a canonical lower-case UUID.
    A canonical one is accepted and, as before, not used: the prompt gets Genway's id (derived
    from the job), which the answer names. Raises PromptRejected."""
    if value is None:
        return
    try:
        canonical = isinstance(value, str) and str(uuid.UUID(value)) == value
    except ValueError:
        canonical = False
    if not canonical:
        message = "job id must be a UUID in canonical lowercase hyphenated form"
        raise prompts.PromptRejected("invalid_prompt_id", message)


@router.post("/prompt")
async def post_prompt(
    request: Request,
    context: ComfyCreator,
    session: SessionDep,
    settings: SettingsDep,
    engine: EngineDep,
) -> dict[str, Any]:
    """Queue an API-format workflow: `{"prompt", "client_id"?, "extra_data"?, "front"?}`.
    Answers `{"prompt_id", "number", "node_errors"}`; invalid workflows get ComfyUI's 400."""
    try:
        body = await request.json()
    except RecursionError:
        raise prompts.PromptRejected("invalid_prompt", NESTED_TOO_DEEPLY) from None
    except ValueError:
        raise prompts.PromptRejected("invalid_prompt", "The body must be a JSON object") from None
    if not isinstance(body, dict):
        raise prompts.PromptRejected("invalid_prompt", "The body must be a JSON object")
    _check_client_prompt_id(body.get("prompt_id"))
    job = await prompts.submit_prompt(
        session,
        submitter(context),
        body,
        await engine.catalogue(),
        engine.policy,
        max_input_bytes=settings.job_input_max_bytes,
    )
    engine.prompts.notify(context.org_id)
    return {"prompt_id": prompt_id_of(job), "number": job.id, "node_errors": {}}


@router.get("/prompt")
async def get_prompt(context: ComfyReader, session: SessionDep) -> dict[str, Any]:
    remaining = await prompts.queue_remaining(session, context.org_id)
    return {"exec_info": {"queue_remaining": remaining}}


@router.get("/queue")
async def get_queue(context: ComfyReader, session: SessionDep, engine: EngineDep) -> dict[str, Any]:
    """The organization's running and pending prompts; pending ones in the order they will
    start (after a move-to-front or a priority change too). ComfyUI has no pause: while the
    organization's queue is paused, prompts simply stay pending."""
    active = await prompts.active_prompts(session, context.org_id)
    pending = sorted(
        (j for j in active if j.status == JobStatus.QUEUED), key=lambda j: (-j.priority, j.id)
    )
    return {
        "queue_running": [
            queue_item(j, engine.template) for j in active if j.status == JobStatus.RUNNING
        ],
        "queue_pending": [queue_item(j, engine.template) for j in pending],
    }


# ComfyUI answers these with an empty 200 (no body, no content type); so does Genway.
EMPTY_OK: dict[int | str, dict[str, Any]] = {
    200: {"description": "Done (an empty body, as ComfyUI answers)", "content": {}}
}


@router.post("/queue", response_class=Response, responses=EMPTY_OK)
async def post_queue(
    request: Request, context: ComfyCanceller, session: SessionDep, engine: EngineDep
) -> Response:
    """`{"clear": true}` removes the organization's pending prompts, `{"delete": [ids]}` those
    pending prompts; running ones are not affected (use `/interrupt`), as in ComfyUI."""
    body = await _json_object(request)
    pending = [
        j
        for j in await prompts.active_prompts(session, context.org_id)
        if j.status == JobStatus.QUEUED
    ]
    wanted = {str(p) for p in body.get("delete") or [] if isinstance(p, str)}
    targets = [j for j in pending if body.get("clear") is True or prompt_id_of(j) in wanted]
    await prompts.cancel_prompts(session, context.org_id, targets)
    engine.prompts.notify(context.org_id)
    return Response(status_code=200)


@router.post("/interrupt", response_class=Response, responses=EMPTY_OK)
async def interrupt(
    request: Request, context: ComfyCanceller, session: SessionDep, engine: EngineDep
) -> Response:
    """Stop the running prompt `{"prompt_id"}`, or without one every running prompt of the
    organization (ComfyUI's single queue has only one)."""
    prompt_id = (await _json_object(request)).get("prompt_id")
    running = [
        j
        for j in await prompts.active_prompts(session, context.org_id)
        if j.status == JobStatus.RUNNING
        and (not isinstance(prompt_id, str) or prompt_id_of(j) == prompt_id)
    ]
    await prompts.cancel_prompts(session, context.org_id, running)
    engine.prompts.notify(context.org_id)
    return Response(status_code=200)


@router.get("/history")
async def get_history(
    context: ComfyReader,
    session: SessionDep,
    engine: EngineDep,
    max_items: Annotated[int, Query(ge=0, le=HISTORY_MAX)] = HISTORY_DEFAULT,
) -> dict[str, Any]:
    """The organization's newest finished prompts (at most `max_items`), oldest first."""
    jobs = await prompts.finished_prompts(session, context.org_id, max_items)
    return {prompt_id_of(job): history_entry(job, engine.template) for job in jobs}


@router.get("/history/{prompt_id}")
async def get_history_item(
    prompt_id: str, context: ComfyReader, session: SessionDep, engine: EngineDep
) -> dict[str, Any]:
    """`{prompt_id: entry}` once the prompt ended, `{}` before (and for unknown ids)."""
    job = await prompts.find_prompt(session, context.org_id, prompt_id)
    if job is None or not JobStatus(job.status).is_terminal or job.started_at is None:
        return {}
    return {prompt_id_of(job): history_entry(job, engine.template)}


@router.get("/view", response_class=FileResponse, responses={200: {"content": {"image/png": {}}}})
async def view(
    context: ComfyReader,
    session: SessionDep,
    store: BlobStoreDep,
    filename: Annotated[str, Query(min_length=1, max_length=255)],
    subfolder: Annotated[str, Query(max_length=255)] = "",
    file_type: Annotated[str, Query(alias="type")] = "output",
) -> FileResponse:
    """An output (`type=output` or `temp`) or an upload (`type=input`) of the organization."""
    if file_type not in ("output", "temp", "input"):
        raise NotFound(f"Unknown file type '{file_type}'")
    kind = ArtifactKind.UPLOAD if file_type == "input" else ArtifactKind.OUTPUT
    folder = join_name(TEMP_FOLDER, subfolder) if file_type == TEMP_FOLDER else subfolder
    artifact = await artifacts.find_by_name(
        session, context.org_id, kind, join_name(folder, filename)
    )
    if artifact is None:
        raise NotFound(f"No file named '{filename}'")
    return file_response(store, artifact)


@router.post("/upload/image")
async def upload_image(
    request: Request,
    context: ComfyCreator,
    session: SessionDep,
    store: BlobStoreDep,
    settings: SettingsDep,
) -> dict[str, str]:
    """Multipart `image` (+ `subfolder`, `overwrite`): stored as an upload of the organization,
    for LoadImage to name. 413 beyond the size limit, 415 for non-images."""
    upload, fields = await read_multipart(request, settings.upload_max_bytes)
    artifact = await artifacts.save_upload(
        session,
        store,
        context.org_id,
        upload,
        max_bytes=settings.upload_max_bytes,
        folder=fields.get("subfolder", ""),
        overwrite=fields.get("overwrite", "").lower() in ("true", "1"),
    )
    return {"name": artifact.basename, "subfolder": artifact.folder, "type": "input"}


async def _catalogue(engine: EngineDep) -> Catalogue:
    catalogue = await engine.catalogue()
    if catalogue is None:
        raise NoBackend()
    return catalogue


def _tenant_view(catalogue: Catalogue, names: list[str], classes: list[str]) -> dict[str, Any]:
    """The node catalogue as this organization may see it: file pickers list its own uploads,
    and choices drawn from a backend's shared folders (latents, training sets) are hidden, so
    no one learns another tenant's file names."""
    result: dict[str, Any] = {}
    for class_type in classes:
        info = catalogue.object_info[class_type]
        node = catalogue.node(class_type)
        if node is None:
            continue
        changes = {
            name: _visible_choices(spec, names, catalogue.model_files)
            for name, spec in node.inputs.items()
            if spec.kind in (InputKind.UPLOAD, InputKind.MODEL)
        }
        if not changes:
            result[class_type] = info
            continue
        info = copy.deepcopy(info)
        for section in info.get("input", {}).values():
            for name, choices in changes.items():
                if isinstance(section, dict) and isinstance(section.get(name), list):
                    _set_choices(section[name], choices)
        result[class_type] = info
    return result


def _visible_choices(spec: InputSpec, uploads: list[str], model_files: frozenset[str]) -> list[str]:
    if spec.kind == InputKind.UPLOAD:
        return uploads if spec.folder == "input" else []
    return sorted(
        choice
        for choice in spec.options
        if choice in model_files or not (looks_like_path(choice) or path_named(spec.name))
    )


def _set_choices(spec: list[Any], choices: list[str]) -> None:
    if spec and isinstance(spec[0], list):
        spec[0] = choices
    elif len(spec) > 1 and isinstance(spec[1], dict) and "options" in spec[1]:
        spec[1]["options"] = choices


@router.get("/object_info")
async def object_info(
    context: ComfyReader, session: SessionDep, engine: EngineDep
) -> dict[str, Any]:
    """The node catalogue of a healthy backend (cached); 503 while none answers."""
    catalogue = await _catalogue(engine)
    names = await artifacts.upload_names(session, context.org_id)
    return _tenant_view(catalogue, names, list(catalogue.object_info))


@router.get("/object_info/{node_class}")
async def object_info_node(
    node_class: str, context: ComfyReader, session: SessionDep, engine: EngineDep
) -> dict[str, Any]:
    catalogue = await _catalogue(engine)
    if node_class not in catalogue.object_info:
        return {}
    names = await artifacts.upload_names(session, context.org_id)
    return _tenant_view(catalogue, names, [node_class])


@router.get("/system_stats")
async def system_stats(_context: ComfyReader, engine: EngineDep) -> dict[str, Any]:
    """A healthy backend's versions and devices, without its command line; a minimal answer
    while no backend is healthy (clients use this route to see that the server is up)."""
    stats = await engine.system_stats() or {}
    system = dict(stats.get("system") or {})
    system.setdefault("os", os.name)
    system.setdefault("python_version", platform.python_version())
    system.setdefault("embedded_python", False)
    system.setdefault("comfyui_version", "unknown")
    system["argv"] = ["main.py"]
    return {"system": system, "devices": stats.get("devices") or []}
