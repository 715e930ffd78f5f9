"""Genway's ComfyUI-compatible API driven the way stock ComfyUI clients drive ComfyUI: submit
`/prompt`, follow `/ws`, read `/history`, fetch `/view`; with Basic auth, `?token=` or headers."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import pytest
import websockets

from tests.engines.comfyui.conftest import invert_workflow
from tests.engines.comfyui.helpers import (
    basic,
    pixel,
    png,
    running_on,
    wait_healthy,
    wait_history,
    wait_until,
)
from tests.fakes.comfyui import FakeComfyUI
from tests.support import Tenant


def ws_url(api: httpx.AsyncClient, query: str) -> str:
    return str(api.base_url).replace("http://", "ws://") + f"/ws?{query}"


async def messages_until_done(socket: Any, prompt_id: str) -> list[dict[str, Any]]:
    """What a stock client reads: every message until `executing` with `node: null` for ours."""
    received = []
    async with asyncio.timeout(20):
        while True:
            message = json.loads(await socket.recv())
            received.append(message)
            data = message["data"]
            if message["type"] == "executing" and data["node"] is None:
                if data["prompt_id"] == prompt_id:
                    return received


async def test_stock_client_flow_with_basic_auth(
    api: httpx.AsyncClient, tenant: Tenant, backends: list[FakeComfyUI]
):
    await wait_healthy(api, 2)
    client_id = str(uuid.uuid4())
    auth = basic(tenant.key)
    async with websockets.connect(
        ws_url(api, f"clientId={client_id}"), additional_headers=auth
    ) as socket:
        hello = json.loads(await socket.recv())
        assert hello == {
            "type": "status",
            "data": {"status": {"exec_info": {"queue_remaining": 0}}, "sid": client_id},
        }
        body = {"prompt": invert_workflow("stock"), "client_id": client_id}
        queued = await api.post("/prompt", json=body, headers=auth)
        assert queued.status_code == 200, queued.text
        answer = queued.json()
        assert set(answer) == {"prompt_id", "number", "node_errors"}
        prompt_id = answer["prompt_id"]
        received = await messages_until_done(socket, prompt_id)

    kinds = [m["type"] for m in received]
    assert {"execution_start", "executing", "executed"} <= set(kinds)
    assert kinds[-3:] == ["execution_success", "status", "executing"]
    assert received[-2]["data"]["status"]["exec_info"]["queue_remaining"] == 0
    assert all(m["data"].get("prompt_id") in (None, prompt_id) for m in received)
    executed = next(m for m in received if m["type"] == "executed")["data"]
    image = executed["output"]["images"][0]
    assert image["filename"].startswith("stock_") and image["type"] == "output"

    history = (await api.get(f"/history/{prompt_id}", headers=auth)).json()
    entry = history[prompt_id]
    assert entry["status"]["status_str"] == "success" and entry["status"]["completed"] is True
    assert entry["outputs"]["3"]["images"] == [image]
    assert (
        entry["prompt"][1] == prompt_id and entry["prompt"][2]["2"]["class_type"] == "ImageInvert"
    )
    assert entry["prompt"][3] == {"client_id": client_id}
    view = await api.get("/view", params=image, headers=auth)
    assert view.status_code == 200 and view.headers["content-type"] == "image/png"
    assert pixel(view.content) == (255, 255, 255)
    # The backend's own prompt id was never shown: Genway's id went upstream.
    assert any(body.get("prompt_id") == prompt_id for b in backends for body in b.received)
    # ...and the backend forgets it once Genway has the outputs.
    await wait_until(
        lambda: not any(b.history.get(prompt_id) for b in backends), "the backend to forget it"
    )


INVALID_PROMPTS: list[tuple[dict[str, Any], str]] = [
    ({}, "no_prompt"),
    ({"prompt": {"nodes": [], "links": []}}, "invalid_prompt"),
    ({"prompt": {"1": {"class_type": "NoSuchNode", "inputs": {}}}}, "invalid_prompt"),
    ({"prompt": {"1": {"class_type": "EmptyImage", "inputs": {"width": 8}}}}, "prompt_no_outputs"),
    (
        {
            "prompt": {
                "1": {"class_type": "LoadImage", "inputs": {"image": "missing.png"}},
                "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0]}},
            }
        },
        "prompt_outputs_failed_validation",
    ),
]


async def test_bad_requests_get_comfyuis_400_or_a_clear_401(
    api: httpx.AsyncClient, tenant: Tenant, backends: list[FakeComfyUI]
):
    await wait_healthy(api, 2)
    for body, kind in INVALID_PROMPTS:
        response = await api.post("/prompt", json=body, headers=tenant.headers)
        assert response.status_code == 400, (body, response.text)
        answer = response.json()
        assert answer["error"]["type"] == kind and "node_errors" in answer
    missing_file = answer["node_errors"]["1"]["errors"][0]
    assert missing_file["details"] == "image - Invalid image file: missing.png"
    unknown = await api.post("/prompt", json=INVALID_PROMPTS[2][0], headers=tenant.headers)
    assert unknown.json()["error"]["message"] == (
        "Cannot execute because node NoSuchNode does not exist."
    )
    not_json = await api.post("/prompt", content=b"{nope", headers=tenant.headers)
    assert not_json.status_code == 400 and not_json.json()["error"]["type"] == "invalid_prompt"
    # A well-formed prompt id whose job part no database key holds is simply unknown (it was a
    # 500 on PostgreSQL, whose INTEGER keys stop at 2**31 - 1).
    beyond = str(uuid.UUID(hex="0" * 20 + "ffffffffffff"))
    unknown_history = await api.get(f"/history/{beyond}", headers=tenant.headers)
    assert unknown_history.status_code == 200 and unknown_history.json() == {}
    assert all(b.prompt_count == 0 for b in backends)  # nothing reached a backend

    missing = await api.get("/queue")
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Basic")
    wrong = await api.get("/queue", headers=basic("gw_wrong"))
    assert wrong.status_code == 401
    as_user = await api.get("/queue", headers=basic("", user=tenant.key))
    assert as_user.status_code == 200
    async with websockets.connect(ws_url(api, "clientId=x&token=gw_wrong")) as socket:
        with pytest.raises(websockets.ConnectionClosed):
            await socket.recv()
    assert socket.close_code == 4401


async def test_clients_that_wait_for_queue_remaining_zero_or_poll_history(
    api: httpx.AsyncClient, tenant: Tenant, backends: list[FakeComfyUI]
):
    await wait_healthy(api, 2)
    for backend in backends:
        backend.execution_time = 0.3
    client_id = uuid.uuid4().hex
    body = {"prompt": invert_workflow("late"), "client_id": client_id}
    prompt_id = (await api.post("/prompt", json=body, headers=tenant.headers)).json()["prompt_id"]
    query = f"clientId={client_id}&token={tenant.key}"
    async with websockets.connect(ws_url(api, query)) as socket:
        first = json.loads(await socket.recv())
        assert first["data"]["status"]["exec_info"]["queue_remaining"] == 1
        async with asyncio.timeout(20):
            while True:
                message = json.loads(await socket.recv())
                if message["type"] == "status":
                    if message["data"]["status"]["exec_info"]["queue_remaining"] == 0:
                        break
        # At zero the history is already there.
        entry = (await api.get(f"/history/{prompt_id}", params={"token": tenant.key})).json()
    image = entry[prompt_id]["outputs"]["3"]["images"][0]
    view = await api.get("/view", params={"filename": image["filename"], "token": tenant.key})
    assert view.status_code == 200
    for backend in backends:
        backend.execution_time = 0.05

    # A client that never opens the WebSocket: polls /api/history/{id}, /view without subfolder.
    headers = {"X-API-Key": tenant.key}
    queued = await api.post(
        "/api/prompt", json={"prompt": invert_workflow("poll")}, headers=headers
    )
    prompt_id = queued.json()["prompt_id"]
    entry = {prompt_id: await wait_history(api, prompt_id, headers, prefix="/api")}
    image = entry[prompt_id]["outputs"]["3"]["images"][0]
    view = await api.get("/api/view", params={"filename": image["filename"]}, headers=headers)
    assert view.status_code == 200 and view.headers["content-type"] == "image/png"
    everything = (await api.get("/api/history", headers=headers)).json()
    assert len(everything) == 2 and list(everything)[-1] == prompt_id
    assert (await api.get("/api/prompt", headers=headers)).json() == {
        "exec_info": {"queue_remaining": 0}
    }


async def test_uploaded_image_is_loaded_by_a_workflow(
    api: httpx.AsyncClient, tenant: Tenant, backends: list[FakeComfyUI]
):
    await wait_healthy(api, 2)
    files = {"image": ("in put.png", png((10, 20, 30)), "image/png")}
    uploaded = await api.post(
        "/upload/image", files=files, data={"overwrite": "true"}, headers=basic(tenant.key)
    )
    assert uploaded.status_code == 200, uploaded.text
    assert uploaded.json() == {"name": "in put.png", "subfolder": "", "type": "input"}
    workflow = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "in put.png"}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "up"}},
    }
    prompt_id = (
        await api.post("/prompt", json={"prompt": workflow}, headers=tenant.headers)
    ).json()["prompt_id"]
    entry = {prompt_id: await wait_history(api, prompt_id, tenant.headers)}
    image = entry[prompt_id]["outputs"]["3"]["images"][0]
    view = await api.get("/view", params=image, headers=tenant.headers)
    assert pixel(view.content) == (245, 235, 225)
    sent = next(body for b in backends for body in b.received)["prompt"]
    assert sent["1"]["inputs"]["image"].startswith("genway/")  # staged under its content hash
    original = await api.get(
        "/view", params={"filename": "in put.png", "type": "input"}, headers=tenant.headers
    )
    assert original.status_code == 200 and pixel(original.content) == (10, 20, 30)
    same_name = {"image": ("in put.png", png((1, 2, 3)), "image/png")}
    renamed = await api.post("/upload/image", files=same_name, headers=tenant.headers)
    assert renamed.json()["name"] == "in put (1).png"  # ComfyUI's answer without overwrite


async def test_interrupt_stops_the_running_prompt(
    api: httpx.AsyncClient, tenant: Tenant, backends: list[FakeComfyUI]
):
    await wait_healthy(api, 2)
    for backend in backends:
        backend.execution_time, backend.steps = 30.0, 300
    prompt_id = (
        await api.post("/prompt", json={"prompt": invert_workflow()}, headers=tenant.headers)
    ).json()["prompt_id"]
    await wait_until(lambda: running_on(backends) is not None, "the prompt to start upstream")
    queue = (await api.get("/queue", headers=tenant.headers)).json()
    assert [item[1] for item in queue["queue_running"]] == [prompt_id]
    stopped = await api.post("/interrupt", json={}, headers=tenant.headers)
    assert stopped.status_code == 200 and stopped.content == b""
    entry = {prompt_id: await wait_history(api, prompt_id, tenant.headers)}
    status = entry[prompt_id]["status"]
    assert status["status_str"] == "error" and status["completed"] is False
    assert status["messages"][-1][0] == "execution_interrupted"


async def test_another_organizations_prompts_and_files_are_invisible(
    api: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, backends: list[FakeComfyUI]
):
    await wait_healthy(api, 2)
    await api.post(
        "/upload/image", files={"image": ("a.png", png(), "image/png")}, headers=tenant.headers
    )
    theirs = other_tenant.headers
    async with websockets.connect(ws_url(api, "clientId=spy"), additional_headers=theirs) as spy:
        assert json.loads(await spy.recv())["type"] == "status"
        body = {"prompt": invert_workflow("secret")}
        prompt_id = (await api.post("/prompt", json=body, headers=tenant.headers)).json()[
            "prompt_id"
        ]
        entry = {prompt_id: await wait_history(api, prompt_id, tenant.headers)}
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.4):
                leaked = await spy.recv()
                raise AssertionError(f"another organization's socket heard {leaked}")
    image = entry[prompt_id]["outputs"]["3"]["images"][0]

    assert (await api.get(f"/history/{prompt_id}", headers=theirs)).json() == {}
    assert (await api.get("/history", headers=theirs)).json() == {}
    assert (await api.get("/queue", headers=theirs)).json() == {
        "queue_running": [],
        "queue_pending": [],
    }
    assert (await api.get("/prompt", headers=theirs)).json()["exec_info"]["queue_remaining"] == 0
    assert (await api.get("/view", params=image, headers=theirs)).status_code == 404
    upload = {"filename": "a.png", "type": "input"}
    assert (await api.get("/view", params=upload, headers=theirs)).status_code == 404
    uses_theirs = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "a.png"}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0]}},
    }
    refused = await api.post("/prompt", json={"prompt": uses_theirs}, headers=theirs)
    assert refused.status_code == 400
    for path, body in (
        ("/interrupt", {"prompt_id": prompt_id}),
        ("/queue", {"delete": [prompt_id]}),
    ):
        assert (await api.post(path, json=body, headers=theirs)).status_code == 200
    assert (await api.get(f"/history/{prompt_id}", headers=tenant.headers)).json() == entry

    await check_catalogue_and_stats(api, tenant, other_tenant)


async def check_catalogue_and_stats(api: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant):
    """The node catalogue lists each organization's own uploads as LoadImage's choices."""
    info = (await api.get("/object_info", headers=tenant.headers)).json()
    assert info["EmptyImage"]["output"] == ["IMAGE"]
    assert info["LoadImage"]["input"]["required"]["image"][0] == ["a.png"]
    other_info = (await api.get("/object_info/LoadImage", headers=other_tenant.headers)).json()
    assert other_info["LoadImage"]["input"]["required"]["image"][0] == []
    assert (await api.get("/object_info/Nope", headers=tenant.headers)).json() == {}
    stats = (await api.get("/system_stats", headers=tenant.headers)).json()
    assert stats["system"]["comfyui_version"] == "0.3.64" and stats["system"]["argv"] == ["main.py"]
    assert stats["devices"][0]["type"] == "cpu"
