"""Following one submitted prompt to its end: over the WebSocket while it lasts, then by
polling `/history/{prompt_id}` (with `/queue` to tell "still waiting" from "forgotten").
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from genway.engines.comfyui.errors import (
    BackendUnavailable,
    ExecutionFailed,
    Interrupted,
    PromptLost,
)
from genway.engines.comfyui.protocol import (
    ExecutionEnded,
    ExecutionError,
    ExecutionInterrupted,
    HistoryEntry,
    ImageRef,
    QueueStatus,
    ServerEvent,
    parse_binary_frame,
    parse_text_frame,
)

if TYPE_CHECKING:
    from genway.engines.comfyui.client import ComfyUIClient


@dataclass(frozen=True)
class FellBackToPolling:
    """The WebSocket was lost or never opened; `watch` now polls `/history/{prompt_id}`."""

    prompt_id: str
    reason: str


@dataclass(frozen=True)
class Finished:
    """The prompt succeeded; `history` holds its outputs. Always `watch`'s last event."""

    prompt_id: str
    history: HistoryEntry

    @property
    def images(self) -> list[ImageRef]:
        return self.history.images


WatchEvent = ServerEvent | FellBackToPolling | Finished


def finish(entry: HistoryEntry) -> Finished:
    """`Finished` for a successful history entry; raises ExecutionFailed or Interrupted."""
    if entry.succeeded:
        return Finished(entry.prompt_id, entry)
    interrupted = entry.message("execution_interrupted")
    if interrupted is not None:
        stop = ExecutionInterrupted.from_json({"prompt_id": entry.prompt_id, **interrupted})
        raise Interrupted(entry.prompt_id, stop.node_id, stop.node_type)
    error = entry.message("execution_error")
    if error is not None:
        raise _failed(ExecutionError.from_json({"prompt_id": entry.prompt_id, **error}))
    raise ExecutionFailed(entry.prompt_id, "", "", f"ended with status {entry.status_str}")


def _failed(error: ExecutionError) -> ExecutionFailed:
    return ExecutionFailed(
        error.prompt_id,
        error.node_id,
        error.node_type,
        error.exception_message,
        error.exception_type,
        error.traceback,
    )


class SocketFollower:
    """Reads one prompt's messages from an open socket until it ends or the socket is lost."""

    def __init__(
        self,
        client: ComfyUIClient,
        socket: ClientConnection,
        prompt_id: str,
        *,
        opened_before_submit: bool = False,
    ) -> None:
        self.client, self.socket, self.prompt_id = client, socket, prompt_id
        self.opened_before_submit = opened_before_submit
        self.finished = False
        self.drop_reason = ""

    async def events(self) -> AsyncIterator[WatchEvent]:
        try:
            # A prompt submitted after the socket opened cannot have ended unseen; otherwise
            # read its history once (the socket is open, so nothing that ends later is missed).
            entry = None if self.opened_before_submit else await self.client.history(self.prompt_id)
            if entry is not None:
                self.finished = True
                yield finish(entry)
                return
            async for event in self._messages():
                yield event
        except PromptLost:
            raise
        except BackendUnavailable as exc:
            self.drop_reason = exc.reason

    async def _messages(self) -> AsyncIterator[WatchEvent]:
        while True:
            try:
                frame = await asyncio.wait_for(self.socket.recv(), self.client.liveness_interval)
            except TimeoutError:
                # A long node sends nothing; make sure the server and the prompt still exist.
                entry = await self.client.probe(self.prompt_id)
                if entry is not None:
                    self.finished = True
                    yield finish(entry)
                    return
                continue
            except ConnectionClosed as exc:
                self.drop_reason = f"WebSocket closed: {exc}"
                return
            event = (
                parse_binary_frame(frame) if isinstance(frame, bytes) else parse_text_frame(frame)
            )
            if event is None or isinstance(event, QueueStatus) or not self._ours(event):
                continue
            if isinstance(event, ExecutionError):
                raise _failed(event)
            if isinstance(event, ExecutionInterrupted):
                raise Interrupted(event.prompt_id, event.node_id, event.node_type)
            if isinstance(event, ExecutionEnded):
                entry = await self.client.history(self.prompt_id)
                if entry is None:
                    self.drop_reason = "history not written after the prompt ended"
                    return
                self.finished = True
                yield finish(entry)
                return
            yield event

    def _ours(self, event: ServerEvent) -> bool:
        # Frames without a prompt id (plain previews, text) belong to this socket's only job.
        prompt_id = getattr(event, "prompt_id", None)
        return prompt_id is None or prompt_id == self.prompt_id
