"""ComfyUI's WebSocket, `/ws?clientId=`, fed by Genway's job events.

A socket hears the caller's organization's prompts: those submitted with its `clientId` (or
without any, as ComfyUI broadcasts those) get their relayed backend messages (`execution_start`,
`executing`, `progress`, `progress_state`, `executed` with Genway's file names...). The end of a
prompt is Genway's own: `execution_success` (or `execution_error` / `execution_interrupted`),
then `status`, then `executing` with `node: null`, sent only once the job has ended, so a client
that reads `/history` on any of them finds the entry. `status` counts the organization's queued
and running prompts, so clients that stop at `queue_remaining == 0` stop at the right time.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, WebSocket
from fastapi.websockets import WebSocketDisconnect

from genway.auth.permissions import Action
from genway.auth.streams import StreamAccess
from genway.compat.comfyui.deps import compat_credential, compat_org_context, compat_principal
from genway.engines.comfyui import messages, prompts
from genway.engines.comfyui.feed import FeedUpdate
from genway.engines.comfyui.job_inputs import client_id_of, prompt_id_of
from genway.engines.comfyui.relay import relayed_messages
from genway.engines.comfyui.runtime import ComfyUIEngine
from genway.errors import GenwayError
from genway.jobs.events import EventType
from genway.jobs.legacy_routes import refuse
from genway.jobs.models import Job
from genway.jobs.states import JobStatus
from genway.realtime.guard import StreamGuard, websocket_close_reason
from genway.realtime.streams import job_event_stream

router = APIRouter(tags=["ComfyUI-compatible"])

MAX_FOLLOWED = 200


class PromptRelay:
    """One client socket: follows the organization's prompts and writes ComfyUI messages."""

    def __init__(self, websocket: WebSocket, guard: StreamGuard, sid: str) -> None:
        self.websocket, self.guard, self.sid = websocket, guard, sid
        self.org_id = guard.access.org_id
        state = websocket.app.state
        self.database, self.broadcaster = state.db, state.broadcaster
        self.engine: ComfyUIEngine = state.comfyui
        self.outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.followers: dict[int, asyncio.Task[None]] = {}
        self.seen: set[int] = set()
        self.remaining = -1

    async def run(self) -> None:
        # Subscribe before reading the starting point, so no prompt queued in between is missed.
        async with self.engine.prompts.subscribe(self.org_id) as updates:
            async with self.database.sessions() as session:
                active = await prompts.active_prompts(session, self.org_id)
            await self._send_status(len(active), sid=self.sid)
            for job in active:
                self._follow(job, after=job.last_event_seq)  # like ComfyUI: no replay on connect
            tasks = [
                asyncio.create_task(self._send_loop()),
                asyncio.create_task(self._receive_loop()),
                asyncio.create_task(self._feed_loop(updates)),
                asyncio.create_task(self.guard.until_lost()),
            ]
            try:
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in [*tasks, *self.followers.values()]:
                    task.cancel()
                await asyncio.gather(*tasks, *self.followers.values(), return_exceptions=True)
        if self.guard.lost is not None:
            with contextlib.suppress(WebSocketDisconnect, RuntimeError):
                lost = self.guard.lost
                await self.websocket.close(code=lost.code, reason=lost.reason)

    async def _send_loop(self) -> None:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            while True:
                message = await self.outbox.get()
                # Nothing leaves once a revocation this process heard of is in effect.
                if self.guard.stale and await self.guard.check() is not None:
                    return
                await self.websocket.send_json(message)

    async def _receive_loop(self) -> None:
        # Clients may send messages (ComfyUI's frontend announces feature flags); none matter.
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            while (await self.websocket.receive())["type"] != "websocket.disconnect":
                pass

    async def _feed_loop(self, updates: asyncio.Queue[FeedUpdate]) -> None:
        while True:
            update = await updates.get()
            for job in update.new_prompts:
                self._follow(job, after=0)
            await self._send_status(update.queue_remaining)

    async def _send_status(
        self, remaining: int, sid: str | None = None, *, always: bool = False
    ) -> None:
        if remaining != self.remaining or sid is not None or always:
            self.remaining = remaining
            await self.outbox.put(messages.status(remaining, sid))

    def _follow(self, job: Job, after: int) -> None:
        if job.id in self.seen or client_id_of(job) not in (None, self.sid):
            return
        self.seen.add(job.id)
        if len(self.followers) < MAX_FOLLOWED:
            task = asyncio.create_task(self._relay(job.id, prompt_id_of(job), after))
            self.followers[job.id] = task

    async def _relay(self, job_id: int, prompt_id: str, after: int) -> None:
        try:
            stream = job_event_stream(self.database, self.broadcaster, job_id, self.org_id, after)
            async for event in stream:
                if event is None:
                    continue
                if event["type"] == EventType.OUTPUT:
                    for message in relayed_messages(event["data"]):
                        await self.outbox.put(message)
                elif event["type"] == EventType.STATUS:
                    await self._on_status(prompt_id, event["data"])
        finally:
            self.followers.pop(job_id, None)

    async def _on_status(self, prompt_id: str, data: dict[str, Any]) -> None:
        status = JobStatus(data["status"])
        if not status.is_terminal:
            return
        if status == JobStatus.SUCCEEDED:
            await self.outbox.put(messages.execution_success(prompt_id))
        elif status == JobStatus.CANCELLED:
            await self.outbox.put(messages.execution_interrupted(prompt_id))
        else:
            await self.outbox.put(messages.execution_error(prompt_id, data.get("error")))
        async with self.database.sessions() as session:
            remaining = await prompts.queue_remaining(session, self.org_id)
        # ComfyUI always says `status` between a prompt's end and `executing` with no node,
        # even when the feed already told this socket the same count.
        await self._send_status(remaining, always=True)
        await self.outbox.put(messages.execution_finished(prompt_id))
        self.engine.prompts.notify(self.org_id)  # the organization's other sockets recount


def _organization_header(websocket: WebSocket) -> int | None:
    value = websocket.headers.get("x-organization-id", "")
    return int(value) if value.isdigit() else None


async def comfy_websocket(
    websocket: WebSocket, client_id: Annotated[str | None, Query(alias="clientId")] = None
) -> None:
    """ComfyUI's `/ws`: credentials in a header (Bearer, X-API-Key, Basic) or `?token=`;
    refused with close code 4401 (credentials), 4403 (forbidden) or 4429 (rate limit, too many
    streams); closed with 4401 or 4403 once the credential stops granting access."""
    streams = websocket.app.state.streams
    try:
        principal = await compat_principal(websocket)
        async with websocket.app.state.db.sessions() as session:
            context = await compat_org_context(
                websocket, session, principal, _organization_header(websocket), Action.READ
            )
        access = StreamAccess(compat_credential(websocket) or "", principal, context.org)
        guard = await streams.open(access)
    except GenwayError as exc:
        await refuse(websocket, 4000 + exc.status_code, websocket_close_reason(exc))
        return
    try:
        await websocket.accept()
        sid = (client_id or "").strip()[:256] or uuid.uuid4().hex
        await PromptRelay(websocket, guard, sid).run()
    finally:
        await streams.close(guard)


router.add_api_websocket_route("/ws", comfy_websocket)
