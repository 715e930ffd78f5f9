"""Starting and stopping notifications in a process: the before-commit hook, the key-expiry
scan and, with an SMTP server configured, the email sender."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import structlog

from genway.config import Settings
from genway.db import Database
from genway.notifications.expiry import KeyExpiryScanner
from genway.notifications.hooks import NotificationHook
from genway.notifications.mailer import EmailSender
from genway.notifications.smtp import SMTPServer

log = structlog.get_logger("genway.notifications")


@dataclass(frozen=True)
class Notifications:
    scanner: KeyExpiryScanner
    sender: EmailSender | None  # None: no SMTP server, notifications are in-app only


def email_sender(settings: Settings, database: Database) -> EmailSender | None:
    """The sender of the configured SMTP server, if any. Raises ValueError for an unusable
    GENWAY_SMTP_URL."""
    if settings.smtp_url is None:
        return None
    server = SMTPServer.from_url(settings.smtp_url.get_secret_value(), settings.smtp_timeout_s)
    return EmailSender(
        database,
        server,
        settings.smtp_from,
        max_attempts=settings.email_max_attempts,
        retry_base_s=settings.email_retry_base_s,
        public_url=settings.public_url,
    )


@contextlib.asynccontextmanager
async def notifications_runtime(
    settings: Settings, database: Database
) -> AsyncIterator[Notifications]:
    """Install the hook on `database` and run the loops while the block runs. Raises
    ValueError at once for an unusable GENWAY_SMTP_URL (a configuration error)."""
    sender = email_sender(settings, database)
    if sender is None:
        log.info("smtp_not_configured", detail="notifications are in-app only")
    scanner = KeyExpiryScanner(database)
    hook = NotificationHook(email_enabled=sender is not None)
    database.before_commit.append(hook)
    tasks = [
        asyncio.create_task(
            scanner.run_forever(settings.key_expiry_scan_interval_s), name="key-expiry-scan"
        )
    ]
    if sender is not None:
        tasks.append(
            asyncio.create_task(sender.run_forever(settings.email_poll_s), name="email-outbox")
        )
    try:
        yield Notifications(scanner, sender)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        database.before_commit.remove(hook)
