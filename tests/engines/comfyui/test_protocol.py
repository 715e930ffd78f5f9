"""Parsing ComfyUI's WebSocket frames and history entries into typed values."""

from __future__ import annotations

import json
import struct

from genway.engines.comfyui.protocol import (
    ExecutionEnded,
    HistoryEntry,
    NodeExecuting,
    PreviewImage,
    Progress,
    ProgressText,
    QueueState,
    QueueStatus,
    parse_binary_frame,
    parse_text_frame,
)


def frame(kind: str, data: object) -> str:
    return json.dumps({"type": kind, "data": data})


def test_text_frames():
    assert parse_text_frame(frame("status", {"status": {"exec_info": {"queue_remaining": 2}}})) == (
        QueueStatus(2)
    )
    assert parse_text_frame(frame("executing", {"node": None, "prompt_id": "p"})) == (
        ExecutionEnded("p")
    )
    assert parse_text_frame(frame("executing", {"node": "5"})) == NodeExecuting(None, "5")
    progress = parse_text_frame(
        frame("progress", {"value": 3, "max": 12, "prompt_id": "p", "node": "3"})
    )
    assert progress == Progress("p", "3", 3.0, 12.0) and progress.fraction == 0.25


def test_unknown_and_malformed_frames_are_ignored():
    assert parse_text_frame(frame("crystools.monitor", {"cpu_utilization": 3})) is None
    assert parse_text_frame(frame("progress", {"value": 1})) is None
    assert parse_text_frame("not json") is None
    assert parse_text_frame(frame("executing", {"node": None})) is None
    assert parse_binary_frame(b"\x00\x00") is None
    assert parse_binary_frame(struct.pack(">II", 99, 0)) is None


def test_binary_frames():
    jpeg = parse_binary_frame(struct.pack(">II", 1, 1) + b"JPEGDATA")
    assert jpeg == PreviewImage("image/jpeg", b"JPEGDATA")

    meta = json.dumps({"node_id": "3", "prompt_id": "p", "image_type": "image/png"}).encode()
    with_meta = parse_binary_frame(struct.pack(">II", 4, len(meta)) + meta + b"PNGDATA")
    assert with_meta == PreviewImage("image/png", b"PNGDATA", "p", "3")

    text = parse_binary_frame(struct.pack(">II", 3, 2) + b"12" + "步骤 1".encode())
    assert text == ProgressText("12", "步骤 1")


def test_history_entry_and_queue():
    entry = HistoryEntry.from_json(
        "p",
        {
            "outputs": {
                "9": {"images": [{"filename": "a.png", "subfolder": "s", "type": "output"}]},
                "10": {"text": ["hello"]},
            },
            "status": {
                "status_str": "error",
                "completed": False,
                "messages": [["execution_error", {"node_id": "9"}]],
            },
        },
    )
    assert not entry.succeeded
    assert [image.filename for image in entry.images] == ["a.png"]
    assert entry.outputs["10"].raw == {"text": ["hello"]}
    assert entry.message("execution_error") == {"node_id": "9"}
    assert HistoryEntry.from_json("old", {"outputs": {}}).succeeded  # before `status` existed

    queue = QueueState.from_json(
        {"queue_running": [[4, "b", {}, {}, []]], "queue_pending": [[7, "d"], [5, "c"]]}
    )
    assert [item.prompt_id for item in queue.pending] == ["c", "d"]
    assert queue.length == 3 and queue.contains("b") and not queue.contains("z")
