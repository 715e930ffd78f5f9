"""Genway jobs in ComfyUI's JSON shapes: queue items, `/history` entries and the native
jobs API's jobs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from genway.engines.comfyui import messages
from genway.engines.comfyui.job_inputs import extra_data_of, prompt_id_of, workflow_of
from genway.engines.comfyui.workflows import Workflow
from genway.jobs.models import Job
from genway.jobs.states import JobStatus


def output_nodes(workflow: Workflow) -> list[str]:
    """Nodes no other node reads from: the ones ComfyUI runs the prompt for."""
    linked = {
        value[0]
        for node in workflow.values()
        for value in node.get("inputs", {}).values()
        if isinstance(value, list) and value
    }
    return [node_id for node_id in workflow if node_id not in linked]


def queue_item(job: Job, template: Workflow) -> list[Any]:
    """`[number, prompt_id, prompt, extra_data, outputs_to_execute]`."""
    workflow = workflow_of(job, template)
    return [job.id, prompt_id_of(job), workflow, extra_data_of(job), output_nodes(workflow)]


def _ms(moment: datetime | None) -> int:
    return int(moment.timestamp() * 1000) if moment is not None else 0


def _status_messages(job: Job, prompt_id: str) -> list[list[Any]]:
    started = {"prompt_id": prompt_id, "timestamp": _ms(job.started_at)}
    timeline: list[list[Any]] = [
        ["execution_start", started],
        ["execution_cached", {"nodes": [], **started}],
    ]
    if job.status == JobStatus.SUCCEEDED:
        done = {"prompt_id": prompt_id, "timestamp": _ms(job.finished_at)}
        timeline.append(["execution_success", done])
    elif job.status == JobStatus.CANCELLED:
        timeline.append(
            ["execution_interrupted", messages.execution_interrupted(prompt_id)["data"]]
        )
    else:
        timeline.append(["execution_error", messages.execution_error(prompt_id, job.error)["data"]])
    return timeline


def history_entry(job: Job, template: Workflow) -> dict[str, Any]:
    """A finished job as ComfyUI's `/history/{prompt_id}` entry; outputs name Genway's copies
    (what `/view` serves), never a backend's files."""
    prompt_id = prompt_id_of(job)
    outputs: dict[str, Any] = (job.result or {}).get("outputs") or {}
    succeeded = job.status == JobStatus.SUCCEEDED
    return {
        "prompt": queue_item(job, template),
        "outputs": outputs,
        "status": {
            "status_str": "success" if succeeded else "error",
            "completed": succeeded,
            "messages": _status_messages(job, prompt_id),
        },
        "meta": {
            node_id: {
                "node_id": node_id,
                "display_node": node_id,
                "parent_node": None,
                "real_node_id": node_id,
            }
            for node_id in outputs
        },
    }


# ComfyUI's native jobs API (`/api/jobs`, after 0.3.64): its statuses for Genway's.
NATIVE_STATUS = {
    JobStatus.QUEUED: "pending",
    JobStatus.RUNNING: "in_progress",
    JobStatus.SUCCEEDED: "completed",
    JobStatus.FAILED: "failed",
    JobStatus.CANCELLED: "cancelled",
}
_PREVIEWABLE = frozenset({"images", "video", "audio", "3d", "text"})


def _outputs_summary(outputs: dict[str, Any]) -> tuple[int, int, dict[str, Any] | None]:
    """(outputs_count, previewable_outputs_count, preview_output) as ComfyUI counts them: every
    file item, the previewable ones, and the first previewable one (saved outputs first)."""
    count = previewable = 0
    preview: dict[str, Any] | None = None
    fallback: dict[str, Any] | None = None
    for node_id, node in outputs.items():
        if not isinstance(node, dict):
            continue
        for media_type, items in node.items():
            if media_type == "animated" or not isinstance(items, list):
                continue
            for item in (i for i in items if isinstance(i, dict)):
                count += 1
                if media_type not in _PREVIEWABLE:
                    continue
                previewable += 1
                enriched = {**item, "nodeId": node_id, "mediaType": media_type}
                if preview is None and item.get("type") == "output":
                    preview = enriched
                elif fallback is None:
                    fallback = enriched
    return count, previewable, preview or fallback


def workflow_id_of(job: Job) -> str | None:
    """The UI workflow's id a client sent in `extra_data.extra_pnginfo.workflow.id`, if any."""
    pnginfo = extra_data_of(job).get("extra_pnginfo")
    workflow = pnginfo.get("workflow") if isinstance(pnginfo, dict) else None
    value = workflow.get("id") if isinstance(workflow, dict) else None
    return value if isinstance(value, str) else None


def native_job(job: Job, template: Workflow, *, detail: bool = False) -> dict[str, Any]:
    """A job as ComfyUI's `/api/jobs` lists it (with `detail`, as `/api/jobs/{id}` shows it).
    Like ComfyUI (its `prune_dict`), fields without a value are left out rather than null."""
    item = queue_item(job, template)
    extra_data: dict[str, Any] = item[3]
    outputs: dict[str, Any] = (job.result or {}).get("outputs") or {}
    count, previewable, preview = _outputs_summary(outputs)
    ran = job.started_at is not None and JobStatus(job.status).is_terminal
    entry = history_entry(job, template) if ran else None
    error: dict[str, Any] | None = None
    if job.status == JobStatus.FAILED:  # the history's own `execution_error`, as in ComfyUI
        last = entry["status"]["messages"][-1] if entry is not None else None
        error = last[1] if last else messages.execution_error(item[1], job.error)["data"]
    fields: dict[str, Any] = {
        "id": item[1],
        "status": NATIVE_STATUS[JobStatus(job.status)],
        "priority": item[0],
        "create_time": _ms(job.created_at),
        "execution_start_time": _ms(job.started_at) if job.started_at else None,
        "execution_end_time": _ms(job.finished_at) if ran and job.finished_at else None,
        "execution_error": error,
        "outputs_count": count,
        "previewable_outputs_count": previewable,
        "preview_output": preview,
        "workflow_id": workflow_id_of(job),
    }
    job_fields = {key: value for key, value in fields.items() if value is not None}
    if detail:
        if entry is not None:
            job_fields["outputs"] = outputs
            job_fields["execution_status"] = entry["status"]
        job_fields["workflow"] = {"prompt": item[2], "extra_data": extra_data}
    return job_fields
