"""A real SMTP server on 127.0.0.1 for the tests that send email (see `support.with_smtp`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.notifications.support import Mailbox, smtp_server


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    with smtp_server() as server:
        yield server


@pytest.fixture
def mailbox(smtp: tuple[Mailbox, int]) -> Mailbox:
    return smtp[0]
