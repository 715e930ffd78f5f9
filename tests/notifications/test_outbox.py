"""The email outbox on its own (no app): rows exist only for committed transactions, are sent
to a real SMTP server, retried with backoff while it is unreachable, and marked failed after
the last attempt or a permanent refusal."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select
from structlog.testing import capture_logs

from genway.db import Database
from genway.notifications.hooks import NotificationHook
from genway.notifications.mailer import EmailSender
from genway.notifications.models import NotificationKind, OutboundEmail
from genway.notifications.service import notify_users
from genway.notifications.smtp import SMTPServer
from genway.observability.logging import configure_logging
from tests.notifications.support import Mailbox, free_port, outbox_counts
from tests.support import Tenant, make_tenant


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    database.before_commit.append(NotificationHook(email_enabled=True))
    yield database
    await database.dispose()


@pytest.fixture
async def org(database: Database) -> Tenant:
    return await make_tenant(database)


def sender(database: Database, port: int, **options: Any) -> EmailSender:
    server = SMTPServer("127.0.0.1", port, timeout_s=5)
    return EmailSender(database, server, "genway@genway.test", retry_base_s=0, **options)


async def notify_owner(database: Database, org: Tenant, title: str = "Endpoint disabled") -> None:
    async with database.transaction() as session:
        await notify_users(
            session,
            org.org_id,
            [org.owner_id],
            NotificationKind.WEBHOOK_DISABLED,
            title,
            "https://hooks.example.com failed for 24 hours and was disabled.",
            {"id": 7, "url": "https://hooks.example.com", "disabled_reason": "500 for 24 h"},
        )


async def outbox(database: Database) -> list[OutboundEmail]:
    async with database.sessions() as session:
        return list((await session.scalars(select(OutboundEmail))).all())


async def test_only_a_committed_transaction_leaves_an_email(database: Database, org: Tenant):
    async with database.sessions() as session:
        await notify_users(
            session, org.org_id, [org.owner_id], NotificationKind.WEBHOOK_DISABLED, "a", "b", {}
        )
        await session.rollback()
        await notify_users(
            session, org.org_id, [org.owner_id], NotificationKind.WEBHOOK_DISABLED, "c", "d", {}
        )
        await session.commit()
    [email] = await outbox(database)
    assert email.context["title"] == "c" and email.to_address == org.owner_email


async def test_sent_with_both_parts_and_a_stable_message_id(
    database: Database, org: Tenant, smtp: tuple[Mailbox, int]
):
    mailbox, port = smtp
    await notify_owner(database, org)
    assert await sender(database, port).run_once() == 1
    assert await outbox_counts(database) == {"sent": 1}
    [mail] = mailbox.received
    assert mail.subject == "[Genway] Endpoint disabled"
    assert (
        mail.message["Message-ID"] == f"<genway-email-{(await outbox(database))[0].id}@genway.test>"
    )
    assert "Endpoint:  https://hooks.example.com (id 7)" in mail.part("text/plain")
    assert "https://hooks.example.com" in mail.part("text/html")
    assert await sender(database, port).run_once() == 0  # nothing left to send


async def test_retried_while_the_server_is_down_then_sent(
    database: Database, org: Tenant, smtp: tuple[Mailbox, int]
):
    mailbox, port = smtp
    await notify_owner(database, org)
    down = sender(database, free_port())
    assert await down.run_once() == 1
    [email] = await outbox(database)
    assert (email.status, email.attempts) == ("pending", 1) and email.last_error
    assert await sender(database, port).run_once() == 1
    [email] = await outbox(database)
    assert (email.status, email.attempts, email.last_error) == ("sent", 2, None)
    assert len(mailbox.received) == 1


async def test_failed_after_the_last_attempt_and_logged(database: Database, org: Tenant):
    await notify_owner(database, org)
    down = sender(database, free_port(), max_attempts=3)
    configure_logging("INFO")
    with capture_logs() as logs:
        assert [await down.run_once() for _ in range(4)] == [1, 1, 1, 0]
    [email] = await outbox(database)
    assert (email.status, email.attempts) == ("failed", 3)
    assert [e["event"] for e in logs if e["event"].startswith("email_")] == [
        "email_retry",
        "email_retry",
        "email_failed",
    ]


async def test_a_retry_waits_for_its_backoff(database: Database, org: Tenant):
    await notify_owner(database, org)
    down = EmailSender(database, SMTPServer("127.0.0.1", free_port()), "g@genway.test")
    assert await down.run_once() == 1
    [email] = await outbox(database)
    first_delay = email.next_attempt_at - email.created_at
    assert await down.run_once() == 0  # not due yet
    assert first_delay.total_seconds() >= 60


async def test_a_permanent_refusal_is_not_retried(
    database: Database, org: Tenant, smtp: tuple[Mailbox, int]
):
    mailbox, port = smtp
    mailbox.refused.add(org.owner_email)
    await notify_owner(database, org)
    assert await sender(database, port).run_once() == 1
    [email] = await outbox(database)
    assert (email.status, email.attempts) == ("failed", 1)
    assert "550" in (email.last_error or "")
    assert await sender(database, port).run_once() == 0
