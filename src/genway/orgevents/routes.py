"""`/v1/organizations/{org_id}/events`: every event of an organization, live over WebSocket or
Server-Sent Events (`/events/stream`), replayable after an event's `id` (the cursor), or read as
pages (`GET /events`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request, WebSocket
from fastapi.responses import StreamingResponse
from fastapi.websockets import WebSocketDisconnect
from pydantic import Field
from sqlalchemy import select

from genway.auth.deps import OrgContext, OrgReader, authenticate
from genway.auth.principal import AuthMethod
from genway.auth.service import ensure_org_active
from genway.auth.streams import StreamAccess, stream_access
from genway.db import SessionDep
from genway.errors import GenwayError, NotFound
from genway.jobs.legacy_routes import (
    WS_FORBIDDEN,
    WS_NOT_FOUND,
    WS_TOO_MANY,
    WS_UNAUTHORIZED,
    refuse,
    websocket_credential,
)
from genway.kit.schemas import MAX_ID, Id, ResponseModel
from genway.orgevents.stream import Cursor, OrgStream, parse_cursor, parse_types
from genway.orgevents.types import ORG_EVENT_TYPES
from genway.orgs.models import Membership, Organization
from genway.ratelimit.enforce import enforce_request_limits
from genway.realtime.guard import (
    GuardedStreamingResponse,
    StreamGuard,
    guarded,
    websocket_close_reason,
)

router = APIRouter(prefix="/v1/organizations/{org_id}/events", tags=["events"])

TYPES_DOC = "Comma-separated types or `*` patterns (`job.*`); known: " + ", ".join(ORG_EVENT_TYPES)
Types = Annotated[str | None, Query(max_length=500, description=TYPES_DOC)]
After = Annotated[
    str | None,
    Query(max_length=40, description="Replay events after this cursor (an event's `id`)"),
]


class OrgEventMessage(ResponseModel):
    id: str = Field(description="The cursor after this event: pass as `after` to resume")
    type: str
    job_id: Id | None = None
    seq: int | None = Field(default=None, description="The job event's number within its job")
    data: dict[str, Any]
    created_at: str


class OrgEventPage(ResponseModel):
    items: list[OrgEventMessage]
    next_cursor: str = Field(description="Pass as `after` for the events that follow")


def _stream(request: Request, context: OrgContext, types: str | None) -> OrgStream:
    state = request.app.state
    return OrgStream(
        state.db, state.broadcaster, context.org_id, context.user_id, parse_types(types)
    )


@router.get("", response_model=OrgEventPage)
async def list_events(
    request: Request,
    context: OrgReader,
    session: SessionDep,
    after: After = None,
    types: Types = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 100,
) -> OrgEventPage:
    """The organization's events after `after` (from the oldest kept when absent), oldest first."""
    stream = _stream(request, context, types)
    await session.close()
    items = await stream.page(parse_cursor(after) or Cursor(0, 0), limit)
    return OrgEventPage(
        items=[OrgEventMessage.model_validate(item) for item in items],
        next_cursor=str(stream.position),
    )


@router.get(
    "/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def stream_events(
    request: Request,
    context: OrgReader,
    session: SessionDep,
    after: After = None,
    types: Types = None,
    last_event_id: Annotated[str | None, Header(max_length=40)] = None,
) -> StreamingResponse:
    """Server-Sent Events: live events of the organization; with `Last-Event-ID` (or `after`)
    the ones after it first. Ends once the caller's credential stops granting access."""
    stream = _stream(request, context, types)
    start = parse_cursor(after if after is not None else last_event_id)
    await session.close()  # the stream may last hours; do not hold a connection for it
    guard = await request.app.state.streams.open(stream_access(request, context))

    async def body() -> AsyncIterator[str]:
        yield ": connected\n\n"
        async for wire in stream.events(start):
            if wire is None:
                yield ": keep-alive\n\n"
                continue
            message, data = wire
            yield f"id: {message['id']}\nevent: {message['type']}\ndata: {data}\n\n"

    return GuardedStreamingResponse(body(), guard)


@router.websocket("")
async def events_websocket(
    websocket: WebSocket,
    org_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    after: After = None,
    types: Types = None,
) -> None:
    """JSON messages of every event of the organization (`?after=` replays from a cursor,
    `?types=` filters). Credentials as for job streams (`Authorization`, `X-API-Key` or
    `?token=`); closes with 4401 (credentials), 4403 (suspended), 4404 (no such organization
    for the caller), 4422 (a bad `after` or `types`) or 4429 (rate limit, too many streams);
    an open socket closes with 4401 or 4403 once its credential stops granting access."""
    app = websocket.app
    try:
        access = await _org_stream_access(websocket, org_id)
    except GenwayError as exc:
        await refuse(websocket, _close_code(exc), websocket_close_reason(exc))
        return
    try:
        start, patterns = parse_cursor(after), parse_types(types)
    except GenwayError as exc:
        await refuse(websocket, 4422, str(exc.detail))
        return
    try:
        guard = await app.state.streams.open(access)
    except GenwayError as exc:
        await refuse(websocket, _close_code(exc), websocket_close_reason(exc))
        return
    try:
        await websocket.accept()
        await _relay(
            websocket,
            guard,
            OrgStream(
                app.state.db, app.state.broadcaster, org_id, access.principal.user_id, patterns
            ),
            start,
        )
    finally:
        await app.state.streams.close(guard)


def _close_code(exc: GenwayError) -> int:
    codes = {403: WS_FORBIDDEN, 404: WS_NOT_FOUND, 429: WS_TOO_MANY}
    return codes.get(exc.status_code, WS_UNAUTHORIZED)


async def _org_stream_access(websocket: WebSocket, org_id: int) -> StreamAccess:
    """Raises Unauthorized, Forbidden (suspended), NotFound, TooManyRequests."""
    app = websocket.app
    credential = websocket_credential(websocket)
    principal = await authenticate(websocket, credential, app.state.settings)
    if principal.method is AuthMethod.API_KEY:
        assert principal.key_org is not None
        org: Organization | None = principal.key_org if principal.key_org.id == org_id else None
    else:
        async with app.state.db.sessions() as session:
            org = await session.scalar(
                select(Organization)
                .join(Membership, Membership.org_id == Organization.id)
                .where(Organization.id == org_id, Membership.user_id == principal.user_id)
            )
    if org is None:
        raise NotFound(f"Organization {org_id} not found")
    ensure_org_active(org)
    await enforce_request_limits(websocket, org, principal.user_id)
    return StreamAccess(credential or "", principal, org)


async def _relay(
    websocket: WebSocket, guard: StreamGuard, stream: OrgStream, start: Cursor | None
) -> None:
    """Relay until the client leaves, or close once the caller's access is lost."""

    async def relay() -> None:
        async for wire in guarded(guard, stream.events(start)):
            if wire is None:
                await websocket.send_json({"type": "keepalive"})
                continue
            await websocket.send_text(wire[1])
        if guard.lost is not None:
            await websocket.close(code=guard.lost.code, reason=guard.lost.reason)

    async def until_closed() -> None:  # the client leaving ends the relay at once
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass

    tasks = {asyncio.create_task(relay()), asyncio.create_task(until_closed())}
    try:
        done, _pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in done:
        error = None if task.cancelled() else task.exception()
        if error is not None and not isinstance(error, WebSocketDisconnect):
            raise error
