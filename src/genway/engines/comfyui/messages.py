"""ComfyUI's WebSocket messages as `{"type", "data"}` dicts: rebuilt from parsed backend events
(to relay them to Genway's own ComfyUI clients) and made up for what Genway decides itself
(the end of a prompt, the queue count)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from genway.engines.comfyui.protocol import (
    ExecutionStarted,
    NodeExecuting,
    NodesCached,
    Progress,
    ProgressState,
    ServerEvent,
)

Message = dict[str, Any]


def timestamp_ms() -> int:
    return int(time.time() * 1000)


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def message(kind: str, data: Mapping[str, Any]) -> Message:
    return {"type": kind, "data": dict(data)}


def relayable(event: ServerEvent, prompt_id: str) -> Message | None:
    """The wire message for a backend event worth relaying; None for the rest (previews, the
    backend's own queue status, and the end messages Genway sends itself)."""
    if isinstance(event, ExecutionStarted):
        return message("execution_start", {"prompt_id": prompt_id, "timestamp": timestamp_ms()})
    if isinstance(event, NodesCached):
        data = {"nodes": list(event.nodes), "prompt_id": prompt_id, "timestamp": timestamp_ms()}
        return message("execution_cached", data)
    if isinstance(event, NodeExecuting):
        data = {"node": event.node, "display_node": event.node, "prompt_id": prompt_id}
        return message("executing", data)
    if isinstance(event, Progress):
        data = {"value": _number(event.value), "max": _number(event.max), "prompt_id": prompt_id}
        return message("progress", {**data, "node": event.node})
    if isinstance(event, ProgressState):
        nodes = {
            node_id: {
                "value": _number(node.value),
                "max": _number(node.max),
                "state": node.state,
                "node_id": node_id,
                "prompt_id": prompt_id,
                "display_node_id": node_id,
                "parent_node_id": None,
                "real_node_id": node_id,
            }
            for node_id, node in event.nodes.items()
        }
        return message("progress_state", {"prompt_id": prompt_id, "nodes": nodes})
    return None


def executed(prompt_id: str, node: str, output: Mapping[str, Any]) -> Message:
    data = {"node": node, "display_node": node, "output": dict(output), "prompt_id": prompt_id}
    return message("executed", data)


def status(queue_remaining: int, sid: str | None = None) -> Message:
    data: dict[str, Any] = {"status": {"exec_info": {"queue_remaining": queue_remaining}}}
    if sid is not None:
        data["sid"] = sid
    return message("status", data)


def execution_success(prompt_id: str) -> Message:
    return message("execution_success", {"prompt_id": prompt_id, "timestamp": timestamp_ms()})


def execution_error(prompt_id: str, error: Mapping[str, Any] | None) -> Message:
    """ComfyUI's `execution_error` for a failed job: the failing node when it is known."""
    details = (error or {}).get("details")
    node: Mapping[str, Any] = details if isinstance(details, Mapping) else {}
    if (error or {}).get("code") == "node_errors" and node:
        node_id, entry = next(iter(node.items()))
        node = {"node_id": node_id, "node_type": (entry or {}).get("class_type", "")}
    return message(
        "execution_error",
        {
            "prompt_id": prompt_id,
            "node_id": str(node.get("node_id", "")),
            "node_type": str(node.get("node_type", "")),
            "executed": [],
            "exception_message": str((error or {}).get("message", "The job failed")),
            "exception_type": str(node.get("exception_type") or (error or {}).get("code", "")),
            "traceback": [],
            "current_inputs": {},
            "current_outputs": [],
            "timestamp": timestamp_ms(),
        },
    )


def execution_interrupted(prompt_id: str) -> Message:
    data = {"prompt_id": prompt_id, "node_id": "", "node_type": "", "executed": []}
    return message("execution_interrupted", {**data, "timestamp": timestamp_ms()})


def execution_finished(prompt_id: str) -> Message:
    """`executing` with `node: null`: the prompt is over and its history can be read."""
    return message("executing", {"node": None, "prompt_id": prompt_id})
