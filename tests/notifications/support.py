"""A real SMTP server in the test process (aiosmtpd) that keeps what it receives, and helpers
to read a user's notifications and the email outbox."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from typing import Any

import httpx
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from pydantic import SecretStr
from sqlalchemy import func, select

from genway.config import Settings
from genway.db import Database
from genway.notifications.models import OutboundEmail
from genway.orgevents.models import OrgEvent


@dataclass
class Received:
    recipients: list[str]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    def part(self, content_type: str) -> str:
        found = [p for p in self.message.walk() if p.get_content_type() == content_type]
        assert len(found) == 1, f"{len(found)} {content_type} parts"
        content = found[0].get_content()  # type: ignore[attr-defined]
        return str(content)


class Mailbox:
    """aiosmtpd's handler: stores every message it accepts."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.refused: set[str] = set()  # answered 550 at RCPT

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in self.refused:
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content
        assert isinstance(raw, bytes)
        message = message_from_bytes(raw, policy=default)
        assert isinstance(message, EmailMessage)
        self.received.append(Received(list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[Received]:
        return [r for r in self.received if address in r.recipients]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def smtp_server() -> Iterator[tuple[Mailbox, int]]:
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield mailbox, port
    finally:
        controller.stop()


async def wait_until(predicate: Callable[[], Awaitable[bool]], attempts: int = 400) -> None:
    for _ in range(attempts):
        if await predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition never became true")


async def outbox_counts(db: Database) -> dict[str, int]:
    async with db.sessions() as session:
        rows = await session.execute(
            select(OutboundEmail.status, func.count()).group_by(OutboundEmail.status)
        )
        return {status: int(count) for status, count in rows}


async def outbox_drained(db: Database) -> bool:
    return "pending" not in await outbox_counts(db)


async def org_events(db: Database, org_id: int) -> list[OrgEvent]:
    async with db.sessions() as session:
        return list(
            (
                await session.scalars(
                    select(OrgEvent).where(OrgEvent.org_id == org_id).order_by(OrgEvent.id)
                )
            ).all()
        )


async def notifications(
    client: httpx.AsyncClient, headers: dict[str, str], **params: Any
) -> dict[str, Any]:
    response = await client.get("/v1/users/me/notifications", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


def with_smtp(settings: Settings, port: int, **changes: object) -> Settings:
    """`settings` sending email to the test SMTP server, the outbox read every 50 ms."""
    return settings.model_copy(
        update={
            "smtp_url": SecretStr(f"smtp://127.0.0.1:{port}"),
            "smtp_from": "Genway <alerts@genway.test>",
            "email_poll_s": 0.05,
            **changes,
        }
    )
