"""Typed shapes of ComfyUI's wire protocol: WebSocket events, history entries and the queue.

Parsers take decoded JSON (or raw binary frames) and return frozen dataclasses; a message this
module does not know, or one missing a field it needs, parses to None and is ignored, because
ComfyUI and its custom nodes add message types freely (`crystools.monitor`, `feature_flags`...).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

PREVIEW_IMAGE = 1
TEXT = 3
PREVIEW_IMAGE_WITH_METADATA = 4
PREVIEW_FORMATS = {1: "image/jpeg", 2: "image/png"}


@dataclass(frozen=True)
class ImageRef:
    """A file on a ComfyUI server, as `/view` takes it."""

    filename: str
    subfolder: str = ""
    type: str = "output"

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ImageRef:
        return cls(
            str(data["filename"]), str(data.get("subfolder", "")), str(data.get("type", "output"))
        )


@dataclass(frozen=True)
class NodeOutput:
    """What one output node produced: its images, and the raw UI output for anything else."""

    images: tuple[ImageRef, ...]
    raw: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> NodeOutput:
        images = data.get("images") or []
        return cls(tuple(ImageRef.from_json(image) for image in images), dict(data))


@dataclass(frozen=True)
class HistoryEntry:
    """One finished prompt from `/history/{prompt_id}`."""

    prompt_id: str
    status_str: str | None
    completed: bool
    messages: tuple[tuple[str, Mapping[str, Any]], ...]
    outputs: Mapping[str, NodeOutput]

    @classmethod
    def from_json(cls, prompt_id: str, data: Mapping[str, Any]) -> HistoryEntry:
        status = data.get("status") or {}
        messages = tuple((str(m[0]), m[1]) for m in status.get("messages") or [] if len(m) == 2)
        outputs = {str(k): NodeOutput.from_json(v) for k, v in (data.get("outputs") or {}).items()}
        # Servers older than the `status` field only kept successful runs' outputs.
        completed = bool(status.get("completed", True))
        return cls(prompt_id, status.get("status_str"), completed, messages, outputs)

    @property
    def succeeded(self) -> bool:
        return self.status_str != "error" and self.completed

    @property
    def images(self) -> list[ImageRef]:
        """Every image of every output node, in node order."""
        return [image for output in self.outputs.values() for image in output.images]

    def message(self, event: str) -> Mapping[str, Any] | None:
        """The data of the last status message of this type, if any."""
        found = [data for name, data in self.messages if name == event]
        return found[-1] if found else None


@dataclass(frozen=True)
class QueuedPrompt:
    number: float
    prompt_id: str


@dataclass(frozen=True)
class QueueState:
    """`GET /queue`: the running prompt(s) and those waiting."""

    running: tuple[QueuedPrompt, ...]
    pending: tuple[QueuedPrompt, ...]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> QueueState:
        def items(key: str) -> tuple[QueuedPrompt, ...]:
            rows = sorted(data.get(key) or [], key=lambda row: float(row[0]))
            return tuple(QueuedPrompt(float(row[0]), str(row[1])) for row in rows)

        return cls(items("queue_running"), items("queue_pending"))

    @property
    def length(self) -> int:
        return len(self.running) + len(self.pending)

    def contains(self, prompt_id: str) -> bool:
        return any(item.prompt_id == prompt_id for item in (*self.running, *self.pending))


@dataclass(frozen=True)
class QueueStatus:
    """`status`: how many prompts the server has left (all clients')."""

    queue_remaining: int


@dataclass(frozen=True)
class ExecutionStarted:
    prompt_id: str


@dataclass(frozen=True)
class NodesCached:
    prompt_id: str
    nodes: tuple[str, ...]


@dataclass(frozen=True)
class NodeExecuting:
    """A node started. `prompt_id` is None in the frame sent to a reconnecting client."""

    prompt_id: str | None
    node: str


@dataclass(frozen=True)
class Progress:
    """A step inside a node (a sampler's steps)."""

    prompt_id: str | None
    node: str | None
    value: float
    max: float

    @property
    def fraction(self) -> float:
        return self.value / self.max if self.max > 0 else 0.0


@dataclass(frozen=True)
class NodeProgress:
    value: float
    max: float
    state: str


@dataclass(frozen=True)
class ProgressState:
    """`progress_state`: every started node of the prompt with its progress and state."""

    prompt_id: str
    nodes: Mapping[str, NodeProgress]


@dataclass(frozen=True)
class NodeExecuted:
    prompt_id: str
    node: str
    output: NodeOutput


@dataclass(frozen=True)
class ExecutionSucceeded:
    prompt_id: str


@dataclass(frozen=True)
class PreviewImage:
    """A binary preview frame; only the metadata form (type 4) says whose it is."""

    media_type: str
    data: bytes
    prompt_id: str | None = None
    node: str | None = None


@dataclass(frozen=True)
class ProgressText:
    node: str
    text: str
    prompt_id: str | None = None


@dataclass(frozen=True)
class ExecutionEnded:
    """`executing` with `node: null`: the prompt is over and its history is written."""

    prompt_id: str


@dataclass(frozen=True)
class ExecutionError:
    prompt_id: str
    node_id: str
    node_type: str
    exception_type: str
    exception_message: str
    traceback: tuple[str, ...]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ExecutionError:
        return cls(
            str(data["prompt_id"]),
            str(data.get("node_id", "")),
            str(data.get("node_type", "")),
            str(data.get("exception_type", "")),
            str(data.get("exception_message", "")),
            tuple(str(line) for line in data.get("traceback") or []),
        )


@dataclass(frozen=True)
class ExecutionInterrupted:
    prompt_id: str
    node_id: str
    node_type: str

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ExecutionInterrupted:
        return cls(
            str(data["prompt_id"]), str(data.get("node_id", "")), str(data.get("node_type", ""))
        )


ServerEvent = (
    QueueStatus
    | ExecutionStarted
    | NodesCached
    | NodeExecuting
    | Progress
    | ProgressState
    | NodeExecuted
    | ExecutionSucceeded
    | PreviewImage
    | ProgressText
    | ExecutionEnded
    | ExecutionError
    | ExecutionInterrupted
)


def parse_text_frame(text: str) -> ServerEvent | None:
    """A JSON frame `{"type", "data"}` as an event, or None when unknown or malformed."""
    try:
        message = json.loads(text)
        return _parse_message(str(message["type"]), message.get("data") or {})
    except (ValueError, KeyError, TypeError, IndexError):
        return None


def _parse_message(kind: str, data: Mapping[str, Any]) -> ServerEvent | None:
    prompt_id = data.get("prompt_id")
    if kind == "status":
        return QueueStatus(int(data["status"]["exec_info"]["queue_remaining"]))
    if kind == "execution_start":
        return ExecutionStarted(str(prompt_id))
    if kind == "execution_cached":
        return NodesCached(str(prompt_id), tuple(str(node) for node in data.get("nodes", [])))
    if kind == "executing":
        node = data.get("node")
        if node is None:
            return ExecutionEnded(str(prompt_id)) if prompt_id is not None else None
        return NodeExecuting(None if prompt_id is None else str(prompt_id), str(node))
    if kind == "progress":
        node = data.get("node")
        return Progress(
            None if prompt_id is None else str(prompt_id),
            None if node is None else str(node),
            float(data["value"]),
            float(data["max"]),
        )
    if kind == "progress_state":
        nodes = {
            str(key): NodeProgress(float(entry["value"]), float(entry["max"]), str(entry["state"]))
            for key, entry in data["nodes"].items()
        }
        return ProgressState(str(prompt_id), nodes)
    if kind == "executed":
        output = NodeOutput.from_json(data.get("output") or {})
        return NodeExecuted(str(prompt_id), str(data["node"]), output)
    if kind == "execution_success":
        return ExecutionSucceeded(str(prompt_id))
    if kind == "execution_error":
        return ExecutionError.from_json(data)
    if kind == "execution_interrupted":
        return ExecutionInterrupted.from_json(data)
    return None


def parse_binary_frame(frame: bytes) -> ServerEvent | None:
    """A binary frame (big-endian event type first) as an event, or None when unknown."""
    if len(frame) < 8:
        return None
    (event,) = struct.unpack(">I", frame[:4])
    if event == PREVIEW_IMAGE:
        (image_format,) = struct.unpack(">I", frame[4:8])
        return PreviewImage(
            PREVIEW_FORMATS.get(image_format, "application/octet-stream"), frame[8:]
        )
    if event == PREVIEW_IMAGE_WITH_METADATA:
        (length,) = struct.unpack(">I", frame[4:8])
        try:
            meta = json.loads(frame[8 : 8 + length])
        except ValueError:
            return None
        return PreviewImage(
            str(meta.get("image_type", "image/png")),
            frame[8 + length :],
            meta.get("prompt_id"),
            meta.get("node_id"),
        )
    if event == TEXT:
        (length,) = struct.unpack(">I", frame[4:8])
        node = frame[8 : 8 + length].decode("utf-8", "replace")
        return ProgressText(node, frame[8 + length :].decode("utf-8", "replace"))
    return None
