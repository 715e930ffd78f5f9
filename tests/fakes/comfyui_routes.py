"""The fake ComfyUI's HTTP routes and WebSocket endpoint, each answering as ComfyUI's server.py.

Every route exists at the root and under `/api`, as in ComfyUI. JSON answers carry
`application/json; charset=utf-8`; `POST /queue`, `/history` and `/interrupt` answer 200 with
an empty body.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from typing import TYPE_CHECKING, Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.websockets import WebSocket

from tests.fakes.comfyui_nodes import node_info
from tests.fakes.comfyui_prompt import QueueItem, problem, validate_prompt

if TYPE_CHECKING:
    from tests.fakes.comfyui import FakeComfyUI

JSON = "application/json; charset=utf-8"


def _json(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data), status_code=status, media_type=JSON)


async def _body(request: Request) -> dict[str, Any]:
    try:
        data = await request.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def build_routes(fake: FakeComfyUI) -> list[BaseRoute]:
    """Starlette routes bound to one fake."""

    async def post_prompt(request: Request) -> Response:
        body = await request.json()
        fake.received.append(body)
        if "number" in body:
            number: int | float = float(body["number"])
        else:
            number = -fake.number if body.get("front") else fake.number
            fake.number += 1
        if fake.next_submit_failure is not None:
            failure, fake.next_submit_failure = fake.next_submit_failure, None
            if failure["node_errors"] is None:
                failure["node_errors"] = _injected_node_errors(body.get("prompt"))
            return _json(failure, 400)
        if "prompt" not in body:
            error = problem("no_prompt", "No prompt provided", "No prompt provided")
            return _json({"error": error, "node_errors": {}}, 400)
        prompt = body["prompt"]
        prompt_id = str(body.get("prompt_id") or uuid.uuid4())
        checked = validate_prompt(prompt, fake.catalogue, fake.folders)
        if not checked.ok:
            return _json({"error": checked.error, "node_errors": checked.node_errors}, 400)
        extra_data = dict(body.get("extra_data") or {})
        if "client_id" in body:
            extra_data["client_id"] = body["client_id"]
        fake.enqueue(QueueItem(number, prompt_id, prompt, extra_data, checked.outputs))
        await fake.broadcast_status()
        return _json({"prompt_id": prompt_id, "number": number, "node_errors": checked.node_errors})

    async def get_prompt(_request: Request) -> Response:
        return _json(fake.queue_info())

    async def get_queue(_request: Request) -> Response:
        running = [fake.running.as_list()] if fake.running else []
        return _json(
            {"queue_running": running, "queue_pending": [i.as_list() for i in fake.pending]}
        )

    async def post_queue(request: Request) -> Response:
        body = await _body(request)
        if body.get("clear"):
            fake.pending.clear()
        for prompt_id in body.get("delete", []):
            fake.pending = [item for item in fake.pending if item.prompt_id != prompt_id]
        await fake.broadcast_status()
        return Response(status_code=200)

    async def get_history(request: Request) -> Response:
        items = list(fake.history.items())
        max_items = request.query_params.get("max_items")
        if max_items is not None:
            items = items[-int(max_items) :] if int(max_items) > 0 else []
        return _json(dict(items))

    async def post_history(request: Request) -> Response:
        body = await _body(request)
        if body.get("clear"):
            fake.history.clear()
        for prompt_id in body.get("delete", []):
            fake.history.pop(prompt_id, None)
        return Response(status_code=200)

    async def get_history_item(request: Request) -> Response:
        prompt_id = request.path_params["prompt_id"]
        entry = fake.history.get(prompt_id)
        return _json({prompt_id: entry} if entry is not None else {})

    async def view(request: Request) -> Response:
        query = request.query_params
        filename = query.get("filename")
        if filename is None:
            return Response(status_code=404)
        if not filename or filename[0] == "/" or ".." in filename:
            return Response(status_code=400)
        base = fake.folders.by_type(query.get("type", "output"))
        if base is None:
            return Response(status_code=400)
        folder = os.path.abspath(os.path.join(base, query.get("subfolder", "")))
        if os.path.commonpath((folder, str(base))) != str(base):
            return Response(status_code=403)
        path = os.path.join(folder, os.path.basename(filename))
        if not os.path.isfile(path):
            return Response(status_code=404)
        disposition = {"Content-Disposition": f'filename="{os.path.basename(filename)}"'}
        return FileResponse(path, headers=disposition)

    async def upload_image(request: Request) -> Response:
        async with request.form() as form:
            image = form.get("image")
            if not isinstance(image, UploadFile) or not image.filename:
                return Response(status_code=400)
            data = await image.read()
            fields = {key: str(form.get(key) or "") for key in ("type", "subfolder", "overwrite")}
        return _store_upload(fake, image.filename, data, **fields)

    async def interrupt(request: Request) -> Response:
        prompt_id = (await _body(request)).get("prompt_id")
        fake.interrupts.append(prompt_id if isinstance(prompt_id, str) else None)
        running = fake.running.prompt_id if fake.running else None
        # A targeted interrupt only stops that prompt; ComfyUI ignores it otherwise.
        if not prompt_id or prompt_id == running:
            fake.interrupt_requested = True
        return Response(status_code=200)

    async def system_stats(_request: Request) -> Response:
        return _json(_SYSTEM_STATS)

    async def object_info(request: Request) -> Response:
        wanted = request.path_params.get("node_class")
        names = [wanted] if wanted else list(fake.catalogue)
        return _json(
            {
                name: node_info(fake.catalogue[name], fake.folders)
                for name in names
                if name in fake.catalogue
            }
        )

    async def models(_request: Request) -> Response:
        return _json(list(fake.models))

    async def models_in(request: Request) -> Response:
        folder = request.path_params["folder"]
        if folder not in fake.models:
            return Response(status_code=404)
        return _json(fake.models[folder])

    async def websocket(socket: WebSocket) -> None:
        await socket.accept()
        sid = socket.query_params.get("clientId") or uuid.uuid4().hex
        try:
            await fake.on_socket(socket, sid)
            while (await socket.receive())["type"] != "websocket.disconnect":
                pass
        finally:
            if fake.sockets.get(sid) is socket:
                del fake.sockets[sid]

    routes: list[BaseRoute] = [
        Route("/prompt", post_prompt, methods=["POST"]),
        Route("/prompt", get_prompt, methods=["GET"]),
        Route("/queue", get_queue, methods=["GET"]),
        Route("/queue", post_queue, methods=["POST"]),
        Route("/history", get_history, methods=["GET"]),
        Route("/history", post_history, methods=["POST"]),
        Route("/history/{prompt_id}", get_history_item, methods=["GET"]),
        Route("/view", view, methods=["GET"]),
        Route("/upload/image", upload_image, methods=["POST"]),
        Route("/interrupt", interrupt, methods=["POST"]),
        Route("/system_stats", system_stats, methods=["GET"]),
        Route("/object_info", object_info, methods=["GET"]),
        Route("/object_info/{node_class}", object_info, methods=["GET"]),
        Route("/models", models, methods=["GET"]),
        Route("/models/{folder}", models_in, methods=["GET"]),
        WebSocketRoute("/ws", websocket),
    ]
    return [*routes, Mount("/api", routes=routes)]


def _store_upload(
    fake: FakeComfyUI, filename: str, data: bytes, type: str, subfolder: str, overwrite: str
) -> Response:
    kind = type or "input"
    base = fake.folders.by_type(kind)
    if base is None:
        return Response(status_code=400)
    folder = os.path.join(base, os.path.normpath(subfolder))
    target = os.path.abspath(os.path.join(folder, filename))
    if os.path.commonpath((str(base), target)) != str(base):
        return Response(status_code=400)
    os.makedirs(folder, exist_ok=True)
    name = filename
    if overwrite not in ("true", "1"):
        # Like ComfyUI: an identical file is reused, a different one gets "name (n).ext".
        stem, ext = os.path.splitext(filename)
        counter = 1
        while os.path.exists(target):
            with open(target, "rb") as existing:
                if hashlib.sha256(existing.read()).digest() == hashlib.sha256(data).digest():
                    break
            name = f"{stem} ({counter}){ext}"
            target = os.path.join(folder, name)
            counter += 1
    with open(target, "wb") as file:
        file.write(data)
    return _json({"name": name, "subfolder": subfolder, "type": kind})


def _injected_node_errors(prompt: Any) -> dict[str, Any]:
    nodes = prompt if isinstance(prompt, dict) else {}
    first = next(iter(nodes), "1")
    class_type = nodes.get(first, {}).get("class_type", "Unknown")
    error = problem(
        "custom_validation_failed", "Custom validation failed for node", "injected by the test"
    )
    return {first: {"errors": [error], "dependent_outputs": [], "class_type": class_type}}


_SYSTEM_STATS = {
    "system": {
        "os": "posix",
        "ram_total": 25276502016,
        "ram_free": 24251047936,
        "comfyui_version": "0.3.64",
        "required_frontend_version": "1.27.10",
        "python_version": "3.11 (fake)",
        "pytorch_version": "none (fake)",
        "embedded_python": False,
        "argv": ["main.py", "--cpu", "--listen", "127.0.0.1"],
    },
    "devices": [
        {
            "name": "cpu",
            "type": "cpu",
            "index": None,
            "vram_total": 25276502016,
            "vram_free": 24251047936,
            "torch_vram_total": 25276502016,
            "torch_vram_free": 24251047936,
        }
    ],
}
