"""Notifications and preferences of the calling user, and notifying users from other domains
(`notify_org_admins`, `notify_users`)."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from genway.db import utcnow
from genway.errors import InvalidInput, NotFound
from genway.notifications import delivery
from genway.notifications.models import Notification, NotificationKind, NotificationPreference
from genway.notifications.schemas import NotificationPreferences

MAX_ID = 2**31 - 1  # ids are 32-bit integers


class NotificationNotFound(NotFound):
    detail = "Notification not found"


@dataclass(frozen=True)
class Reader:
    """Whose notifications a request sees: a user's, only one organization's through an API
    key (a key is bound to its organization)."""

    user_id: int
    org_id: int | None = None


def _owned(reader: Reader) -> ColumnElement[bool]:
    where = Notification.user_id == reader.user_id
    if reader.org_id is not None:
        where = and_(where, Notification.org_id == reader.org_id)
    return where


def _readable(reader: Reader) -> Select[Notification]:
    return select(Notification).where(_owned(reader))


async def notify_org_admins(
    session: AsyncSession,
    org_id: int,
    kind: NotificationKind | str,
    title: str,
    body: str,
    data: dict[str, Any],
) -> None:
    """Notify the organization's owners and admins (in-app, and by email as each prefers) in
    the session's transaction. Raises ValueError for an unknown kind."""
    kind = NotificationKind(kind)

    def notify(sync: Session) -> None:
        recipients = delivery.org_admins(sync, org_id, kind.category)
        delivery.deliver(sync, org_id, recipients, kind, title, body, data)

    await session.run_sync(notify)


async def notify_users(
    session: AsyncSession,
    org_id: int,
    user_ids: Sequence[int],
    kind: NotificationKind,
    title: str,
    body: str,
    data: dict[str, Any],
) -> None:
    """Notify these users (in-app, and by email as each prefers) in the session's transaction."""

    def notify(sync: Session) -> None:
        recipients = delivery.users(sync, user_ids, kind.category)
        delivery.deliver(sync, org_id, recipients, kind, title, body, data)

    await session.run_sync(notify)


async def list_notifications(
    session: AsyncSession, reader: Reader, *, unread_only: bool, cursor: str | None, limit: int
) -> tuple[Sequence[Notification], str | None, int]:
    """Unread first, then newest first: (a page, the cursor of the next one, the unread count).
    Raises InvalidInput for a cursor this API did not issue."""
    query = (
        _readable(reader)
        .order_by(Notification.read_at.is_(None).desc(), Notification.id.desc())
        .limit(limit + 1)
    )
    if unread_only:
        query = query.where(Notification.read_at.is_(None))
    if cursor is not None:
        query = query.where(_after(*decode_cursor(cursor)))
    rows = (await session.scalars(query)).all()
    next_cursor = encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    unread = await session.scalar(
        select(func.count(Notification.id)).where(_owned(reader), Notification.read_at.is_(None))
    )
    return rows[:limit], next_cursor, int(unread or 0)


def _after(unread: bool, last_id: int) -> ColumnElement[bool]:
    """What follows the last item seen in (unread first, newest first) order."""
    if unread:
        return or_(
            and_(Notification.read_at.is_(None), Notification.id < last_id),
            Notification.read_at.is_not(None),
        )
    return and_(Notification.read_at.is_not(None), Notification.id < last_id)


def encode_cursor(last: Notification) -> str:
    text = f"n:{'u' if last.read_at is None else 'r'}:{last.id}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[bool, int]:
    """(whether the last item seen was unread, its id). Raises InvalidInput."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, state, value = text.split(":")
        last_id = int(value)
        if prefix != "n" or state not in ("u", "r") or not 0 < last_id <= MAX_ID:
            raise ValueError(cursor)
        return state == "u", last_id
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput("Invalid cursor") from exc


async def mark_read(session: AsyncSession, reader: Reader, notification_id: int) -> Notification:
    """Mark one notification read (a read one keeps its time). Raises NotificationNotFound."""
    notification = await session.scalar(_readable(reader).where(Notification.id == notification_id))
    if notification is None:
        raise NotificationNotFound(f"Notification {notification_id} not found")
    if notification.read_at is None:
        notification.read_at = utcnow()
        await session.flush()
    return notification


async def mark_all_read(session: AsyncSession, reader: Reader) -> int:
    """Mark every unread notification read; returns how many were."""
    result = await session.execute(
        update(Notification)
        .where(_owned(reader), Notification.read_at.is_(None))
        .values(read_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def get_preferences(session: AsyncSession, user_id: int) -> NotificationPreferences:
    row = await session.get(NotificationPreference, user_id, populate_existing=True)
    if row is None:
        return NotificationPreferences()
    return NotificationPreferences.model_validate(
        {name: getattr(row, name) for name in NotificationPreferences.model_fields}
    )


async def replace_preferences(
    session: AsyncSession, user_id: int, preferences: NotificationPreferences
) -> NotificationPreferences:
    """Set every preference of the user."""
    values = preferences.model_dump()
    await _upsert(session, user_id, values, values)
    return preferences


async def update_preferences(
    session: AsyncSession, user_id: int, changes: dict[str, bool]
) -> NotificationPreferences:
    """Change some preferences of the user (atomically: a concurrent change of others is
    kept); the others keep their values."""
    if changes:
        await _upsert(session, user_id, {**delivery.DEFAULTS, **changes}, changes)
    return await get_preferences(session, user_id)


async def _upsert(
    session: AsyncSession, user_id: int, new: dict[str, bool], changes: dict[str, bool]
) -> None:
    dialect = session.bind.dialect.name  # type: ignore[union-attr]
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = insert(NotificationPreference).values(user_id=user_id, updated_at=utcnow(), **new)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[NotificationPreference.user_id],
            set_={**changes, "updated_at": statement.excluded.updated_at},
        )
    )
