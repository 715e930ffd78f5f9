"""Turning a backend's live messages into job events: overall progress, and the ComfyUI
messages themselves (for Genway's ComfyUI-compatible `/ws`).

Messages are written in batches (one `output` event named `comfyui.messages` per batch, at most
every `flush_s`) and progress at most every `PROGRESS_EVERY_S` (none for a prompt that ends
sooner), because a sampler sends dozens of messages a second, each event is a database commit,
and on SQLite every commit waits for the one write lock that workers also need to claim jobs.
A batch is always written before the job's final status.

Writes are shielded: the task following a prompt is cancelled when the job is, and a write
cut short inside SQLite's transaction would leave the database locked for every other writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from genway.engines.comfyui.messages import Message, relayable
from genway.engines.comfyui.protocol import (
    NodeExecuting,
    NodesCached,
    Progress,
    ServerEvent,
)
from genway.engines.comfyui.workflows import Workflow
from genway.worker.context import JobContext

MESSAGES_OUTPUT = "comfyui.messages"
PROGRESS_EVERY_S = 0.5


class ProgressRelay:
    def __init__(
        self, ctx: JobContext, prompt_id: str, workflow: Workflow, *, flush_s: float = 0.2
    ) -> None:
        self.ctx, self.prompt_id, self.workflow = ctx, prompt_id, workflow
        self.flush_s = flush_s
        self._buffer: list[Message] = []
        self._flusher: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._done: set[str] = set()
        self._node: str | None = None
        self._node_fraction = 0.0
        self._reported_at = time.monotonic()

    def add(self, message: Message) -> None:
        self._buffer.append(message)
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_later())

    async def on_event(self, event: ServerEvent) -> None:
        """Relay the event if clients know it, and move the progress bar."""
        message = relayable(event, self.prompt_id)
        if message is not None:
            self.add(message)
        if isinstance(event, NodesCached):
            self._done.update(event.nodes)
        elif isinstance(event, NodeExecuting):
            if self._node is not None:
                self._done.add(self._node)
            self._node, self._node_fraction = event.node, 0.0
            await self._report()
        elif isinstance(event, Progress) and (event.node is None or event.node == self._node):
            self._node_fraction = event.fraction
            await self._report()

    async def _report(self) -> None:
        now = time.monotonic()
        if now - self._reported_at < PROGRESS_EVERY_S:
            return
        self._reported_at = now
        total = max(1, len(self.workflow))
        fraction = min(0.99, (len(self._done) + self._node_fraction) / total)
        node = self.workflow.get(self._node or "", {})
        label = f"node {self._node} ({node.get('class_type', '?')})" if self._node else None
        await asyncio.shield(self.ctx.progress(fraction, label))

    async def _flush_later(self) -> None:
        await asyncio.sleep(self.flush_s)
        # From here on `close` waits for this write instead of cancelling it half-way.
        self._flusher = None
        await self.flush()

    async def flush(self) -> None:
        async with self._lock:
            if not self._buffer:
                return
            batch, self._buffer = self._buffer, []
            await asyncio.shield(self.ctx.output(MESSAGES_OUTPUT, {"messages": batch}))

    def flush_soon(self) -> None:
        """Hand the buffered messages to the worker's writer without waiting for the commit:
        the job's final status follows them in the same or a later batch."""
        if self._buffer:
            batch, self._buffer = self._buffer, []
            self.ctx.output_soon(MESSAGES_OUTPUT, {"messages": batch})

    async def close(self) -> None:
        """Write what is left (also when the prompt failed: the messages up to the failure)."""
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        await self.flush()


def relayed_messages(event_data: dict[str, Any]) -> list[Message]:
    """The ComfyUI messages in an `output` event written by `ProgressRelay` (else none)."""
    if event_data.get("name") != MESSAGES_OUTPUT:
        return []
    messages = event_data.get("messages")
    return [m for m in messages if isinstance(m, dict)] if isinstance(messages, list) else []
