"""Genway jobs in ComfyUI's JSON shapes: queue items and `/history` entries."""

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
