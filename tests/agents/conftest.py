"""Agent tests: the embedded worker runs `agent.run` against the fake OpenAI and Anthropic
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
    # A model call's deadline: short, so the timeout tests are quick, but not so short that a
    # loaded machine turns a slow answer into a retry (which a scripted reply does not survive).
    return llm_settings(
        settings, fake_openai, fake_anthropic, routing_file, llm_timeout_s=2.0, agent_timeout_s=20
    )
