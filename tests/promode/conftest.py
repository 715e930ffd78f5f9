"""Pro Mode tests: the embedded worker runs sessions against the fake OpenAI and Anthropic
servers (routes in `tests.agent_support.ROUTES`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from genway.config import Settings
from tests.agent_support import (
    close_llm_clients,
    fake_anthropic,
    fake_openai,
    llm_settings,
    routing_file,
)
from tests.fakes.anthropic_server import FakeAnthropicServer
from tests.fakes.openai_server import FakeOpenAIServer

__all__ = ["close_llm_clients", "fake_anthropic", "fake_openai", "routing_file"]


@pytest.fixture
def settings(
    settings: Settings,
    fake_openai: FakeOpenAIServer,
    fake_anthropic: FakeAnthropicServer,
    routing_file: Path,
    close_llm_clients: None,
) -> Settings:
    return llm_settings(settings, fake_openai, fake_anthropic, routing_file, llm_timeout_s=10)
