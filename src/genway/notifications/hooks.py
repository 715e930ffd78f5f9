"""What runs just before every commit (`Database.before_commit`): notifying the users whose jobs
failed in the transaction (those who asked to be), then writing the emails the transaction
queued to the outbox, so an email exists if and only if its cause was committed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, or_, select
from sqlalchemy.orm import Session

from genway.db import PENDING_EVENTS
from genway.jobs.models import Job
from genway.notifications.delivery import Recipient, deliver, preference, take_pending_emails
from genway.notifications.models import (
    NotificationKind,
    NotificationPreference,
    email_outbox_table,
)
from genway.orgs.models import User


class NotificationHook:
    """Installed on a Database by the runtime; without SMTP, queued emails are dropped."""

    def __init__(self, email_enabled: bool) -> None:
        self.email_enabled = email_enabled

    def __call__(self, session: Session) -> None:
        events: list[dict[str, Any]] | None = session.info.get(PENDING_EVENTS)
        if events:
            failed = failed_job_ids(events)
            if failed:
                notify_failed_jobs(session, failed)
        emails = take_pending_emails(session)
        if emails and self.email_enabled:
            session.execute(insert(email_outbox_table), emails)


def failed_job_ids(events: Sequence[dict[str, Any]]) -> list[int]:
    """The jobs whose status became `failed` among job events about to be published."""
    return [
        event["job_id"]
        for event in events
        if event.get("type") == "status"
        and "job_id" in event
        and event["data"].get("status") == "failed"
    ]


def notify_failed_jobs(session: Session, job_ids: Sequence[int]) -> None:
    """Notify the submitter of each failed top-level job who opted in (in-app, email or both)."""
    in_app, by_email = preference("in_app_job_failed"), preference("email_job_failed")
    rows = session.execute(
        select(Job.id, Job.org_id, Job.user_id, Job.kind, Job.error, User.email, in_app, by_email)
        .join(User, User.id == Job.user_id)
        .outerjoin(NotificationPreference, NotificationPreference.user_id == Job.user_id)
        .where(
            Job.id.in_(job_ids),
            Job.parent_id.is_(None),
            User.is_active.is_(True),
            or_(in_app, by_email),
        )
        .order_by(Job.id)
    ).all()
    for job_id, org_id, user_id, kind, error, email, wants_in_app, wants_email in rows:
        message = error.get("message") if isinstance(error, dict) else None
        recipient = Recipient(user_id, email, bool(wants_in_app), bool(wants_email))
        deliver(
            session,
            org_id,
            [recipient],
            NotificationKind.JOB_FAILED,
            f"Job {job_id} failed",
            f"Your {kind} job {job_id} failed" + (f": {message}" if message else "."),
            {"job_id": job_id, "kind": kind, "error": error},
        )
