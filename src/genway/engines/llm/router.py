"""The model router: which models serve each agent task, tried in order until one answers.

The routing table maps a task (research, wireframe, code, qa, pedagogy, judge, synthesis) to
an ordered list of `provider:model` strings. Defaults ship in `routing.json`; a JSON file of
the same shape replaces the list of each task it names. A model whose provider is not
configured is skipped, so one table serves deployments with any subset of vendors.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import structlog

from genway.engines.llm.prices import PriceTable
from genway.engines.llm.providers import (
    AnthropicProvider,
    Completion,
    DeltaCallback,
    LLMError,
    LLMProvider,
    Message,
    OpenAIProvider,
    RetryPolicy,
    ToolSpec,
)

log = structlog.get_logger("genway.engines.llm")

TASKS = ("research", "wireframe", "code", "qa", "pedagogy", "judge", "synthesis")


class RoutingError(LLMError):
    """No model can serve the request: unknown task, bad `provider:model`, nothing configured."""

    retryable = False


@dataclass(frozen=True)
class ModelRef:
    """One `provider:model` entry; the model part may itself contain colons (`llama3:8b`)."""

    provider: str
    model: str

    @classmethod
    def parse(cls, spec: str) -> ModelRef:
        """Parse `provider:model`. Raises `RoutingError`."""
        provider, _, model = spec.partition(":")
        if not provider or not model:
            raise RoutingError(f"model {spec!r} is not of the form 'provider:model'")
        return cls(provider, model)

    def __str__(self) -> str:
        return f"{self.provider}:{self.model}"


@dataclass(frozen=True)
class Attempt:
    """A model about to be tried; `previous_error` is why the one before it failed."""

    task: str
    provider: str
    model: str
    index: int
    previous_error: LLMError | None


@dataclass(frozen=True)
class UsageRecord:
    """Tokens one successful call used, for metering."""

    task: str
    provider: str
    model: str
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class RouteRow:
    """One task's route for display: its models and which of their providers are configured."""

    task: str
    models: tuple[str, ...]
    configured_providers: tuple[str, ...]


AttemptCallback = Callable[[Attempt], Awaitable[None] | None]
UsageCallback = Callable[[UsageRecord], Awaitable[None] | None]


def load_routing_table(path: str | Path | None = None) -> dict[str, list[str]]:
    """The packaged routes, each task named in the JSON file at `path` replacing its default.

    Raises `RoutingError` if a file is not a JSON object of task to non-empty list of
    `provider:model` strings, and `OSError` if `path` cannot be read.
    """
    packaged = resources.files("genway.engines.llm").joinpath("routing.json")
    table = _parse_table(packaged.read_text(encoding="utf-8"), "routing.json")
    if path is not None:
        table.update(_parse_table(Path(path).read_text(encoding="utf-8"), str(path)))
    return table


def _parse_table(text: str, source: str) -> dict[str, list[str]]:
    try:
        raw: Any = json.loads(text)
    except ValueError as exc:
        raise RoutingError(f"{source}: not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise RoutingError(f"{source}: expected an object of task to list of models")
    table: dict[str, list[str]] = {}
    for task, models in raw.items():
        if not isinstance(models, list) or not models:
            raise RoutingError(f"{source}: task {task!r} needs a non-empty list of models")
        if not all(isinstance(m, str) for m in models):
            raise RoutingError(f"{source}: task {task!r} models must be 'provider:model' strings")
        table[task] = [str(ModelRef.parse(m)) for m in models]
    return table


async def _notify(callback: Callable[[Any], Awaitable[None] | None] | None, value: Any) -> None:
    if callback is not None:
        result = callback(value)
        if inspect.isawaitable(result):
            await result


class ModelRouter:
    """Tries a task's models in order, falling back on retryable errors, and meters usage.

    `on_usage` (here or per call; both are called) receives a `UsageRecord` after each
    successful call. Failed calls report nothing: the vendors do not say what they used.
    """

    def __init__(
        self,
        table: Mapping[str, Sequence[str]],
        providers: Mapping[str, LLMProvider],
        *,
        on_usage: UsageCallback | None = None,
        max_tokens: int = 4096,
        timeout_s: float = 180.0,
        prices: PriceTable | None = None,
    ) -> None:
        self.table = {task: [ModelRef.parse(m) for m in models] for task, models in table.items()}
        self.providers = dict(providers)
        self.on_usage = on_usage
        self.max_tokens = max_tokens
        self.timeout_s = timeout_s
        self.prices = prices or PriceTable({})

    def candidates(self, task: str, *, model_override: str | None = None) -> list[ModelRef]:
        """The models to try for `task`, in order, whose provider is configured.

        A `model_override` (`provider:model`) is the only candidate: a model the caller chose
        is never silently swapped for another. Raises `RoutingError`.
        """
        configured = ", ".join(sorted(self.providers)) or "none"
        if model_override is not None:
            ref = ModelRef.parse(model_override)
            if ref.provider not in self.providers:
                message = f"provider {ref.provider!r} is not configured (configured: {configured})"
                raise RoutingError(f"model {model_override!r}: {message}")
            return [ref]
        if task not in self.table:
            raise RoutingError(f"no route for task {task!r} (known: {', '.join(self.table)})")
        refs = [ref for ref in self.table[task] if ref.provider in self.providers]
        if not refs:
            wanted = ", ".join(sorted({ref.provider for ref in self.table[task]}))
            raise RoutingError(
                f"task {task!r} has no configured provider: its models need one of {wanted} "
                f"(configured: {configured}); set that provider's base URL or API key"
            )
        return refs

    async def complete(
        self,
        task: str,
        messages: Sequence[Message],
        *,
        system: str | None = None,
        model_override: str | None = None,
        max_tokens: int | None = None,
        timeout_s: float | None = None,
        on_delta: DeltaCallback | None = None,
        on_attempt: AttemptCallback | None = None,
        on_usage: UsageCallback | None = None,
        tools: Sequence[ToolSpec] | None = None,
    ) -> Completion:
        """Complete `messages` with the first of the task's models that succeeds.

        Each model gets its provider's own retries; a retryable failure then moves on to the
        next model, a non-retryable one is raised at once. `on_attempt` hears of every model
        before it is tried, so a caller streaming `on_delta` text can discard a failed
        attempt's partial output. With `tools` the model may answer with `tool_calls`; a
        server that refuses tools raises `ToolsUnsupported` at once, since the next model
        would be asked the same thing: the caller decides whether to go on without tools.
        Raises `RoutingError`, or the last model's `LLMError`.
        """
        refs = self.candidates(task, model_override=model_override)
        last_error: LLMError | None = None
        for index, ref in enumerate(refs):
            await _notify(on_attempt, Attempt(task, ref.provider, ref.model, index, last_error))
            try:
                completion = await self.providers[ref.provider].complete(
                    ref.model,
                    messages,
                    system=system,
                    max_tokens=max_tokens or self.max_tokens,
                    timeout_s=timeout_s or self.timeout_s,
                    on_delta=on_delta,
                    tools=tools,
                )
            except LLMError as error:
                if not error.retryable:
                    raise
                last_error = error
                log.warning("llm_fallback", task=task, model=str(ref), error=str(error))
                continue
            tokens = (completion.input_tokens, completion.output_tokens)
            usage = UsageRecord(task, ref.provider, completion.model, *tokens)
            await _notify(self.on_usage, usage)
            await _notify(on_usage, usage)
            return completion
        assert last_error is not None
        raise last_error

    def describe(self) -> list[RouteRow]:
        """Every task's route, for the CLI: models in order and the configured providers."""
        rows = []
        for task, refs in self.table.items():
            providers = dict.fromkeys(r.provider for r in refs if r.provider in self.providers)
            rows.append(RouteRow(task, tuple(str(r) for r in refs), tuple(providers)))
        return rows

    async def aclose(self) -> None:
        """Close the providers' HTTP connections."""
        for provider in self.providers.values():
            await provider.aclose()


def build_providers(
    openai_base_url: str | None,
    openai_api_key: str | None,
    anthropic_base_url: str | None,
    anthropic_api_key: str | None,
    timeout_s: float = 600.0,
    *,
    retry: RetryPolicy | None = None,
) -> dict[str, LLMProvider]:
    """Providers for the vendors given a base URL or an API key; the others stay out.

    `timeout_s` is the SDK clients' HTTP timeout; each call's own deadline is passed per call.
    """
    providers: dict[str, LLMProvider] = {}
    if openai_base_url or openai_api_key:
        providers["openai"] = OpenAIProvider(
            base_url=openai_base_url, api_key=openai_api_key, timeout_s=timeout_s, retry=retry
        )
    if anthropic_base_url or anthropic_api_key:
        providers["anthropic"] = AnthropicProvider(
            base_url=anthropic_base_url, api_key=anthropic_api_key, timeout_s=timeout_s, retry=retry
        )
    return providers
