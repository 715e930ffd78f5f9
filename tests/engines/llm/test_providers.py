"""The providers against fake vendor servers speaking the real protocols, through the SDKs."""

from __future__ import annotations

import dataclasses
import email.utils
import socket
import time

import pytest

from genway.engines.llm.providers import (
    AnthropicProvider,
    AuthenticationFailed,
    BadRequest,
    LLMTimeout,
    OpenAIProvider,
    ProviderUnavailable,
    RateLimited,
    RetryPolicy,
    retry_after_seconds,
)
from tests.engines.llm.conftest import FAST_RETRY, HELLO, Vendor

NO_RETRY = dataclasses.replace(FAST_RETRY, max_retries=0)


async def test_openai_streams_deltas_and_reports_usage(openai_vendor: Vendor) -> None:
    openai_vendor.server.reply("Hello from the fake", prompt_tokens=12, completion_tokens=4)
    deltas: list[str] = []

    completion = await openai_vendor.provider().complete(
        "gpt-4o-mini",
        HELLO,
        system="Be brief.",
        max_tokens=64,
        timeout_s=5,
        on_delta=deltas.append,
    )

    assert deltas == ["Hello ", "from ", "the ", "fake"]
    assert completion.text == "Hello from the fake"
    assert (completion.provider, completion.model) == ("openai", "gpt-4o-mini")
    assert (completion.input_tokens, completion.output_tokens) == (12, 4)
    assert completion.finish_reason == "stop"
    [request] = openai_vendor.server.requests
    assert request.model == "gpt-4o-mini"
    assert request.messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Say hello"},
    ]
    assert request.body["stream"] is True
    assert request.body["stream_options"] == {"include_usage": True}
    assert request.body["max_completion_tokens"] == 64


async def test_anthropic_streams_deltas_and_reports_usage(anthropic_vendor: Vendor) -> None:
    anthropic_vendor.server.reply("Hello from Claude", prompt_tokens=9, completion_tokens=3)
    deltas: list[str] = []

    async def on_delta(text: str) -> None:
        deltas.append(text)

    completion = await anthropic_vendor.provider().complete(
        "claude-sonnet-4-6",
        [{"role": "system", "content": "Be kind."}, *HELLO],
        system="Be brief.",
        max_tokens=64,
        timeout_s=5,
        on_delta=on_delta,
    )

    assert deltas == ["Hello ", "from ", "Claude"]
    assert completion.text == "Hello from Claude"
    assert (completion.provider, completion.model) == ("anthropic", "claude-sonnet-4-6")
    assert (completion.input_tokens, completion.output_tokens) == (9, 3)
    assert completion.finish_reason == "stop"
    [request] = anthropic_vendor.server.requests
    assert request.body["system"] == "Be brief.\n\nBe kind."
    assert request.messages == [{"role": "user", "content": "Say hello"}]
    assert request.body["max_tokens"] == 64
    assert request.stream
    assert request.headers["anthropic-version"]


async def test_default_usage_counts_come_from_the_fake_tokenizer(vendor: Vendor) -> None:
    vendor.server.reply("one two three")

    completion = await vendor.provider().complete(vendor.model, HELLO, max_tokens=64, timeout_s=5)

    assert (completion.input_tokens, completion.output_tokens) == (2, 3)


async def test_hitting_max_tokens_finishes_with_length(vendor: Vendor) -> None:
    vendor.server.reply("one two three four five")

    completion = await vendor.provider().complete(vendor.model, HELLO, max_tokens=3, timeout_s=5)

    assert completion.text == "one two three "
    assert completion.finish_reason == "length"


async def test_rate_limit_waits_retry_after_then_succeeds(vendor: Vendor) -> None:
    vendor.server.fail(429, retry_after=2)
    vendor.server.reply("made it")

    completion = await vendor.provider().complete(vendor.model, HELLO, max_tokens=64, timeout_s=5)

    assert completion.text == "made it"
    assert vendor.server.calls == 2
    assert vendor.sleeps == [2.0]


async def test_retry_after_is_capped(vendor: Vendor) -> None:
    vendor.server.fail(429, retry_after=3600)
    vendor.server.reply("made it")

    await vendor.provider().complete(vendor.model, HELLO, max_tokens=64, timeout_s=5)

    assert vendor.sleeps == [FAST_RETRY.max_retry_after_s]


async def test_rate_limit_that_persists_raises_rate_limited(vendor: Vendor) -> None:
    vendor.server.fail(429, times=None, retry_after=0)

    with pytest.raises(RateLimited) as caught:
        await vendor.provider().complete(vendor.model, HELLO, max_tokens=64, timeout_s=5)

    assert caught.value.retryable
    assert caught.value.status_code == 429
    assert vendor.server.calls == 1 + FAST_RETRY.max_retries


async def test_server_errors_exhaust_retries_with_backoff(vendor: Vendor) -> None:
    vendor.server.fail(vendor.server_error, times=None)

    with pytest.raises(ProviderUnavailable) as caught:
        await vendor.provider().complete(vendor.model, HELLO, max_tokens=64, timeout_s=5)

    assert caught.value.retryable
    assert (caught.value.provider, caught.value.model) == (vendor.name, vendor.model)
    assert vendor.server.calls == 3
    assert len(vendor.sleeps) == 2
    assert all(0 < delay <= FAST_RETRY.max_delay_s for delay in vendor.sleeps)


async def test_hang_raises_llm_timeout(vendor: Vendor) -> None:
    vendor.server.hang(times=None)

    with pytest.raises(LLMTimeout) as caught:
        await vendor.provider(retry=NO_RETRY).complete(
            vendor.model, HELLO, max_tokens=64, timeout_s=0.3
        )

    assert caught.value.retryable
    assert vendor.server.calls == 1


async def test_timeouts_are_retried(vendor: Vendor) -> None:
    vendor.server.hang()
    vendor.server.reply("second time lucky")

    completion = await vendor.provider().complete(vendor.model, HELLO, max_tokens=64, timeout_s=0.3)

    assert completion.text == "second time lucky"
    assert vendor.server.calls == 2


async def test_stall_mid_stream_times_out_after_delivering_text(vendor: Vendor) -> None:
    vendor.server.reply("one two three four", hang_after=2)
    deltas: list[str] = []

    with pytest.raises(LLMTimeout):
        await vendor.provider().complete(
            vendor.model, HELLO, max_tokens=64, timeout_s=0.3, on_delta=deltas.append
        )

    # The text arrived while the stream was still open, and was not replayed by a retry.
    assert deltas == ["one ", "two "]
    assert vendor.server.calls == 1


async def test_error_mid_stream_is_raised_not_replayed(vendor: Vendor) -> None:
    vendor.server.reply("one two three four", error_after=2)
    deltas: list[str] = []

    with pytest.raises(ProviderUnavailable):
        await vendor.provider().complete(
            vendor.model, HELLO, max_tokens=64, timeout_s=5, on_delta=deltas.append
        )

    assert deltas == ["one ", "two "]
    assert vendor.server.calls == 1


async def test_bad_request_is_not_retried(vendor: Vendor) -> None:
    vendor.server.fail(400, message="messages: too long")

    with pytest.raises(BadRequest) as caught:
        await vendor.provider().complete(vendor.model, HELLO, max_tokens=64, timeout_s=5)

    assert not caught.value.retryable
    assert "too long" in str(caught.value)
    assert vendor.server.calls == 1
    assert vendor.sleeps == []


async def test_unknown_model_is_a_bad_request(vendor: Vendor) -> None:
    with pytest.raises(BadRequest) as caught:
        await vendor.provider().complete("no-such-model", HELLO, max_tokens=64, timeout_s=5)

    assert caught.value.status_code == 404


async def test_wrong_api_key_is_authentication_failed(vendor: Vendor) -> None:
    with pytest.raises(AuthenticationFailed) as caught:
        await vendor.provider(api_key="wrong").complete(
            vendor.model, HELLO, max_tokens=64, timeout_s=5
        )

    assert not caught.value.retryable
    assert vendor.server.calls == 1


async def test_connection_refused_is_provider_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    provider = OpenAIProvider(base_url=f"http://127.0.0.1:{port}/v1", api_key="k", retry=NO_RETRY)

    with pytest.raises(ProviderUnavailable) as caught:
        await provider.complete("gpt-4o-mini", HELLO, max_tokens=64, timeout_s=5)

    await provider.aclose()
    assert caught.value.retryable


def test_retry_after_header_forms() -> None:
    assert retry_after_seconds({"retry-after": "2"}) == 2.0
    assert retry_after_seconds({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert retry_after_seconds({"retry-after": "soon"}) is None
    assert retry_after_seconds({}) is None
    in_a_minute = email.utils.formatdate(time.time() + 60, usegmt=True)
    seconds = retry_after_seconds({"retry-after": in_a_minute})
    assert seconds is not None and 0 < seconds <= 61


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    policy = RetryPolicy(base_delay_s=1, max_delay_s=3)

    assert 0.5 <= policy.delay_s(0, None) <= 1
    assert 1 <= policy.delay_s(1, None) <= 2
    assert 1.5 <= policy.delay_s(5, None) <= 3
    assert policy.delay_s(0, 7.0) == 7.0
    assert policy.delay_s(0, 1000.0) == policy.max_retry_after_s


async def test_fakes_list_their_models_through_the_sdks(
    openai_vendor: Vendor, anthropic_vendor: Vendor
) -> None:
    openai_provider = openai_vendor.provider()
    anthropic_provider = anthropic_vendor.provider()
    assert isinstance(openai_provider, OpenAIProvider)
    assert isinstance(anthropic_provider, AnthropicProvider)

    openai_models = [m.id async for m in openai_provider.client.models.list()]
    anthropic_models = [m.id async for m in anthropic_provider.client.models.list()]

    assert openai_models == openai_vendor.server.models
    assert anthropic_models == anthropic_vendor.server.models
