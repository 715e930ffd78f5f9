"""LLM providers behind one small protocol, reached through the official SDKs.

Every call streams, so `on_delta` sees text as it arrives. Each provider applies one retry
policy (429, 5xx and connection errors; exponential backoff that honours `Retry-After`), a
deadline per attempt, and turns SDK exceptions into `LLMError`s whose `retryable` flag tells
the router whether another model may succeed where this one failed. With `tools`, the model may
answer with `ToolCall`s instead of (or beside) text; the conversation types live in `tools`.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import inspect
import itertools
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

import anthropic
import httpx2
import openai
import structlog
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from genway.engines.llm.tools import AssistantToolCalls as AssistantToolCalls
from genway.engines.llm.tools import ChatMessage as ChatMessage
from genway.engines.llm.tools import Message as Message
from genway.engines.llm.tools import (
    StreamedToolCalls,
    anthropic_messages,
    anthropic_tools,
    openai_messages,
    openai_tools,
    refuses_tools,
)
from genway.engines.llm.tools import ToolCall as ToolCall
from genway.engines.llm.tools import ToolResult as ToolResult
from genway.engines.llm.tools import ToolSpec as ToolSpec

log = structlog.get_logger("genway.engines.llm")


DeltaCallback = Callable[[str], Awaitable[None] | None]
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class Completion:
    """A finished model answer. `finish_reason` uses OpenAI's words (stop, length, ...).

    `finish_reason` is "tool_calls" when the model stopped to have `tool_calls` run.
    """

    text: str
    model: str
    provider: str
    input_tokens: int
    output_tokens: int
    finish_reason: str
    tool_calls: tuple[ToolCall, ...] = ()


class LLMError(Exception):
    """A failed model call; `retryable` says whether trying again, or elsewhere, can help."""

    retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        model: str = "",
        status_code: int | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(f"{provider}:{model}: {message}" if provider else message)
        self.message = message
        self.provider = provider
        self.model = model
        self.status_code = status_code
        self.retry_after_s = retry_after_s


class RateLimited(LLMError):
    retryable = True


class ProviderUnavailable(LLMError):
    retryable = True


class LLMTimeout(LLMError):
    retryable = True


class BadRequest(LLMError):
    retryable = False


class AuthenticationFailed(LLMError):
    retryable = False


class ToolsUnsupported(BadRequest):
    """The server or model refused a request because it carried tools; retry without them."""


class LLMProvider(Protocol):
    """A model vendor: `name` is the prefix of its models in the routing table."""

    name: str

    async def complete(
        self,
        model: str,
        messages: Sequence[Message],
        *,
        system: str | None = None,
        max_tokens: int,
        timeout_s: float,
        on_delta: DeltaCallback | None = None,
        tools: Sequence[ToolSpec] | None = None,
    ) -> Completion:
        """Run one completion, streaming text to `on_delta`; the model may call `tools`.

        Raises `LLMError`; `ToolsUnsupported` if the server refuses tools.
        """
        ...

    async def aclose(self) -> None:
        """Release the provider's connections."""
        ...


@dataclass(frozen=True)
class RetryPolicy:
    """Retries after the first attempt, exponential backoff, and the cap on `Retry-After`."""

    max_retries: int = 2
    base_delay_s: float = 0.5
    max_delay_s: float = 8.0
    max_retry_after_s: float = 30.0

    def delay_s(self, retry: int, retry_after_s: float | None) -> float:
        """Seconds to wait before retry number `retry` (0-based)."""
        if retry_after_s is not None:
            return max(0.0, min(retry_after_s, self.max_retry_after_s))
        backoff = min(self.max_delay_s, self.base_delay_s * 2.0**retry)
        # Jitter keeps clients that failed together from retrying together; not security.
        return backoff * random.uniform(0.5, 1.0)  # noqa: S311


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """The wait a response asks for: `retry-after-ms`, or `retry-after` in seconds or a date."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        with contextlib.suppress(ValueError):
            seconds = float(headers.get(name, "")) * scale
            return seconds if math.isfinite(seconds) else None
    with contextlib.suppress(TypeError, ValueError):
        when = email.utils.parsedate_to_datetime(headers.get("retry-after", ""))
        return float(when.timestamp()) - time.time()
    return None


_STATUS_ERRORS: dict[int, type[LLMError]] = {
    401: AuthenticationFailed,
    403: AuthenticationFailed,
    408: LLMTimeout,
    409: ProviderUnavailable,
    429: RateLimited,
}
_TIMEOUTS = (httpx2.TimeoutException, openai.APITimeoutError, anthropic.APITimeoutError)
_UNREACHABLE = (httpx2.TransportError, openai.APIConnectionError, anthropic.APIConnectionError)


def error_for_status(
    status: int, message: str, provider: str, model: str, *, retry_after_s: float | None = None
) -> LLMError:
    """The `LLMError` for an HTTP status: 408, 409, 429 and 5xx are retryable."""
    kind = _STATUS_ERRORS.get(status) or (ProviderUnavailable if status >= 500 else BadRequest)
    return kind(
        message, provider=provider, model=model, status_code=status, retry_after_s=retry_after_s
    )


def transport_error(exc: Exception, *, provider: str, model: str) -> LLMError | None:
    """Timeouts and connection failures, raised by the SDKs or the HTTP client below them."""
    if isinstance(exc, _TIMEOUTS):
        return LLMTimeout(f"request timed out: {exc}", provider=provider, model=model)
    if isinstance(exc, _UNREACHABLE):
        return ProviderUnavailable(f"connection failed: {exc}", provider=provider, model=model)
    return None


@dataclass
class _Call:
    """One attempt's arguments, and whether any text has reached the caller yet."""

    model: str
    messages: Sequence[Message]
    system: str | None
    max_tokens: int
    timeout_s: float
    on_delta: DeltaCallback | None
    tools: Sequence[ToolSpec]
    delivered: bool = False

    async def emit(self, text: str) -> None:
        self.delivered = True
        if self.on_delta is not None:
            result = self.on_delta(text)
            if inspect.isawaitable(result):
                await result


class StreamingProvider:
    """The retry loop, deadline and client setup shared by the providers.

    Subclasses make their SDK client and stream one attempt. `sleep` is the backoff's clock,
    replaceable in tests.
    """

    name: str
    default_base_url: ClassVar[str]
    sdk_errors: ClassVar[tuple[type[Exception], ...]]

    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        name: str | None = None,
        timeout_s: float = 600.0,
        retry: RetryPolicy | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.name = name or self.name
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        # Explicit values keep the SDKs from reading their environment variables and credential
        # files; local compatible servers need no key, but the SDKs will not start without one.
        self._connect(base_url or self.default_base_url, api_key or "unused", timeout_s)

    async def complete(
        self,
        model: str,
        messages: Sequence[Message],
        *,
        system: str | None = None,
        max_tokens: int,
        timeout_s: float,
        on_delta: DeltaCallback | None = None,
        tools: Sequence[ToolSpec] | None = None,
    ) -> Completion:
        """Run one completion with retries; `timeout_s` bounds each attempt. Raises `LLMError`.

        A failure after text reached `on_delta` is raised, not retried: replaying the call
        would send the caller the same text twice.
        """
        for retry in itertools.count():
            call = _Call(model, messages, system, max_tokens, timeout_s, on_delta, tools or ())
            try:
                return await self._attempt(call)
            except LLMError as error:
                if not error.retryable or call.delivered or retry >= self.retry.max_retries:
                    raise
                delay = self.retry.delay_s(retry, error.retry_after_s)
                log.info(
                    "llm_retry",
                    provider=self.name,
                    model=model,
                    retry=retry + 1,
                    delay_s=round(delay, 3),
                    error=str(error),
                )
                await self._sleep(delay)
        raise AssertionError("unreachable")

    async def _attempt(self, call: _Call) -> Completion:
        try:
            async with asyncio.timeout(call.timeout_s):
                return await self._stream(call)
        except TimeoutError as exc:
            message = f"no complete answer within {call.timeout_s:g}s"
            raise LLMTimeout(message, provider=self.name, model=call.model) from exc
        except self.sdk_errors as exc:
            if (error := transport_error(exc, provider=self.name, model=call.model)) is None:
                error = self._translate(exc, call)
            raise error from exc

    def _truncated(self, model: str) -> LLMError:
        # A stream that ends without a finish reason was cut off, not completed.
        message = "stream ended before the answer finished"
        return ProviderUnavailable(message, provider=self.name, model=model)

    async def aclose(self) -> None:
        """Close the SDK's HTTP connections."""
        raise NotImplementedError

    def _connect(self, base_url: str, api_key: str, timeout_s: float) -> None:
        raise NotImplementedError

    async def _stream(self, call: _Call) -> Completion:
        raise NotImplementedError

    def _translate(self, exc: Exception, call: _Call) -> LLMError:
        raise NotImplementedError

    def _status_error(
        self,
        call: _Call,
        status: int,
        message: str,
        headers: Mapping[str, str],
        said: str,
        param: str | None = None,
    ) -> LLMError:
        """The error for an HTTP status; `said` is the server's own words, for tool refusals."""
        if call.tools and refuses_tools(status, said, param=param):
            return ToolsUnsupported(
                message, provider=self.name, model=call.model, status_code=status
            )
        retry_after_s = retry_after_seconds(headers)
        return error_for_status(status, message, self.name, call.model, retry_after_s=retry_after_s)


# The SDKs' own retries are off (max_retries=0) so that RetryPolicy is the only one: nested
# retries would multiply attempts (3 x 3), stack two backoff schedules past the caller's
# deadline, retry invisibly to our logs, and delay the router's fallback to another model.
_SDK_MAX_RETRIES = 0


class OpenAIProvider(StreamingProvider):
    """OpenAI, or any OpenAI-compatible server, through `AsyncOpenAI` chat completions."""

    name = "openai"
    default_base_url = "https://api.openai.com/v1"
    sdk_errors = (openai.OpenAIError, httpx2.HTTPError)
    client: openai.AsyncOpenAI

    def _connect(self, base_url: str, api_key: str, timeout_s: float) -> None:
        self.client = openai.AsyncOpenAI(
            api_key=api_key, base_url=base_url, max_retries=_SDK_MAX_RETRIES, timeout=timeout_s
        )

    async def aclose(self) -> None:
        await self.client.close()

    async def _stream(self, call: _Call) -> Completion:
        body: dict[str, object] = {
            "model": call.model,
            "messages": openai_messages(call.messages, call.system),
            "max_completion_tokens": call.max_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if call.tools:
            body["tools"] = openai_tools(call.tools)
        # The same request `chat.completions.create` sends, through the client's own request
        # path (headers, auth, errors, SSE parsing) but without `create`'s type-driven walk of
        # the body, which only renames aliased keys and formats dates and files (none occur
        # here) and costs ~8 ms at 40 messages: an agent loop pays it on every turn, growing.
        stream = await self.client.post(
            "/chat/completions",
            body=body,
            cast_to=ChatCompletion,
            options={"timeout": call.timeout_s},
            stream=True,
            stream_cls=openai.AsyncStream[ChatCompletionChunk],
        )
        parts: list[str] = []
        tool_calls = StreamedToolCalls()
        finish: str | None = None
        served_model, input_tokens, output_tokens = call.model, 0, 0
        async with stream:
            async for chunk in stream:
                served_model = chunk.model or served_model
                if chunk.usage is not None:
                    input_tokens = chunk.usage.prompt_tokens
                    output_tokens = chunk.usage.completion_tokens
                for choice in chunk.choices[:1]:
                    if choice.delta.content:
                        parts.append(choice.delta.content)
                        await call.emit(choice.delta.content)
                    tool_calls.add_openai(choice.delta.tool_calls or ())
                    finish = choice.finish_reason or finish
        if finish is None:
            raise self._truncated(call.model)
        calls = tool_calls.calls()
        if calls and finish == "stop":
            # Some compatible servers (older Ollama, vLLM) say "stop" after calling tools.
            finish = "tool_calls"
        text = "".join(parts)
        tokens = (input_tokens, output_tokens)
        return Completion(text, served_model, self.name, *tokens, finish, calls)

    def _translate(self, exc: Exception, call: _Call) -> LLMError:
        if isinstance(exc, openai.APIStatusError):
            # `exc.message` is "Error code: 400 - <whole body>"; the body's own message is
            # what the server said (OpenAI nests it under "error", vLLM does not).
            said = exc.body.get("message") if isinstance(exc.body, dict) else None
            message = said if isinstance(said, str) else exc.message
            return self._status_error(
                call, exc.status_code, exc.message, exc.response.headers, message, exc.param
            )
        if isinstance(exc, openai.APIError):
            # An error event inside a 200 stream: the server failed mid-answer.
            return ProviderUnavailable(exc.message, provider=self.name, model=call.model)
        return BadRequest(str(exc), provider=self.name, model=call.model)


# Anthropic reports errors inside a 200 stream by type; these are the statuses they stand for.
_ANTHROPIC_ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}

_ANTHROPIC_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


@dataclass
class _AnthropicAnswer:
    """What an Anthropic stream has said so far."""

    model: str
    parts: list[str] = field(default_factory=list)
    tool_calls: StreamedToolCalls = field(default_factory=StreamedToolCalls)
    input_tokens: int = 0
    output_tokens: int = 0
    stop_reason: str | None = None


class AnthropicProvider(StreamingProvider):
    """Anthropic through `AsyncAnthropic` messages streaming.

    The raw event stream is read rather than the SDK's `MessageStream`: that one parses tool
    input as it arrives and aborts the whole answer on a model's malformed JSON, where a
    `ToolCall` with `arguments_error` lets the agent tell the model.
    """

    name = "anthropic"
    default_base_url = "https://api.anthropic.com"
    sdk_errors = (anthropic.AnthropicError, httpx2.HTTPError)
    client: anthropic.AsyncAnthropic

    def _connect(self, base_url: str, api_key: str, timeout_s: float) -> None:
        self.client = anthropic.AsyncAnthropic(
            api_key=api_key, base_url=base_url, max_retries=_SDK_MAX_RETRIES, timeout=timeout_s
        )

    async def aclose(self) -> None:
        await self.client.close()

    async def _stream(self, call: _Call) -> Completion:
        system, turns = anthropic_messages(call.messages, call.system)
        body: dict[str, object] = {
            "model": call.model,
            "max_tokens": call.max_tokens,
            "messages": turns,
            "stream": True,
        }
        if system:
            body["system"] = system
        if call.tools:
            body["tools"] = anthropic_tools(call.tools)
        # As for OpenAI: `messages.create`'s request, without its walk of the body.
        stream = await self.client.post(
            "/v1/messages",
            body=body,
            cast_to=anthropic.types.Message,
            options={"timeout": call.timeout_s},
            stream=True,
            stream_cls=anthropic.AsyncStream[anthropic.types.RawMessageStreamEvent],
        )
        answer = _AnthropicAnswer(call.model)
        async with stream:
            async for event in stream:
                await self._take(event, answer, call)
        if answer.stop_reason is None:
            raise self._truncated(call.model)
        finish = _ANTHROPIC_FINISH.get(answer.stop_reason, answer.stop_reason)
        tokens = (answer.input_tokens, answer.output_tokens)
        text, calls = "".join(answer.parts), answer.tool_calls.calls()
        return Completion(text, answer.model, self.name, *tokens, finish, calls)

    async def _take(
        self, event: anthropic.types.RawMessageStreamEvent, answer: _AnthropicAnswer, call: _Call
    ) -> None:
        if event.type == "message_start":
            answer.model = event.message.model or answer.model
            answer.input_tokens = event.message.usage.input_tokens
            answer.output_tokens = event.message.usage.output_tokens
        elif event.type == "content_block_start" and event.content_block.type == "tool_use":
            block = event.content_block
            answer.tool_calls.start(event.index, block.id, block.name, block.input)
        elif event.type == "content_block_delta" and event.delta.type == "text_delta":
            answer.parts.append(event.delta.text)
            await call.emit(event.delta.text)
        elif event.type == "content_block_delta" and event.delta.type == "input_json_delta":
            answer.tool_calls.extend(event.index, event.delta.partial_json)
        elif event.type == "message_delta":
            answer.stop_reason = event.delta.stop_reason or answer.stop_reason
            # Usage here is cumulative; input tokens only when the server restates them.
            answer.output_tokens = event.usage.output_tokens
            if event.usage.input_tokens is not None:
                answer.input_tokens = event.usage.input_tokens

    def _translate(self, exc: Exception, call: _Call) -> LLMError:
        if isinstance(exc, anthropic.APIStatusError):
            status = exc.status_code
            if status < 400:
                status = _ANTHROPIC_ERROR_STATUS.get(exc.type or "", 500)
            message = exc.api_message or exc.message
            return self._status_error(call, status, message, exc.response.headers, message)
        if isinstance(exc, anthropic.APIError):
            return ProviderUnavailable(exc.message, provider=self.name, model=call.model)
        return BadRequest(str(exc), provider=self.name, model=call.model)
