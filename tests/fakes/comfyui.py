"""A fake ComfyUI server that speaks ComfyUI's real HTTP and WebSocket protocol on 127.0.0.1.

It queues prompts and executes them one at a time (Pillow instead of torch), sends the same
WebSocket messages in the same order as a real ComfyUI 0.3.x (`status` with `sid` on connect,
`execution_start`, `execution_cached`, `progress_state`, `executing`, `progress`, `executed`,
`execution_success` or `execution_error` / `execution_interrupted`, then `executing` with
`node: null`), routes them by `client_id`, and writes real PNG files served by `/view`.
Shapes were checked against a recorded real session (ComfyUI 0.3.64) and ComfyUI's server.py,
execution.py and main.py; tests/engines/comfyui/test_fake_protocol.py replays that recording.
The node catalogue lives in comfyui_nodes.py, submit-time validation in comfyui_prompt.py,
execution in comfyui_execution.py and the HTTP/WebSocket routes in comfyui_routes.py.

Tests steer it with plain attributes and methods: `execution_time`, `steps`, `caching`,
`send_previews`, `fail_next_submit()`, `fail_next_execution()`, `drop_websockets()`,
`die()` / `revive()`, `hang()` / `unhang()`, `pause()` / `unpause()`, and read `received`
(every `POST /prompt` body), `interrupts` (the prompt id of every `POST /interrupt`, None
for an untargeted one), `prompt_count` and `queue_length`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from tests.fakes.comfyui_execution import InjectedFailure, PromptRun
from tests.fakes.comfyui_nodes import DEFAULT_CHECKPOINTS, Folders, build_catalogue
from tests.fakes.comfyui_prompt import QueueItem
from tests.fakes.comfyui_routes import build_routes


class _QuietServer(uvicorn.Server):
    """uvicorn without signal handlers: several fakes start and stop inside one test."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class FakeComfyUI:
    """One fake ComfyUI backend. `async with FakeComfyUI() as fake:` starts it on a free port."""

    def __init__(
        self,
        root: Path | None = None,
        *,
        execution_time: float = 0.1,
        steps: int | None = None,
        caching: bool = True,
        send_previews: bool = False,
        checkpoints: tuple[str, ...] = DEFAULT_CHECKPOINTS,
    ) -> None:
        self._tmp = None if root is not None else tempfile.mkdtemp(prefix="fake-comfyui-")
        base = Path(root or self._tmp or ".")
        self.folders = Folders(base / "input", base / "output", base / "temp")
        for folder in (self.folders.input, self.folders.output, self.folders.temp):
            folder.mkdir(parents=True, exist_ok=True)
        self.catalogue = build_catalogue(list(checkpoints))
        self.models: dict[str, list[str]] = {"checkpoints": list(checkpoints), "loras": []}
        self.execution_time = execution_time
        self.steps = steps
        self.caching = caching
        self.send_previews = send_previews
        self.received: list[dict[str, Any]] = []
        self.interrupts: list[str | None] = []  # the prompt id of every `POST /interrupt`
        self.next_submit_failure: dict[str, Any] | None = None
        self.next_execution_failure: InjectedFailure | None = None
        self._answering = asyncio.Event()
        self._answering.set()
        self._paused = False
        self._server: uvicorn.Server | None = None
        self._serve_task: asyncio.Task[None] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._port = 0
        self._reset_state()

    def _reset_state(self) -> None:
        # What a restarted ComfyUI forgets: queue, history, sockets, cache, prompt numbers.
        self.pending: list[QueueItem] = []
        self.running: QueueItem | None = None
        self.history: dict[str, dict[str, Any]] = {}
        self.sockets: dict[str, WebSocket] = {}
        self.number = 0
        self.interrupt_requested = False
        self.executing_client: str | None = None
        self.last_node_id: str | None = None
        self.cache: dict[str, tuple[Any, ...]] = {}
        self._wakeup = asyncio.Event()

    async def __aenter__(self) -> FakeComfyUI:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        if not self._port:
            raise RuntimeError("the fake ComfyUI is not started")
        return f"http://127.0.0.1:{self._port}"

    @property
    def prompt_count(self) -> int:
        """How many `POST /prompt` requests arrived (accepted or rejected) since start."""
        return len(self.received)

    @property
    def queue_length(self) -> int:
        return len(self.pending) + (1 if self.running else 0)

    async def start(self) -> str:
        """Listen on 127.0.0.1 (a free port, or the previous one after `die()`); the base URL."""
        config = uvicorn.Config(
            _AnsweringGate(self, Starlette(routes=build_routes(self))),
            host="127.0.0.1",
            port=self._port,
            log_level="warning",
            lifespan="off",
            ws="websockets-sansio",
            ws_max_size=64 * 1024 * 1024,
        )
        self._server = _QuietServer(config)
        self._serve_task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._serve_task.done():
                self._serve_task.result()
                raise RuntimeError("the fake ComfyUI stopped while starting")
            await asyncio.sleep(0.005)
        self._port = self._server.servers[0].sockets[0].getsockname()[1]
        self._worker = asyncio.create_task(self._work())
        return self.base_url

    async def stop(self) -> None:
        """Stop serving and delete the fake's files if it made its own folder."""
        await self.die()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)

    async def die(self) -> None:
        """Crash: close the listening socket, cut every connection, forget queue and history."""
        self._answering.set()
        if self._server is not None:
            for listener in self._server.servers:
                listener.close()
            for connection in list(self._server.server_state.connections):
                connection.transport.abort()
            self._server.should_exit = self._server.force_exit = True
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        if self._serve_task is not None:
            # Everything is closed already; uvicorn's graceful shutdown would only add delays.
            self._serve_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._serve_task
        self._server = self._serve_task = self._worker = None
        self._reset_state()

    async def revive(self) -> str:
        """Come back on the same port with an empty queue, as a restarted ComfyUI does."""
        return await self.start()

    def hang(self) -> None:
        """Stop answering: HTTP requests, WebSocket handshakes and messages wait until `unhang`."""
        self._answering.clear()

    def unhang(self) -> None:
        self._answering.set()

    def pause(self) -> None:
        """Keep queued prompts pending (the running one finishes)."""
        self._paused = True

    def unpause(self) -> None:
        self._paused = False
        self._wakeup.set()

    def fail_next_submit(
        self, node_errors: dict[str, Any] | None = None, *, error: dict[str, Any] | None = None
    ) -> None:
        """Answer the next `POST /prompt` with 400 and these node errors, as a real rejection."""
        self.next_submit_failure = {
            "error": error
            or {
                "type": "prompt_outputs_failed_validation",
                "message": "Prompt outputs failed validation",
                "details": "",
                "extra_info": {},
            },
            "node_errors": node_errors,
        }

    def fail_next_execution(
        self,
        message: str = "injected failure",
        *,
        node_id: str | None = None,
        exception_type: str = "Exception",
    ) -> None:
        """Make the next executed prompt raise in `node_id` (default: its last node)."""
        self.next_execution_failure = InjectedFailure(message, exception_type, node_id)

    async def drop_websockets(self) -> None:
        """Cut every WebSocket connection without a close frame, as a network drop does."""
        if self._server is None:
            return
        ws_class = self._server.config.ws_protocol_class
        for connection in list(self._server.server_state.connections):
            if ws_class is not None and isinstance(connection, ws_class):
                connection.transport.abort()
        await asyncio.sleep(0)

    async def wait_idle(self) -> None:
        """Return once nothing is queued or running."""
        while self.queue_length:
            await asyncio.sleep(0.005)

    def enqueue(self, item: QueueItem) -> None:
        self.pending.append(item)
        self.pending.sort(key=lambda queued: queued.number)
        self._wakeup.set()

    def queue_info(self) -> dict[str, Any]:
        return {"exec_info": {"queue_remaining": self.queue_length}}

    async def wait_answering(self) -> None:
        await self._answering.wait()

    async def send(self, event: str | int, data: Any, sid: str | None) -> None:
        """Send one message to `sid`, or to every socket when `sid` is None, as ComfyUI does."""
        await self._answering.wait()
        if isinstance(event, int):
            payload: str | bytes = struct.pack(">I", event) + data
        else:
            payload = json.dumps({"type": event, "data": data})
        targets = list(self.sockets.values()) if sid is None else [self.sockets.get(sid)]
        for socket in targets:
            if socket is None:
                continue
            # A socket that went away mid-send is skipped, as ComfyUI logs and carries on.
            with contextlib.suppress(Exception):
                if isinstance(payload, bytes):
                    await socket.send_bytes(payload)
                else:
                    await socket.send_text(payload)

    async def broadcast_status(self) -> None:
        await self.send("status", {"status": self.queue_info()}, None)

    async def on_socket(self, websocket: WebSocket, sid: str) -> None:
        """A client connected: the status frame with its `sid`, and where its prompt is now."""
        # A second socket with the same clientId replaces the first, which then hears nothing.
        self.sockets[sid] = websocket
        await self.send("status", {"status": self.queue_info(), "sid": sid}, sid)
        if self.executing_client == sid and self.last_node_id is not None:
            await self.send("executing", {"node": self.last_node_id}, sid)

    async def _work(self) -> None:
        while True:
            while self._paused or not self.pending:
                self._wakeup.clear()
                await self._wakeup.wait()
            self.running = self.pending.pop(0)
            await self.broadcast_status()
            await PromptRun(self, self.running).execute()


class _AnsweringGate:
    """ASGI wrapper that holds every request while the fake is hung."""

    def __init__(self, fake: FakeComfyUI, app: ASGIApp) -> None:
        self.fake, self.app = fake, app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            await self.fake.wait_answering()
        await self.app(scope, receive, send)
