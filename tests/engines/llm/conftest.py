"""Fixtures: the fake OpenAI and Anthropic servers, and providers pointed at them.

Backoff sleeps go through a recorder that returns at once, so retry tests are fast and can
assert the delays the policy chose without measuring time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from genway.engines.llm.providers import (
    AnthropicProvider,
    ChatMessage,
    OpenAIProvider,
    RetryPolicy,
    StreamingProvider,
)
from tests.fakes.anthropic_server import FakeAnthropicServer
from tests.fakes.openai_server import FakeOpenAIServer, ScriptedServer

FAST_RETRY = RetryPolicy(max_retries=2, base_delay_s=0.001, max_delay_s=0.004, max_retry_after_s=5)
HELLO: list[ChatMessage] = [{"role": "user", "content": "Say hello"}]


@dataclass
class Vendor:
    """A fake vendor server and a factory for providers that talk to it."""

    name: str
    server: ScriptedServer
    model: str
    server_error: int
    sleeps: list[float] = field(default_factory=list)
    made: list[StreamingProvider] = field(default_factory=list)

    def provider(
        self, *, retry: RetryPolicy = FAST_RETRY, api_key: str | None = None
    ) -> StreamingProvider:
        kind = OpenAIProvider if self.name == "openai" else AnthropicProvider
        provider = kind(
            base_url=self.server.base_url,
            api_key=api_key or self.server.api_key,
            retry=retry,
            sleep=self.record_sleep,
        )
        self.made.append(provider)
        return provider

    async def record_sleep(self, delay: float) -> None:
        self.sleeps.append(delay)
        await asyncio.sleep(0)

    async def close(self) -> None:
        for provider in self.made:
            await provider.aclose()
        await self.server.stop()


async def start_vendor(name: str) -> Vendor:
    if name == "openai":
        vendor = Vendor(name, FakeOpenAIServer(), "gpt-4o-mini", server_error=500)
    else:
        vendor = Vendor(name, FakeAnthropicServer(), "claude-sonnet-4-6", server_error=529)
    await vendor.server.start()
    return vendor


@pytest.fixture(params=["openai", "anthropic"])
async def vendor(request: pytest.FixtureRequest) -> AsyncIterator[Vendor]:
    """Each test that uses it runs once against each vendor."""
    started = await start_vendor(request.param)
    yield started
    await started.close()


@pytest.fixture
async def openai_vendor() -> AsyncIterator[Vendor]:
    started = await start_vendor("openai")
    yield started
    await started.close()


@pytest.fixture
async def anthropic_vendor() -> AsyncIterator[Vendor]:
    started = await start_vendor("anthropic")
    yield started
    await started.close()
