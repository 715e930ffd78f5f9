"""An async client of one ComfyUI server: its HTTP API (httpx) and its WebSocket (websockets).

Use one `client_id` per job: ComfyUI routes a prompt's messages to the socket of the
`client_id` it was submitted with, and a second socket with the same id silently replaces the
first. `watch` survives a dropped WebSocket by polling `/history/{prompt_id}`; anything that says
the server itself is gone raises `BackendUnavailable`, so the caller can run the job elsewhere.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import structlog
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidHandshake, InvalidURI

from genway.engines.comfyui.errors import (
    BackendUnavailable,
    ComfyUIError,
    ExecutionFailed,
    Interrupted,
    NodeErrors,
    PromptLost,
    UnexpectedResponse,
)
from genway.engines.comfyui.protocol import HistoryEntry, QueueState
from genway.engines.comfyui.watch import (
    FellBackToPolling,
    Finished,
    SocketFollower,
    WatchEvent,
    finish,
)

__all__ = [
    "BackendUnavailable",
    "ComfyUIClient",
    "ComfyUIError",
    "ExecutionFailed",
    "FellBackToPolling",
    "Finished",
    "Interrupted",
    "NodeErrors",
    "PromptLost",
    "RunEvent",
    "SubmittedPrompt",
    "UnexpectedResponse",
    "UploadedImage",
    "WatchEvent",
]

log = structlog.get_logger("genway.engines.comfyui")

MAX_FRAME_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class SubmittedPrompt:
    """ComfyUI's answer to `POST /prompt`; `node_errors` lists outputs it dropped."""

    prompt_id: str
    number: float
    node_errors: Mapping[str, Any]


@dataclass(frozen=True)
class UploadedImage:
    """Where `/upload/image` put a file. `reference` is the value for a LoadImage `image` input."""

    name: str
    subfolder: str
    type: str

    @property
    def reference(self) -> str:
        return f"{self.subfolder}/{self.name}" if self.subfolder else self.name


RunEvent = SubmittedPrompt | WatchEvent


class ComfyUIClient:
    """One ComfyUI server. Timeouts are seconds; `headers` go on HTTP and WebSocket requests."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 30.0,
        connect_timeout: float = 5.0,
        poll_interval: float = 1.0,
        liveness_interval: float = 15.0,
        max_poll_failures: int = 3,
        headers: Mapping[str, str] | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.connect_timeout = connect_timeout
        self.poll_interval = poll_interval
        self.liveness_interval = liveness_interval
        self.max_poll_failures = max_poll_failures
        self._headers = dict(headers or {})
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(
            base_url=self.base_url,
            headers=self._headers,
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
        )

    async def aclose(self) -> None:
        """Close the HTTP connection pool (unless it was passed in)."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> ComfyUIClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def submit(
        self,
        workflow: Mapping[str, Any],
        client_id: str,
        prompt_id: str | None = None,
        *,
        extra_data: Mapping[str, Any] | None = None,
    ) -> SubmittedPrompt:
        """Queue an API-format workflow. Raises NodeErrors (400) or BackendUnavailable."""
        body: dict[str, Any] = {"prompt": dict(workflow), "client_id": client_id}
        if prompt_id is not None:
            body["prompt_id"] = prompt_id
        if extra_data:
            body["extra_data"] = dict(extra_data)
        response = await self._request("POST", "/prompt", json=body)
        if response.status_code == 400:
            payload = self._json(response)
            if isinstance(payload, dict) and "error" in payload:
                raise NodeErrors(payload["error"], payload.get("node_errors") or {})
        data = self._json(self._ok(response))
        return SubmittedPrompt(
            str(data["prompt_id"]), float(data.get("number", 0)), data.get("node_errors") or {}
        )

    async def history(self, prompt_id: str) -> HistoryEntry | None:
        """The prompt's history entry, or None while it is queued, running or unknown."""
        response = self._ok(await self._request("GET", f"/history/{quote(prompt_id, safe='')}"))
        entry = self._json(response).get(prompt_id)
        if entry is None:
            return None
        try:
            return HistoryEntry.from_json(prompt_id, entry)
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise UnexpectedResponse(self.base_url, response.status_code, response.text) from exc

    async def view(self, filename: str, subfolder: str = "", type: str = "output") -> bytes:
        """The bytes of an output, input or temp file. Raises UnexpectedResponse (404)."""
        params = {"filename": filename, "subfolder": subfolder, "type": type}
        return self._ok(await self._request("GET", "/view", params=params)).content

    async def upload_image(
        self,
        data: bytes,
        filename: str,
        subfolder: str | None = None,
        overwrite: bool = True,
        *,
        type: str = "input",
    ) -> UploadedImage:
        """Store an image in ComfyUI's input folder (or `type`) for LoadImage to read."""
        form = {"type": type, "overwrite": "true" if overwrite else "false"}
        if subfolder:
            form["subfolder"] = subfolder
        files = {"image": (filename, data, "application/octet-stream")}
        response = await self._request("POST", "/upload/image", data=form, files=files)
        payload = self._json(self._ok(response))
        return UploadedImage(
            str(payload["name"]), str(payload.get("subfolder", "")), str(payload.get("type", type))
        )

    async def interrupt(self, prompt_id: str | None = None) -> None:
        """Interrupt the running prompt; with `prompt_id`, only if that one is running.

        ComfyUI acts between nodes (and between sampler steps), so the prompt may keep running
        for the rest of the current node; `watch` reports `Interrupted` when it stops.
        """
        body = {"prompt_id": prompt_id} if prompt_id else {}
        self._ok(await self._request("POST", "/interrupt", json=body))

    async def delete_from_queue(self, prompt_ids: Iterable[str]) -> None:
        """Remove pending prompts (a running prompt is not affected)."""
        body = {"delete": list(prompt_ids)}
        self._ok(await self._request("POST", "/queue", json=body))

    async def delete_history(self, prompt_ids: Iterable[str]) -> None:
        """Forget ended prompts (their workflows and outputs) in the server's history."""
        body = {"delete": list(prompt_ids)}
        self._ok(await self._request("POST", "/history", json=body))

    async def models(self) -> dict[str, list[str]]:
        """`/models` and `/models/{folder}`: the model files the server offers, by folder
        (empty for a server without these routes)."""
        response = await self._request("GET", "/models")
        if response.status_code == 404:
            return {}
        folders = [str(folder) for folder in self._list(self._ok(response))]

        async def listing(folder: str) -> list[str]:
            answer = await self._request("GET", f"/models/{quote(folder, safe='')}")
            return [str(name) for name in self._list(answer)] if answer.status_code == 200 else []

        names = await asyncio.gather(*(listing(folder) for folder in folders))
        return dict(zip(folders, names, strict=True))

    async def cancel(self, prompt_id: str) -> None:
        """Remove the prompt if pending, interrupt it if running; no effect once finished."""
        await self.delete_from_queue([prompt_id])
        queue = await self.queue()
        # Only interrupt when it is ours that runs: servers that ignore `prompt_id` in
        # /interrupt would otherwise stop another job's prompt.
        if any(item.prompt_id == prompt_id for item in queue.running):
            await self.interrupt(prompt_id)

    async def queue(self) -> QueueState:
        """The running and pending prompts."""
        response = self._ok(await self._request("GET", "/queue"))
        try:
            return QueueState.from_json(self._json(response))
        except (AttributeError, IndexError, KeyError, TypeError, ValueError) as exc:
            raise UnexpectedResponse(self.base_url, response.status_code, response.text) from exc

    async def system_stats(self) -> dict[str, Any]:
        """`/system_stats`: versions, RAM and devices."""
        return self._json(self._ok(await self._request("GET", "/system_stats")))

    async def object_info(self, node_class: str | None = None) -> dict[str, Any]:
        """`/object_info`: the node classes the server knows, with their inputs and outputs."""
        path = "/object_info" if node_class is None else f"/object_info/{quote(node_class)}"
        return self._json(self._ok(await self._request("GET", path)))

    async def run(
        self,
        workflow: Mapping[str, Any],
        client_id: str,
        prompt_id: str | None = None,
        *,
        extra_data: Mapping[str, Any] | None = None,
    ) -> AsyncIterator[RunEvent]:
        """Submit and follow a workflow: `SubmittedPrompt` first, then as `watch`.

        The WebSocket opens before the submit, so no message of the prompt is missed.
        Raises NodeErrors before anything is yielded, then as `watch`.
        """
        socket, reason = await self._try_socket(client_id)
        try:
            submitted = await self.submit(workflow, client_id, prompt_id, extra_data=extra_data)
        except BaseException:
            if socket is not None:
                await socket.close()
            raise
        yield submitted
        follow = self._follow(submitted.prompt_id, socket, reason, opened_before_submit=True)
        async for event in follow:
            yield event

    async def watch(self, prompt_id: str, client_id: str) -> AsyncIterator[WatchEvent]:
        """Events of an already submitted prompt until it ends; the last one is `Finished`.

        Messages sent before the socket opened are missed (use `run` to avoid that); a prompt
        that already ended is read from `/history`. Raises ExecutionFailed, Interrupted, or
        BackendUnavailable (unreachable for `max_poll_failures` polls; PromptLost when the
        server restarted and forgot the prompt).
        """
        socket, reason = await self._try_socket(client_id)
        async for event in self._follow(prompt_id, socket, reason):
            yield event

    async def _follow(
        self,
        prompt_id: str,
        socket: ClientConnection | None,
        reason: str,
        *,
        opened_before_submit: bool = False,
    ) -> AsyncIterator[WatchEvent]:
        if socket is not None:
            follower = SocketFollower(
                self, socket, prompt_id, opened_before_submit=opened_before_submit
            )
            try:
                async for event in follower.events():
                    yield event
            finally:
                await socket.close()
            if follower.finished:
                return
            reason = follower.drop_reason
        log.warning(
            "comfyui_ws_fallback", base_url=self.base_url, prompt_id=prompt_id, reason=reason
        )
        yield FellBackToPolling(prompt_id, reason)
        yield await self.poll_until_finished(prompt_id)

    async def poll_until_finished(self, prompt_id: str) -> Finished:
        """Poll `/history/{prompt_id}` until the prompt ends, tolerating brief outages."""
        failures = 0
        while True:
            try:
                entry = await self.probe(prompt_id)
                failures = 0
                if entry is not None:
                    return finish(entry)
            except PromptLost:
                raise
            except BackendUnavailable:
                failures += 1
                if failures >= self.max_poll_failures:
                    raise
            await asyncio.sleep(self.poll_interval)

    async def probe(self, prompt_id: str) -> HistoryEntry | None:
        """The history entry if the prompt ended, None if it is queued or running.

        Raises PromptLost when the server knows nothing of it (it restarted).
        """
        entry = await self.history(prompt_id)
        if entry is not None:
            return entry
        if (await self.queue()).contains(prompt_id):
            return None
        # It may have finished between the two reads.
        entry = await self.history(prompt_id)
        if entry is None:
            raise PromptLost(self.base_url, f"prompt {prompt_id} is neither queued nor in history")
        return entry

    async def _try_socket(self, client_id: str) -> tuple[ClientConnection | None, str]:
        # Without a socket the prompt can still be followed by polling, so this never raises.
        scheme, rest = self.base_url.split("://", 1)
        url = f"{'wss' if scheme == 'https' else 'ws'}://{rest}/ws?clientId={quote(client_id)}"
        try:
            socket = await connect(
                url,
                additional_headers=self._headers or None,
                open_timeout=self.connect_timeout,
                close_timeout=self.connect_timeout,
                max_size=MAX_FRAME_BYTES,
            )
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
            return None, f"WebSocket could not open: {exc!r}"
        return socket, ""

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise BackendUnavailable(self.base_url, f"{method} {path}: {exc!r}") from exc
        if response.status_code >= 500:
            reason = f"{method} {path} answered {response.status_code}"
            raise BackendUnavailable(self.base_url, reason)
        return response

    def _ok(self, response: httpx.Response) -> httpx.Response:
        if response.status_code >= 400:
            raise UnexpectedResponse(self.base_url, response.status_code, response.text)
        return response

    def _list(self, response: httpx.Response) -> list[Any]:
        data: list[Any] = self._decoded(response, list)
        return data

    def _json(self, response: httpx.Response) -> dict[str, Any]:
        data: dict[str, Any] = self._decoded(response, dict)
        return data

    def _decoded(self, response: httpx.Response, shape: type) -> Any:
        """The JSON body, when it is a `shape`. Raises UnexpectedResponse."""
        try:
            data = response.json()
        except ValueError as exc:
            raise UnexpectedResponse(self.base_url, response.status_code, response.text) from exc
        if not isinstance(data, shape):
            raise UnexpectedResponse(self.base_url, response.status_code, response.text)
        return data
