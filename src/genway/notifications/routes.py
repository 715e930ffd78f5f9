"""`/v1/users/me/notifications` and `/v1/users/me/notification-preferences`: the caller's own.

Through an API key the caller sees the notifications of the key's organization only; through a
login, all of theirs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from genway.auth.deps import CurrentPrincipal
from genway.db import SessionDep
from genway.notifications import service
from genway.notifications.schemas import (
    NotificationPage,
    NotificationPreferences,
    NotificationPreferencesUpdate,
    NotificationResponse,
    ReadAllResponse,
)

router = APIRouter(prefix="/v1/users/me", tags=["notifications"])

NotificationId = Annotated[int, Path(ge=1, le=service.MAX_ID)]


async def current_reader(principal: CurrentPrincipal) -> service.Reader:
    org = principal.key_org
    return service.Reader(principal.user_id, org.id if org is not None else None)


ReaderDep = Annotated[service.Reader, Depends(current_reader)]


@router.get("/notifications", response_model=NotificationPage)
async def list_notifications(
    reader: ReaderDep,
    session: SessionDep,
    unread: Annotated[bool, Query(description="Only unread notifications")] = False,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> NotificationPage:
    """Unread first, then newest first."""
    items, next_cursor, unread_count = await service.list_notifications(
        session, reader, unread_only=unread, cursor=cursor, limit=limit
    )
    return NotificationPage(
        items=[NotificationResponse.model_validate(n) for n in items],
        next_cursor=next_cursor,
        unread_count=unread_count,
    )


@router.post("/notifications/read-all", response_model=ReadAllResponse)
async def mark_all_read(reader: ReaderDep, session: SessionDep) -> ReadAllResponse:
    return ReadAllResponse(marked=await service.mark_all_read(session, reader))


@router.post("/notifications/{notification_id}/read", response_model=NotificationResponse)
async def mark_read(
    notification_id: NotificationId, reader: ReaderDep, session: SessionDep
) -> NotificationResponse:
    notification = await service.mark_read(session, reader, notification_id)
    return NotificationResponse.model_validate(notification)


@router.get("/notification-preferences", response_model=NotificationPreferences)
async def get_preferences(
    principal: CurrentPrincipal, session: SessionDep
) -> NotificationPreferences:
    return await service.get_preferences(session, principal.user_id)


@router.put("/notification-preferences", response_model=NotificationPreferences)
async def replace_preferences(
    body: NotificationPreferences, principal: CurrentPrincipal, session: SessionDep
) -> NotificationPreferences:
    """Set every preference; omitted ones take their defaults."""
    return await service.replace_preferences(session, principal.user_id, body)


@router.patch("/notification-preferences", response_model=NotificationPreferences)
async def update_preferences(
    body: NotificationPreferencesUpdate, principal: CurrentPrincipal, session: SessionDep
) -> NotificationPreferences:
    """Change the preferences given; the others keep their values."""
    changes = body.model_dump(exclude_unset=True)
    return await service.update_preferences(session, principal.user_id, changes)
