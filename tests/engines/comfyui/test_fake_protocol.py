"""The fake ComfyUI replays the recorded real session (comfyui-real-session.json) faithfully.

Expected message sequences and bodies below are copied from that transcript (ComfyUI 0.3.64);
the trailing `executing` with `node: null` after an error or interrupt comes from ComfyUI's
main.py, which sends it after every prompt (the recording stopped reading before it).
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from PIL import Image
from websockets.asyncio.client import ClientConnection, connect

from tests.engines.comfyui.conftest import invert_workflow
from tests.fakes.comfyui import FakeComfyUI

DATA_KEYS = {
    "execution_start": {"prompt_id", "timestamp"},
    "execution_cached": {"nodes", "prompt_id", "timestamp"},
    "progress_state": {"prompt_id", "nodes"},
    "executed": {"node", "display_node", "output", "prompt_id"},
    "execution_success": {"prompt_id", "timestamp"},
    "execution_error": {
        "prompt_id", "node_id", "node_type", "executed", "exception_message", "exception_type",
        "traceback", "current_inputs", "current_outputs", "timestamp",
    },
    "execution_interrupted": {"prompt_id", "node_id", "node_type", "executed", "timestamp"},
}  # fmt: skip
NODE_STATE_KEYS = {
    "value", "max", "state", "node_id", "prompt_id", "display_node_id", "parent_node_id",
    "real_node_id",
}  # fmt: skip
OPENING = ["status", "status", "status", "execution_start", "execution_cached"]
CLOSING = ["status", "executing"]

Message = dict[str, Any]
OnMessage = Callable[[Message, httpx.AsyncClient], Awaitable[None]]


async def record(
    fake: FakeComfyUI, workflow: dict[str, Any], on_message: OnMessage | None = None
) -> tuple[str, list[Message]]:
    """Connect a socket, submit, and read that client's messages until the prompt ends."""
    client_id = "9a9f6f54-c72f-49c8-8bbc-0bc9a4ab5de7"
    ws_url = fake.base_url.replace("http", "ws") + f"/ws?clientId={client_id}"
    async with connect(ws_url) as socket, httpx.AsyncClient(base_url=fake.base_url) as http:
        first = json.loads(await socket.recv())
        response = await http.post("/prompt", json={"prompt": workflow, "client_id": client_id})
        assert response.status_code == 200, response.text
        prompt_id = response.json()["prompt_id"]
        messages = [first, *await _until_done(socket, prompt_id, http, on_message)]
    return prompt_id, messages


async def _until_done(
    socket: ClientConnection, prompt_id: str, http: httpx.AsyncClient, on_message: OnMessage | None
) -> list[Message]:
    messages = []
    while True:
        message = json.loads(await asyncio.wait_for(socket.recv(), 5))
        messages.append(message)
        if on_message is not None:
            await on_message(message, http)
        data = message["data"]
        if message["type"] == "executing" and data["node"] is None:
            assert data == {"node": None, "prompt_id": prompt_id}
            return messages


def assert_shapes(messages: list[Message]) -> None:
    assert messages[0]["data"] == {
        "status": {"exec_info": {"queue_remaining": 0}},
        "sid": "9a9f6f54-c72f-49c8-8bbc-0bc9a4ab5de7",
    }
    for message in messages:
        kind, data = message["type"], message["data"]
        if kind in DATA_KEYS:
            assert set(data) == DATA_KEYS[kind], kind
        if kind == "progress_state":
            assert all(set(state) == NODE_STATE_KEYS for state in data["nodes"].values())
        if kind == "executing" and data["node"] is not None:
            assert set(data) == {"node", "display_node", "prompt_id"}


def types(messages: list[Message]) -> list[str]:
    return [message["type"] for message in messages]


async def test_success_scenario(fake: FakeComfyUI):
    await record(fake, invert_workflow("rec"))  # warms the cache, as the recorded server was
    prompt_id, messages = await record(fake, invert_workflow("rec"))

    assert types(messages) == [
        *OPENING, "progress_state", "executing", "executed", "progress_state",
        "execution_success", *CLOSING,
    ]  # fmt: skip
    assert_shapes(messages)
    assert [m["data"]["status"]["exec_info"]["queue_remaining"] for m in messages[:3]] == [0, 1, 1]
    assert messages[4]["data"]["nodes"] == ["1", "2"]
    executed = messages[7]["data"]
    assert executed["output"] == {
        "images": [{"filename": "rec_00002_.png", "subfolder": "", "type": "output"}]
    }

    async with httpx.AsyncClient(base_url=fake.base_url) as http:
        history = (await http.get(f"/history/{prompt_id}")).json()[prompt_id]
        view = await http.get("/view?filename=rec_00002_.png&subfolder=&type=output")
        latest = (await http.get("/history?max_items=1")).json()
    assert set(history) == {"prompt", "outputs", "status", "meta"}
    number, recorded_id, prompt, extra_data, outputs = history["prompt"]
    assert (recorded_id, extra_data, outputs) == (
        prompt_id,
        {"client_id": messages[0]["data"]["sid"]},
        ["3"],
    )
    assert prompt == invert_workflow("rec") and number == 1
    assert history["outputs"] == {"3": executed["output"]}
    assert history["status"]["status_str"] == "success" and history["status"]["completed"]
    assert [event for event, _ in history["status"]["messages"]] == [
        "execution_start", "execution_cached", "execution_success",
    ]  # fmt: skip
    assert history["meta"] == {
        "3": {"node_id": "3", "display_node": "3", "parent_node": None, "real_node_id": "3"}
    }
    assert view.status_code == 200 and view.headers["content-type"] == "image/png"
    with Image.open(io.BytesIO(view.content)) as image:
        assert image.size == (64, 48) and image.getpixel((0, 0)) == (255, 255, 255)
    assert list(latest) == [prompt_id]


NOT_AN_INT = "invalid literal for int() with base 10: 'wide'"
REJECTIONS = [
    (
        {"1": {"class_type": "NoSuchNode", "inputs": {}}},
        {
            "error": {
                "type": "invalid_prompt",
                "message": "Cannot execute because node NoSuchNode does not exist.",
                "details": "Node ID '#1'",
                "extra_info": {},
            },
            "node_errors": {},
        },
    ),
    (
        {
            "1": {
                "class_type": "EmptyImage",
                "inputs": {"width": "wide", "height": 48, "batch_size": 1, "color": 0},
            },
            "3": {
                "class_type": "SaveImage",
                "inputs": {"images": ["1", 0], "filename_prefix": "rec"},
            },
        },
        {
            "error": {
                "type": "prompt_outputs_failed_validation",
                "message": "Prompt outputs failed validation",
                "details": "",
                "extra_info": {},
            },
            "node_errors": {
                "1": {
                    "errors": [
                        {
                            "type": "invalid_input_type",
                            "message": "Failed to convert an input value to a INT value",
                            "details": f"width, wide, {NOT_AN_INT}",
                            "extra_info": {
                                "input_name": "width",
                                "input_config": [
                                    "INT",
                                    {"default": 512, "min": 1, "max": 16384, "step": 1},
                                ],
                                "received_value": "wide",
                                "exception_message": NOT_AN_INT,
                            },
                        }
                    ],
                    "dependent_outputs": ["3"],
                    "class_type": "EmptyImage",
                }
            },
        },
    ),
    (
        {
            "1": {
                "class_type": "EmptyImage",
                "inputs": {"width": 64, "height": 48, "batch_size": 1, "color": 0},
            }
        },
        {
            "error": {
                "type": "prompt_no_outputs",
                "message": "Prompt has no outputs",
                "details": "",
                "extra_info": {},
            },
            "node_errors": {},
        },
    ),
    (
        {
            "1": {"class_type": "LoadImage", "inputs": {"image": "missing.png"}},
            "3": {
                "class_type": "SaveImage",
                "inputs": {"images": ["1", 0], "filename_prefix": "rec"},
            },
        },
        {
            "error": {
                "type": "prompt_outputs_failed_validation",
                "message": "Prompt outputs failed validation",
                "details": "",
                "extra_info": {},
            },
            "node_errors": {
                "1": {
                    "errors": [
                        {
                            "type": "custom_validation_failed",
                            "message": "Custom validation failed for node",
                            "details": "image - Invalid image file: missing.png",
                            "extra_info": {"input_name": "image"},
                        }
                    ],
                    "dependent_outputs": ["3"],
                    "class_type": "LoadImage",
                }
            },
        },
    ),
]


@pytest.mark.parametrize(
    ("workflow", "expected"), REJECTIONS, ids=["unknown", "type", "no-output", "file"]
)
async def test_submit_rejections_match_the_recording(fake: FakeComfyUI, workflow, expected):
    async with httpx.AsyncClient(base_url=fake.base_url) as http:
        response = await http.post("/prompt", json={"prompt": workflow, "client_id": "c"})
        queue = (await http.get("/queue")).json()
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert response.json() == expected
    assert queue == {"queue_running": [], "queue_pending": []}


async def test_uploaded_input_scenario(fake: FakeComfyUI):
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (10, 20, 30)).save(buffer, format="PNG")
    async with httpx.AsyncClient(base_url=fake.base_url) as http:
        upload = await http.post("/upload/image", files={"image": ("up.png", buffer.getvalue())})
    assert upload.json() == {"name": "up.png", "subfolder": "", "type": "input"}
    workflow = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "up.png"}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "rec"}},
    }

    _prompt_id, messages = await record(fake, workflow)

    node_steps = ["progress_state", "executing", "progress_state"]
    assert types(messages) == [
        *OPENING, *node_steps, *node_steps,
        "progress_state", "executing", "executed", "progress_state",
        "execution_success", *CLOSING,
    ]  # fmt: skip
    assert_shapes(messages)
    assert list(messages[-4]["data"]["nodes"]) == ["1", "2", "3"]


async def test_runtime_error_scenario(fake: FakeComfyUI):
    workflow = invert_workflow("../../escape")
    del workflow["2"]
    workflow["3"]["inputs"]["images"] = ["1", 0]

    prompt_id, messages = await record(fake, workflow)

    assert types(messages) == [
        *OPENING, "progress_state", "executing", "progress_state",
        "progress_state", "executing", "execution_error", *CLOSING,
    ]  # fmt: skip
    assert_shapes(messages)
    error = messages[-3]["data"]
    assert (error["node_id"], error["node_type"], error["executed"]) == ("3", "SaveImage", ["1"])
    assert error["exception_type"] == "Exception"
    assert error["exception_message"].startswith(
        "**** ERROR: Saving image outside the output folder is not allowed."
    )
    async with httpx.AsyncClient(base_url=fake.base_url) as http:
        status = (await http.get(f"/history/{prompt_id}")).json()[prompt_id]["status"]
    assert (status["status_str"], status["completed"]) == ("error", False)
    assert status["messages"][-1][0] == "execution_error"


async def test_interrupted_scenario(fake: FakeComfyUI):
    fake.execution_time = 1.2
    blur = {"blur_radius": 31, "sigma": 5.0}
    workflow = invert_workflow("rec", width=16, height=16)
    workflow["1"]["inputs"]["batch_size"] = 2
    workflow["2"] = {"class_type": "ImageBlur", "inputs": {"image": ["1", 0], **blur}}
    workflow["4"] = {"class_type": "ImageBlur", "inputs": {"image": ["2", 0], **blur}}
    workflow["3"]["inputs"]["images"] = ["4", 0]

    async def interrupt_during_node_2(message: Message, http: httpx.AsyncClient) -> None:
        if message["type"] == "executing" and message["data"]["node"] == "2":
            response = await http.post("/interrupt", json={})
            assert response.status_code == 200 and response.content == b""

    _prompt_id, messages = await record(fake, workflow, interrupt_during_node_2)

    assert types(messages) == [
        *OPENING, "progress_state", "executing", "progress_state",
        "progress_state", "executing",
        "progress_state", "progress_state", "executing", "execution_interrupted", *CLOSING,
    ]  # fmt: skip
    assert_shapes(messages)
    interrupted = messages[-3]["data"]
    assert (interrupted["node_id"], interrupted["node_type"]) == ("4", "ImageBlur")
    assert interrupted["executed"] == ["1", "2"]


async def test_queue_endpoints_match_the_recording(fake: FakeComfyUI):
    async with httpx.AsyncClient(base_url=fake.base_url) as http:
        cleared = await http.post("/queue", json={"clear": True})
        queue_info = await http.get("/prompt")
        stats = await http.get("/system_stats")
        info = await http.get("/object_info/EmptyImage")
        prefixed = await http.get("/api/queue")
    assert cleared.status_code == 200 and cleared.content == b""
    assert queue_info.json() == {"exec_info": {"queue_remaining": 0}}
    assert set(stats.json()) == {"system", "devices"}
    assert info.json()["EmptyImage"]["input_order"] == {
        "required": ["width", "height", "batch_size", "color"]
    }
    assert info.json()["EmptyImage"]["output_node"] is False
    assert prefixed.json() == {"queue_running": [], "queue_pending": []}


async def test_reconnecting_client_hears_the_current_node(fake: FakeComfyUI):
    fake.execution_time = 0.6
    client_id = "reconnecting"
    ws_url = fake.base_url.replace("http", "ws") + f"/ws?clientId={client_id}"
    async with httpx.AsyncClient(base_url=fake.base_url) as http:
        await http.post("/prompt", json={"prompt": invert_workflow(), "client_id": client_id})
        await asyncio.sleep(0.1)
        async with connect(ws_url) as socket:
            status = json.loads(await socket.recv())
            current = json.loads(await socket.recv())
    assert status["data"]["sid"] == client_id
    assert current["type"] == "executing" and set(current["data"]) == {"node"}
