"""Sending the email outbox: due rows are claimed (their next attempt moved past a lease, so a
sender that dies leaves them to another after it), sent over SMTP, and marked sent, retried
later with backoff, or failed for good (logged) after `max_attempts` or a permanent refusal."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import Any

import structlog
from sqlalchemy import Row, select, update

from genway.db import Database, utcnow
from genway.notifications.models import EmailStatus, email_outbox_table
from genway.notifications.rendering import render_email
from genway.notifications.smtp import SMTPServer, is_permanent

log = structlog.get_logger("genway.notifications")

outbox = email_outbox_table
ERROR_MAX = 1000
BACKOFF_FACTOR = 4


@dataclass(frozen=True)
class Outcome:
    sent: bool
    error: str | None = None
    permanent: bool = False


class EmailSender:
    def __init__(
        self,
        database: Database,
        server: SMTPServer,
        sender: str,
        *,
        max_attempts: int = 5,
        retry_base_s: float = 60.0,
        public_url: str | None = None,
        batch: int = 10,
    ) -> None:
        self.database = database
        self.server = server
        self.sender = sender
        self.max_attempts = max_attempts
        self.retry_base_s = retry_base_s
        self.public_url = public_url.rstrip("/") if public_url else None
        self.batch = batch
        # Longer than sending a whole batch can take (each send is bounded by `server.send`).
        self.lease = timedelta(seconds=batch * server.timeout_s * 3 + 30)
        _, address = parseaddr(sender)
        self.domain = address.rpartition("@")[2] or "localhost"

    async def run_once(self) -> int:
        """Send the emails that are due (at most `batch`); returns how many were tried."""
        claimed = await self._claim()
        for email in claimed:
            outcome = await self._send(email)
            await self._record(email, outcome)
        return len(claimed)

    async def run_forever(self, poll_s: float) -> None:
        while True:
            try:
                tried = await self.run_once()
            except Exception as exc:  # a database hiccup must not end the loop
                log.error("email_outbox_failed", error=str(exc))
                tried = 0
            if tried < self.batch:
                await asyncio.sleep(poll_s)

    async def _claim(self) -> list[Row[Any]]:
        now = utcnow()
        due = (
            select(outbox.c.id)
            .where(outbox.c.status == EmailStatus.PENDING, outbox.c.next_attempt_at <= now)
            .order_by(outbox.c.next_attempt_at, outbox.c.id)
            .limit(self.batch)
            .with_for_update(skip_locked=True)
        )
        async with self.database.transaction() as session:
            rows = await session.execute(
                update(outbox)
                .where(
                    outbox.c.id.in_(due.scalar_subquery()),
                    outbox.c.status == EmailStatus.PENDING,
                    outbox.c.next_attempt_at <= now,
                )
                .values(attempts=outbox.c.attempts + 1, next_attempt_at=now + self.lease)
                .returning(
                    outbox.c.id,
                    outbox.c.user_id,
                    outbox.c.org_id,
                    outbox.c.to_address,
                    outbox.c.kind,
                    outbox.c.context,
                    outbox.c.attempts,
                )
            )
            return list(rows.all())

    async def _send(self, email: Row[Any]) -> Outcome:
        try:
            message = self.message(email)
        except Exception as exc:  # a template or header that cannot be built never will be
            return Outcome(False, f"cannot build the message: {exc}", permanent=True)
        try:
            await self.server.send(message)
        except Exception as exc:
            return Outcome(False, f"{type(exc).__name__}: {exc}", permanent=is_permanent(exc))
        return Outcome(True)

    def message(self, email: Row[Any]) -> EmailMessage:
        context = {**email.context, "org_id": email.org_id, "public_url": self.public_url}
        rendered = render_email(email.kind, context)
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = email.to_address
        message["Subject"] = rendered.subject
        message["Date"] = format_datetime(utcnow())
        # The same on every attempt, so a receiver can tell a retry from a second email.
        message["Message-ID"] = f"<genway-email-{email.id}@{self.domain}>"
        message["Auto-Submitted"] = "auto-generated"
        message.set_content(rendered.text)
        message.add_alternative(rendered.html, subtype="html")
        return message

    async def _record(self, email: Row[Any], outcome: Outcome) -> None:
        now = utcnow()
        values: dict[str, Any]
        if outcome.sent:
            values = {"status": EmailStatus.SENT, "sent_at": now, "last_error": None}
        elif outcome.permanent or email.attempts >= self.max_attempts:
            values = {"status": EmailStatus.FAILED, "last_error": _clip(outcome.error)}
            log.warning(
                "email_failed",
                email_id=email.id,
                kind=email.kind,
                user_id=email.user_id,
                attempts=email.attempts,
                error=outcome.error,
            )
        else:
            values = {"next_attempt_at": self._retry_at(now, email.attempts)}
            values["last_error"] = _clip(outcome.error)
            log.info("email_retry", email_id=email.id, attempts=email.attempts, error=outcome.error)
        async with self.database.transaction() as session:
            await session.execute(update(outbox).where(outbox.c.id == email.id).values(values))

    def _retry_at(self, now: datetime, attempts: int) -> datetime:
        return now + timedelta(seconds=self.retry_base_s * BACKOFF_FACTOR ** (attempts - 1))


def _clip(error: str | None) -> str | None:
    return error[:ERROR_MAX] if error else error
