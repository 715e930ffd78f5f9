"""Recording a notification for its recipients: one row each (in-app), a `notification.new`
event each, and the emails they want, queued on the transaction.

Synchronous on purpose: the job-failure hook runs inside a commit (`hooks.py`), where nothing
can be awaited; async callers go through `AsyncSession.run_sync`. Emails wait on the session
until its commit, when the runtime's hook writes them to the outbox, or drops them when no SMTP
server is configured (`hooks.py`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, func, insert, literal, select
from sqlalchemy.orm import Session

from genway.auth.permissions import Role
from genway.db import utcnow
from genway.notifications.models import (
    Category,
    EmailStatus,
    NotificationKind,
    NotificationPreference,
    notifications_table,
)
from genway.notifications.schemas import NotificationPreferences, NotificationResponse
from genway.orgevents.emit import record_org_events
from genway.orgevents.types import NOTIFICATION_NEW
from genway.orgs.models import Membership, Organization, User

PENDING_EMAILS = "genway_pending_emails"  # session.info: (its transaction, [outbox rows])
DEFAULTS: dict[str, bool] = NotificationPreferences().model_dump()
TITLE_MAX = 200
BODY_MAX = 2000

_INSERT_NOTIFICATIONS = insert(notifications_table).returning(
    notifications_table.c.id, sort_by_parameter_order=True
)


@dataclass(frozen=True)
class Recipient:
    user_id: int
    email: str
    in_app: bool = True
    by_email: bool = False


def preference(name: str) -> ColumnElement[bool]:
    """A user's preference `name`, its default when the user never set one."""
    column: ColumnElement[bool] = getattr(NotificationPreference, name)
    return func.coalesce(column, literal(DEFAULTS[name]))


def _users(category: Category) -> Select[int, str, bool]:
    return (
        select(User.id, User.email, preference(f"email_{category}"))
        .outerjoin(NotificationPreference, NotificationPreference.user_id == User.id)
        .where(User.is_active.is_(True))
        .order_by(User.id)
    )


def org_admins(session: Session, org_id: int, category: Category) -> list[Recipient]:
    """The organization's active owners and admins, each with their email preference."""
    rows = session.execute(
        _users(category)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.org_id == org_id, Membership.role.in_([Role.OWNER, Role.ADMIN]))
    )
    return [Recipient(user_id, email, True, bool(wants)) for user_id, email, wants in rows]


def users(session: Session, user_ids: Iterable[int], category: Category) -> list[Recipient]:
    """These active users, each with their email preference."""
    rows = session.execute(_users(category).where(User.id.in_(list(user_ids))))
    return [Recipient(user_id, email, True, bool(wants)) for user_id, email, wants in rows]


def deliver(
    session: Session,
    org_id: int,
    recipients: Sequence[Recipient],
    kind: NotificationKind,
    title: str,
    body: str,
    data: dict[str, Any],
) -> None:
    """Notify each recipient in-app and/or by email, in the session's transaction."""
    title, body = _clip(title, TITLE_MAX), _clip(body, BODY_MAX)
    now = utcnow()
    in_app = [r for r in recipients if r.in_app]
    if in_app:
        _record(session, org_id, in_app, kind, title, body, data, now)
    by_email = [r for r in recipients if r.by_email]
    if by_email:
        org_name = session.scalar(
            select(Organization.display_name).where(Organization.id == org_id)
        )
        context = {"title": title, "body": body, "data": data, "org_name": org_name}
        queue_emails(
            session,
            [
                {
                    "user_id": r.user_id,
                    "org_id": org_id,
                    "to_address": r.email,
                    "kind": kind.value,
                    "context": context,
                    "status": EmailStatus.PENDING,
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                }
                for r in by_email
            ],
        )


def _record(
    session: Session,
    org_id: int,
    recipients: Sequence[Recipient],
    kind: NotificationKind,
    title: str,
    body: str,
    data: dict[str, Any],
    now: datetime,
) -> None:
    rows = [
        {
            "user_id": r.user_id,
            "org_id": org_id,
            "kind": kind.value,
            "title": title,
            "body": body,
            "data": data,
            "read_at": None,
            "created_at": now,
        }
        for r in recipients
    ]
    ids = session.scalars(_INSERT_NOTIFICATIONS, rows if len(rows) > 1 else rows[0]).all()
    shown = [
        NotificationResponse(
            id=notification_id,
            org_id=org_id,
            kind=kind,
            title=title,
            body=body,
            data=data,
            read_at=None,
            created_at=now,
        ).model_dump(mode="json")
        for notification_id in ids
    ]
    record_org_events(
        session,
        org_id,
        [(NOTIFICATION_NEW, item, r.user_id) for r, item in zip(recipients, shown, strict=True)],
    )


def queue_emails(session: Session, rows: list[dict[str, Any]]) -> None:
    """Hold outbox rows until the transaction commits (a rolled-back one's are never written)."""
    transaction = session.get_transaction()
    held: tuple[object, list[dict[str, Any]]] | None = session.info.get(PENDING_EMAILS)
    if held is None or held[0] is not transaction:
        held = session.info[PENDING_EMAILS] = (transaction, [])
    held[1].extend(rows)


def take_pending_emails(session: Session) -> list[dict[str, Any]]:
    """The outbox rows the committing transaction queued (those of an earlier transaction of
    the session, rolled back, are discarded)."""
    held = session.info.pop(PENDING_EMAILS, None)
    if held is None or held[0] is not session.get_transaction():
        return []
    rows: list[dict[str, Any]] = held[1]
    return rows


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
