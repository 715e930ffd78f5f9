"""Running one attempt of a ComfyUI job on one backend, and what each outcome means for the job.

No healthy backend: the job goes back to the queue without spending an attempt. A backend that
dies or forgets the prompt: it leaves the pool until it answers again and the job is retried on
another one (attempt + 1). Rejected workflows and node failures are the job's own outcome. A
cancelled job is removed from the backend's queue or interrupted there, and ends at once; so is
one that executes longer than its tier allows, which then fails with `limit_exceeded`.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

import structlog

from genway.engines.comfyui import messages
from genway.engines.comfyui.admission import Admitted, WorkflowRefused, admit
from genway.engines.comfyui.client import (
    BackendUnavailable,
    ComfyUIClient,
    ComfyUIError,
    ExecutionFailed,
    FellBackToPolling,
    Finished,
    Interrupted,
    NodeErrors,
    SubmittedPrompt,
    UnexpectedResponse,
)
from genway.engines.comfyui.cost import LIMIT_EXCEEDED, WorkflowOverLimit, admit_cost
from genway.engines.comfyui.inputs import BackendFiles, stage
from genway.engines.comfyui.node_policy import Catalogue
from genway.engines.comfyui.outputs import OutputCollector
from genway.engines.comfyui.protocol import ExecutionSucceeded, NodeExecuted
from genway.engines.comfyui.redaction import redact_message, redact_node_errors
from genway.engines.comfyui.relay import ProgressRelay
from genway.engines.comfyui.runtime import ComfyUIEngine
from genway.engines.comfyui.time_limit import ExecutionClock
from genway.engines.comfyui.workflows import Workflow
from genway.jobs.models import Job
from genway.worker.context import (
    JobCancelled,
    JobContext,
    JobDeferred,
    JobFailed,
    RetryableJobError,
)

log = structlog.get_logger("genway.engines.comfyui")

UPSTREAM_CANCEL_TIMEOUT_S = 5.0
ERASE_TIMEOUT_S = 10.0


class PromptExecution:
    def __init__(
        self,
        job: Job,
        ctx: JobContext,
        engine: ComfyUIEngine,
        prompt_id: str,
        extra_data: dict[str, Any],
    ) -> None:
        self.job, self.ctx, self.engine = job, ctx, engine
        self.prompt_id = prompt_id
        self.extra_data = extra_data
        # One socket per attempt: ComfyUI routes messages by client_id, and a second socket
        # with the same id would silently take them over.
        self.client_id = f"genway-{job.id}-{ctx.attempt}-{uuid.uuid4().hex[:8]}"
        self.clock = ExecutionClock(None, "", engine.settings.comfyui_poll_interval_s)

    async def run(self, workflow: Workflow, explicit_inputs: dict[str, int]) -> dict[str, Any]:
        """The job's result. Raises JobDeferred, JobCancelled, JobFailed, RetryableJobError."""
        engine = self.engine
        await engine.wait_checked(engine.pool.check_timeout + 1)
        paused = await engine.paused_backend_urls()
        backend = engine.pick(exclude=paused)
        if backend is None:
            reason = "no healthy ComfyUI backend" + (" that is not paused" if paused else "")
            raise JobDeferred(reason, engine.retry_delay_s())
        catalogue = await engine.catalogue(backend)
        if catalogue is None:
            raise JobDeferred("the ComfyUI backend did not describe its nodes", 1.0)
        admitted = await self._admit(workflow, explicit_inputs, catalogue)
        log.info(
            "comfyui_submit", job_id=self.job.id, backend=backend.url, attempt=self.ctx.attempt
        )
        engine.pool.note_submitted(backend.url)
        files = BackendFiles(self.prompt_id)
        succeeded = False
        try:
            result = await self._attempt(backend.client, workflow, admitted, files)
            succeeded = True
            return result
        except BackendUnavailable as exc:
            engine.pool.mark_unhealthy(backend.url, exc.reason)
            raise RetryableJobError(
                "backend_unavailable",
                f"The ComfyUI backend became unavailable ({exc.reason}); retrying on another",
            ) from exc
        finally:
            engine.pool.note_finished(backend.url)
            # After the job's end, off its path: the result does not wait for the erasing.
            engine.in_background(self._erase(backend.client, files, look_up=not succeeded))

    async def _admit(
        self, workflow: Workflow, explicit_inputs: dict[str, int], catalogue: Catalogue
    ) -> Admitted:
        """The tier's cost limits (as they are now) and the file policy, against the catalogue
        of the backend that will run the job; sets the execution clock's limit."""
        try:
            async with self.ctx.worker.database.transaction() as session:
                tier, limits = await admit_cost(session, self.job.org_id, workflow, catalogue)
                admitted = await admit(
                    session,
                    self.job.org_id,
                    workflow,
                    explicit_inputs,
                    catalogue,
                    self.engine.policy,
                )
        except WorkflowOverLimit as exc:
            raise JobFailed(LIMIT_EXCEEDED, exc.message, details=exc.details()) from exc
        except WorkflowRefused as exc:
            message = "The workflow was refused: " + _first_problem(exc.node_errors)
            raise JobFailed("node_errors", message, details=exc.node_errors) from exc
        self.clock.limit_s, self.clock.tier = limits.workflow_max_seconds, tier
        return admitted

    async def _erase(self, client: ComfyUIClient, files: BackendFiles, look_up: bool) -> None:
        """Erase the attempt's files from the backend; after a failure, also the outputs the
        backend wrote that Genway never saw (read from its history)."""
        with contextlib.suppress(ComfyUIError, TimeoutError):
            async with asyncio.timeout(ERASE_TIMEOUT_S):
                if look_up and (entry := await client.history(self.prompt_id)) is not None:
                    files.add(entry.images)
                await files.erase(client)

    async def _attempt(
        self, client: ComfyUIClient, workflow: Workflow, admitted: Admitted, files: BackendFiles
    ) -> dict[str, Any]:
        outputs = OutputCollector(
            self.job, self.ctx.worker.database, self.engine.store, client, files
        )
        if self.ctx.attempt > 1:
            await outputs.forget_earlier_attempts()
        try:
            staged = await stage(client, self.engine.store, workflow, admitted, files)
            return await self._follow(client, staged, outputs)
        except NodeErrors as exc:
            details = redact_node_errors(exc.node_errors)
            raise JobFailed("node_errors", redact_message(exc.summary()), details=details) from exc
        except ExecutionFailed as exc:
            message = redact_message(exc.exception_message)
            details = {
                "node_id": exc.node_id,
                "node_type": exc.node_type,
                "message": message,
                "exception_type": exc.exception_type,
            }
            text = f"{exc.node_type} (node {exc.node_id}) failed: {message}"
            raise JobFailed("execution_error", text, details=details) from exc
        except Interrupted as exc:
            if self.ctx.cancelled.is_set():
                raise JobCancelled from exc
            raise JobFailed(
                "interrupted", "The prompt was interrupted on the ComfyUI server"
            ) from exc
        except UnexpectedResponse as exc:
            raise JobFailed("comfyui_error", redact_message(str(exc))[:1000]) from exc

    async def _follow(
        self, client: ComfyUIClient, workflow: Workflow, outputs: OutputCollector
    ) -> dict[str, Any]:
        stream = asyncio.create_task(self._consume(client, workflow, outputs))
        cancelled = asyncio.create_task(self.ctx.cancelled.wait())
        overtime = asyncio.create_task(self.clock.run_out(client, self.prompt_id))
        try:
            done, _pending = await asyncio.wait(
                {stream, cancelled, overtime}, return_when=asyncio.FIRST_COMPLETED
            )
        except asyncio.CancelledError:
            # Timeout, shutdown or a lost lease: do not leave the prompt running upstream.
            await self._abandon(client, stream)
            raise
        finally:
            cancelled.cancel()
            overtime.cancel()
        if stream.done():
            return stream.result()
        await self._abandon(client, stream)
        if overtime in done and not self.ctx.cancelled.is_set():
            overtime.result()  # a failure of the clock itself is not the limit
            raise self.clock.exceeded()
        raise JobCancelled

    async def _abandon(self, client: ComfyUIClient, stream: asyncio.Task[Any]) -> None:
        stream.cancel()
        await asyncio.wait({stream}, timeout=UPSTREAM_CANCEL_TIMEOUT_S)
        with contextlib.suppress(ComfyUIError, TimeoutError):
            async with asyncio.timeout(UPSTREAM_CANCEL_TIMEOUT_S):
                await client.cancel(self.prompt_id)

    async def _consume(
        self, client: ComfyUIClient, workflow: Workflow, outputs: OutputCollector
    ) -> dict[str, Any]:
        relay = ProgressRelay(self.ctx, self.prompt_id, workflow)
        dropped: dict[str, Any] = {}
        wrapping_up: asyncio.Task[None] | None = None
        try:
            run = client.run(workflow, self.client_id, self.prompt_id, extra_data=self.extra_data)
            async for event in run:
                self.clock.saw(event)
                if isinstance(event, SubmittedPrompt):
                    dropped = dict(event.node_errors)
                elif isinstance(event, FellBackToPolling):
                    message = "Lost the ComfyUI WebSocket; following the prompt by polling"
                    await asyncio.shield(self.ctx.log(message))
                elif isinstance(event, NodeExecuted):
                    outputs.node_executed(event.node, event.output, self._announcer(relay, event))
                elif isinstance(event, ExecutionSucceeded):
                    # Store the last outputs while the backend writes its history.
                    wrapping_up = asyncio.create_task(outputs.settle())
                elif isinstance(event, Finished):
                    if wrapping_up is not None:
                        await wrapping_up
                    # The last messages go with the job's end, in one write: not a commit of
                    # their own on the image's path.
                    relay.flush_soon()
                    await outputs.finished(event.history)
                    result = outputs.result(self.prompt_id)
                    return {**result, "node_errors": dropped} if dropped else result
                else:
                    await relay.on_event(event)
        finally:
            await relay.close()
        raise JobFailed("comfyui_error", "The ComfyUI event stream ended without a result")

    def _announcer(self, relay: ProgressRelay, event: NodeExecuted) -> Any:
        def stored(ui: dict[str, Any]) -> None:
            relay.add(messages.executed(self.prompt_id, event.node, ui))

        return stored


def _first_problem(node_errors: dict[str, Any]) -> str:
    for node_id, entry in node_errors.items():
        for error in entry.get("errors", []):
            return f"node {node_id} ({entry.get('class_type', '?')}): {error.get('details', '')}"
    return "refused"
