"""A webhook receiver served on 127.0.0.1 for each test that asks for one: (receiver, base URL)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support import live_server
from tests.webhooks.receiver import Receiver


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    hooks = Receiver()
    async with live_server(hooks.app()) as url:
        yield hooks, url
