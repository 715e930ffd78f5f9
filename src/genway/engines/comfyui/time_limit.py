"""The execution-time limit of a running prompt (`workflow_max_seconds` of the tier).

The clock starts when the backend starts executing the prompt (its first message about it:
`execution_start`, or any node's progress), not while the job waits in Genway's queue or in the
backend's own; while the prompt is followed by polling, the backend's `/queue` says when it runs.
It stops when the prompt ends on the backend, so storing the outputs is not counted.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from genway.engines.comfyui.client import ComfyUIClient, ComfyUIError
from genway.engines.comfyui.cost import LIMIT_EXCEEDED
from genway.engines.comfyui.protocol import (
    ExecutionStarted,
    ExecutionSucceeded,
    NodeExecuted,
    NodeExecuting,
    NodesCached,
    PreviewImage,
    Progress,
    ProgressState,
    ProgressText,
)
from genway.engines.comfyui.watch import FellBackToPolling, Finished
from genway.worker.context import JobFailed

EXECUTING = (
    ExecutionStarted,
    NodesCached,
    NodeExecuting,
    Progress,
    ProgressState,
    ProgressText,
    PreviewImage,
    NodeExecuted,
)
ENDED = (ExecutionSucceeded, Finished)


class ExecutionClock:
    """How long one prompt has executed on its backend; `limit_s` None: no limit."""

    def __init__(self, limit_s: float | None, tier: str, poll_interval_s: float) -> None:
        self.limit_s = limit_s
        self.tier = tier
        self.poll_interval_s = poll_interval_s
        self.polling = False
        self._started = asyncio.Event()
        self._ended = asyncio.Event()

    def saw(self, event: Any) -> None:
        """Note an event of the prompt's stream."""
        if isinstance(event, EXECUTING):
            self._started.set()
        elif isinstance(event, ENDED):
            self._started.set()
            self._ended.set()
        elif isinstance(event, FellBackToPolling):
            self.polling = True

    async def run_out(self, client: ComfyUIClient, prompt_id: str) -> None:
        """Return once the prompt has executed for `limit_s`; never when it ends sooner, or
        without a limit."""
        if self.limit_s is not None:
            await self._until_started(client, prompt_id)
            try:
                await asyncio.wait_for(self._ended.wait(), self.limit_s)
            except TimeoutError:
                return
        await asyncio.Event().wait()  # no limit, or the prompt ended in time

    async def _until_started(self, client: ComfyUIClient, prompt_id: str) -> None:
        while not self._started.is_set():
            if self.polling and await _running(client, prompt_id):
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._started.wait(), self.poll_interval_s)

    def exceeded(self) -> JobFailed:
        """The job's failure once the clock ran out (and the prompt was interrupted)."""
        message = (
            f"The workflow executed for longer than this organization's limit of "
            f"{self.limit_s:g} s (workflow_max_seconds, {self.tier} tier) and was interrupted "
            "on the ComfyUI backend"
        )
        details = {"limit": "workflow_max_seconds", "maximum": self.limit_s, "tier": self.tier}
        return JobFailed(LIMIT_EXCEEDED, message, details=details)


async def _running(client: ComfyUIClient, prompt_id: str) -> bool:
    try:
        queue = await client.queue()
    except ComfyUIError:
        return False
    return any(item.prompt_id == prompt_id for item in queue.running)
