"""The model router over real providers and the fake vendor servers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from genway.engines.llm.providers import BadRequest, LLMProvider, ProviderUnavailable
from genway.engines.llm.router import (
    TASKS,
    Attempt,
    ModelRouter,
    RouteRow,
    RoutingError,
    UsageRecord,
    build_providers,
    load_routing_table,
)
from tests.engines.llm.conftest import HELLO, Vendor

SONNET = "anthropic:claude-sonnet-4-6"
TABLE = {
    "code": ["openai:gpt-4o-mini", SONNET],
    "qa": ["openai:gpt-4o-mini", "anthropic:claude-haiku-4-5"],
}


@pytest.fixture
async def providers(openai_vendor: Vendor, anthropic_vendor: Vendor) -> dict[str, LLMProvider]:
    return {"openai": openai_vendor.provider(), "anthropic": anthropic_vendor.provider()}


@pytest.fixture
def usage() -> list[UsageRecord]:
    return []


@pytest.fixture
def router(providers: dict[str, LLMProvider], usage: list[UsageRecord]) -> ModelRouter:
    return ModelRouter(TABLE, providers, on_usage=usage.append, max_tokens=256, timeout_s=5)


async def test_first_model_answers_and_usage_is_reported(
    router: ModelRouter, openai_vendor: Vendor, usage: list[UsageRecord]
) -> None:
    openai_vendor.server.reply("done", prompt_tokens=7, completion_tokens=1)
    deltas: list[str] = []

    completion = await router.complete("code", HELLO, on_delta=deltas.append)

    assert (completion.text, completion.provider) == ("done", "openai")
    assert deltas == ["done"]
    assert usage == [UsageRecord("code", "openai", "gpt-4o-mini", 7, 1)]
    assert openai_vendor.server.requests[0].body["max_completion_tokens"] == 256


async def test_retryable_failure_falls_back_to_the_next_model(
    router: ModelRouter,
    openai_vendor: Vendor,
    anthropic_vendor: Vendor,
    usage: list[UsageRecord],
) -> None:
    openai_vendor.server.fail(500, times=None)
    anthropic_vendor.server.reply("from claude", prompt_tokens=3, completion_tokens=2)
    attempts: list[Attempt] = []

    completion = await router.complete("code", HELLO, on_attempt=attempts.append)

    assert (completion.text, completion.provider) == ("from claude", "anthropic")
    assert openai_vendor.server.calls == 3  # its own retries came first
    assert [(a.provider, a.model, a.index) for a in attempts] == [
        ("openai", "gpt-4o-mini", 0),
        ("anthropic", "claude-sonnet-4-6", 1),
    ]
    assert attempts[0].previous_error is None
    assert isinstance(attempts[1].previous_error, ProviderUnavailable)
    assert usage == [UsageRecord("code", "anthropic", "claude-sonnet-4-6", 3, 2)]


async def test_non_retryable_failure_does_not_fall_back(
    router: ModelRouter,
    openai_vendor: Vendor,
    anthropic_vendor: Vendor,
    usage: list[UsageRecord],
) -> None:
    openai_vendor.server.fail(400)

    with pytest.raises(BadRequest):
        await router.complete("code", HELLO)

    assert anthropic_vendor.server.calls == 0
    assert usage == []


async def test_when_every_model_fails_the_last_error_is_raised(
    router: ModelRouter, openai_vendor: Vendor, anthropic_vendor: Vendor
) -> None:
    openai_vendor.server.fail(500, times=None)
    anthropic_vendor.server.fail(529, times=None)

    with pytest.raises(ProviderUnavailable) as caught:
        await router.complete("code", HELLO)

    assert caught.value.provider == "anthropic"


async def test_model_override_is_the_only_model_tried(
    router: ModelRouter, openai_vendor: Vendor, anthropic_vendor: Vendor
) -> None:
    anthropic_vendor.server.reply("haiku here")

    completion = await router.complete("code", HELLO, model_override="anthropic:claude-haiku-4-5")

    assert completion.model == "claude-haiku-4-5"
    assert openai_vendor.server.calls == 0
    anthropic_vendor.server.fail(529, times=None)
    with pytest.raises(ProviderUnavailable):
        await router.complete("qa", HELLO, model_override=SONNET)
    assert openai_vendor.server.calls == 0


async def test_override_needs_a_configured_provider(router: ModelRouter) -> None:
    with pytest.raises(RoutingError, match="'mistral' is not configured"):
        await router.complete("code", HELLO, model_override="mistral:large")
    with pytest.raises(RoutingError, match="provider:model"):
        await router.complete("code", HELLO, model_override="gpt-4o")


async def test_models_of_unconfigured_providers_are_skipped(openai_vendor: Vendor) -> None:
    table = {"research": ["mistral:large", SONNET, "openai:gpt-4o"]}
    router = ModelRouter(table, {"openai": openai_vendor.provider()})
    openai_vendor.server.reply("from gpt-4o")
    attempts: list[Attempt] = []

    completion = await router.complete("research", HELLO, on_attempt=attempts.append)

    assert completion.text == "from gpt-4o"
    assert [a.model for a in attempts] == ["gpt-4o"]


async def test_no_configured_provider_is_a_clear_error(anthropic_vendor: Vendor) -> None:
    router = ModelRouter({"qa": ["openai:gpt-4o-mini"]}, {"anthropic": anthropic_vendor.provider()})

    with pytest.raises(RoutingError, match="task 'qa' has no configured provider") as caught:
        await router.complete("qa", HELLO)

    assert "openai" in str(caught.value)
    assert not caught.value.retryable
    with pytest.raises(RoutingError, match="no route for task 'poetry'"):
        await router.complete("poetry", HELLO)


async def test_per_call_and_router_usage_callbacks_both_hear_of_usage(
    router: ModelRouter, openai_vendor: Vendor, usage: list[UsageRecord]
) -> None:
    per_call: list[UsageRecord] = []

    async def meter(record: UsageRecord) -> None:
        per_call.append(record)

    await router.complete("qa", HELLO, on_usage=meter)

    assert per_call == usage
    assert len(usage) == 1


def test_packaged_routes_cover_every_task() -> None:
    table = load_routing_table()

    assert set(TASKS) <= set(table)
    for models in table.values():
        assert models and all(":" in model for model in models)


async def test_routing_file_overrides_the_tasks_it_names(
    tmp_path: Path, openai_vendor: Vendor
) -> None:
    path = tmp_path / "routes.json"
    path.write_text(json.dumps({"code": ["openai:gpt-4.1"], "review": ["openai:gpt-4o"]}))
    defaults = load_routing_table()

    table = load_routing_table(path)

    assert table["code"] == ["openai:gpt-4.1"]
    assert table["review"] == ["openai:gpt-4o"]
    assert table["qa"] == defaults["qa"]
    router = ModelRouter(table, {"openai": openai_vendor.provider()})
    await router.complete("code", HELLO)
    assert openai_vendor.server.requests[-1].model == "gpt-4.1"


@pytest.mark.parametrize(
    "content",
    ["not json", "[]", '{"code": []}', '{"code": "openai:gpt-4o"}', '{"code": ["gpt-4o"]}'],
)
def test_malformed_routing_file_is_rejected(tmp_path: Path, content: str) -> None:
    path = tmp_path / "routes.json"
    path.write_text(content)

    with pytest.raises(RoutingError):
        load_routing_table(path)


async def test_describe_lists_routes_and_configured_providers(openai_vendor: Vendor) -> None:
    router = ModelRouter(TABLE, {"openai": openai_vendor.provider()})

    assert router.describe() == [
        RouteRow("code", ("openai:gpt-4o-mini", SONNET), ("openai",)),
        RouteRow("qa", ("openai:gpt-4o-mini", "anthropic:claude-haiku-4-5"), ("openai",)),
    ]


@pytest.fixture
async def built() -> AsyncIterator[list[dict[str, LLMProvider]]]:
    made: list[dict[str, LLMProvider]] = []
    yield made
    for providers in made:
        for provider in providers.values():
            await provider.aclose()


async def test_build_providers_creates_only_configured_vendors(
    built: list[dict[str, LLMProvider]],
) -> None:
    built.append(build_providers(None, None, None, None, 30))
    built.append(build_providers(None, None, None, "sk-ant", 30))
    built.append(build_providers("http://127.0.0.1:9/v1", None, None, None, 30))
    built.append(build_providers(None, "sk-openai", "http://127.0.0.1:9", None, 30))

    assert [sorted(providers) for providers in built] == [
        [],
        ["anthropic"],
        ["openai"],
        ["anthropic", "openai"],
    ]
