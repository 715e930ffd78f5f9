"""How the fake ComfyUI executes one queued prompt and what it tells the submitting client.

Message order follows the recorded server (and ComfyUI's execution.py/main.py): `execution_start`,
`execution_cached`, then per node `progress_state` (running), `executing`, per sampler step
`progress_state` + `progress` (+ a binary preview), `executed` for output nodes, `progress_state`
(finished); then `execution_success`, or `execution_error` / `execution_interrupted` at the
failing node; the history entry is written, a `status` frame is broadcast, and `executing` with
`node: null` ends the prompt. Interrupts take effect between nodes and between sampler steps.
"""

from __future__ import annotations

import asyncio
import io
import struct
import time
import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from PIL import Image

from tests.fakes.comfyui_nodes import NodeFailure, NodeSpec
from tests.fakes.comfyui_prompt import QueueItem, execution_order, signature

if TYPE_CHECKING:
    from tests.fakes.comfyui import FakeComfyUI

PREVIEW_IMAGE = 1
PNG_FORMAT = 2


@dataclass
class InjectedFailure:
    """A failure a test asked for: raised in `node_id` (default: the prompt's last node)."""

    message: str
    exception_type: str
    node_id: str | None


class _Interrupted(Exception):
    def __init__(self, node_id: str) -> None:
        self.node_id = node_id


class PromptRun:
    """One execution of one queued prompt on one fake."""

    def __init__(self, fake: FakeComfyUI, item: QueueItem) -> None:
        self.fake, self.item = fake, item
        self.client_id: str | None = item.extra_data.get("client_id")
        self.messages: list[list[Any]] = []
        self.outputs: dict[str, Any] = {}
        self.meta: dict[str, Any] = {}
        self.executed: list[str] = []
        self.progress: dict[str, dict[str, Any]] = {}
        self.values: dict[str, tuple[Any, ...]] = {}
        self.current = ""

    async def execute(self) -> None:
        """Run the prompt to success, error or interruption and record it in `/history`."""
        fake, prompt_id = self.fake, self.item.prompt_id
        fake.interrupt_requested = False
        fake.executing_client = self.client_id
        await self._message("execution_start", {"prompt_id": prompt_id})
        order = execution_order(self.item.prompt, self.item.outputs)
        cached = [node_id for node_id in order if self._cached(node_id) is not None]
        await self._message("execution_cached", {"nodes": cached, "prompt_id": prompt_id})
        weights = [self._spec(node_id).weight for node_id in order if node_id not in cached]
        unit = fake.execution_time / max(1, sum(weights))
        success = False
        try:
            for node_id in order:
                await self._run_node(node_id, unit, order[-1])
            success = True
        except _Interrupted as stop:
            await self._message("execution_interrupted", self._failure(stop.node_id), True)
        except Exception as exc:
            await self._message("execution_error", self._error_report(exc))
        if success:
            await self._message("execution_success", {"prompt_id": prompt_id})
        fake.history[prompt_id] = {
            "prompt": self.item.as_list(),
            "outputs": self.outputs,
            "status": {
                "status_str": "success" if success else "error",
                "completed": success,
                "messages": self.messages,
            },
            "meta": self.meta,
        }
        fake.running, fake.last_node_id = None, None
        await fake.broadcast_status()
        if self.client_id is not None:
            await fake.send("executing", {"node": None, "prompt_id": prompt_id}, self.client_id)

    async def _message(self, event: str, data: dict[str, Any], broadcast: bool = False) -> None:
        data = {**data, "timestamp": int(time.time() * 1000)}
        self.messages.append([event, data])
        if self.client_id is not None or broadcast:
            await self.fake.send(event, data, self.client_id)

    def _cached(self, node_id: str) -> tuple[Any, ...] | None:
        fake, prompt = self.fake, self.item.prompt
        # Output nodes always run again (and write a new file), as the recorded server did.
        if not fake.caching or fake.catalogue[prompt[node_id]["class_type"]].output_node:
            return None
        return fake.cache.get(signature(prompt, node_id, fake.catalogue, fake.folders))

    def _failure(self, node_id: str) -> dict[str, Any]:
        return {
            "prompt_id": self.item.prompt_id,
            "node_id": node_id,
            "node_type": self.item.prompt[node_id]["class_type"],
            "executed": list(self.executed),
        }

    def _error_report(self, exc: Exception) -> dict[str, Any]:
        inputs = self._resolve(self.item.prompt[self.current]["inputs"])
        current = {
            name: [value if isinstance(value, int | float | str) or value is None else str(value)]
            for name, value in inputs.items()
        }
        return {
            **self._failure(self.current),
            "exception_message": str(exc),
            "exception_type": getattr(exc, "exception_type", type(exc).__qualname__),
            "traceback": traceback.format_tb(exc.__traceback__),
            "current_inputs": current,
            "current_outputs": [*self.values, self.current],
        }

    def _resolve(self, inputs: dict[str, Any]) -> dict[str, Any]:
        resolved = {}
        for name, value in inputs.items():
            linked = isinstance(value, list) and len(value) == 2 and value[0] in self.values
            resolved[name] = self.values[value[0]][value[1]] if linked else value
        return resolved

    def _spec(self, node_id: str) -> NodeSpec:
        return self.fake.catalogue[self.item.prompt[node_id]["class_type"]]

    async def _run_node(self, node_id: str, unit: float, last: str) -> None:
        fake, prompt_id, prompt = self.fake, self.item.prompt_id, self.item.prompt
        cached = self._cached(node_id)
        if cached is not None:
            self.values[node_id] = cached
            self.executed.append(node_id)
            return
        spec = self._spec(node_id)
        self.current = node_id
        await self._progress(node_id, 0.0, 1.0, "running")
        if self.client_id is not None:
            fake.last_node_id = node_id
            executing = {"node": node_id, "display_node": node_id, "prompt_id": prompt_id}
            await fake.send("executing", executing, self.client_id)
        self._check_interrupt(node_id)
        self._raise_injected(node_id, last)
        inputs = self._resolve(prompt[node_id]["inputs"])
        steps = fake.steps or (int(inputs[spec.progress_input]) if spec.progress_input else 0)
        await self._compute(node_id, steps, unit * spec.weight)
        result = spec.run(inputs, fake.folders)
        self.values[node_id] = result.outputs
        if fake.caching and not spec.output_node:
            fake.cache[signature(prompt, node_id, fake.catalogue, fake.folders)] = result.outputs
        self.executed.append(node_id)
        if result.ui is not None:
            self.outputs[node_id] = result.ui
            self.meta[node_id] = {
                "node_id": node_id,
                "display_node": node_id,
                "parent_node": None,
                "real_node_id": node_id,
            }
            if self.client_id is not None:
                executed = {"node": node_id, "display_node": node_id, "output": result.ui}
                await fake.send("executed", {**executed, "prompt_id": prompt_id}, self.client_id)
        done = float(steps) if steps else 1.0
        await self._progress(node_id, done, done, "finished")

    async def _compute(self, node_id: str, steps: int, share: float) -> None:
        if not steps:
            await asyncio.sleep(share)
            return
        for step in range(1, steps + 1):
            await asyncio.sleep(share / steps)
            # KSampler's progress hook checks for an interrupt at every step, inside the node.
            self._check_interrupt(node_id)
            await self._progress(node_id, step, steps, "running")
            progress = {"value": step, "max": steps, "prompt_id": self.item.prompt_id}
            await self.fake.send("progress", {**progress, "node": node_id}, self.client_id)
            if self.fake.send_previews:
                preview = struct.pack(">I", PNG_FORMAT) + _preview_png(step)
                await self.fake.send(PREVIEW_IMAGE, preview, self.client_id)

    async def _progress(self, node_id: str, value: float, top: float, state: str) -> None:
        self.progress[node_id] = {"value": value, "max": top, "state": state}
        prompt_id = self.item.prompt_id
        nodes = {
            key: {
                **entry,
                "node_id": key,
                "prompt_id": prompt_id,
                "display_node_id": key,
                "parent_node_id": None,
                "real_node_id": key,
            }
            for key, entry in self.progress.items()
        }
        await self.fake.send(
            "progress_state", {"prompt_id": prompt_id, "nodes": nodes}, self.client_id
        )

    def _check_interrupt(self, node_id: str) -> None:
        if self.fake.interrupt_requested:
            self.fake.interrupt_requested = False
            raise _Interrupted(node_id)

    def _raise_injected(self, node_id: str, last: str) -> None:
        failure = self.fake.next_execution_failure
        if failure is not None and node_id == (failure.node_id or last):
            self.fake.next_execution_failure = None
            raise NodeFailure(failure.message, failure.exception_type)


def _preview_png(step: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (step * 10 % 256, 0, 0)).save(buffer, format="PNG")
    return buffer.getvalue()
