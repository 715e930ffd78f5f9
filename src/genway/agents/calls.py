"""One model call made on behalf of a job: routed, streamed as events, metered."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from genway.agents.recording import DELTA, EventRecorder
from genway.engines.llm.prices import MICRO, PriceTable
from genway.engines.llm.providers import (
    Completion,
    LLMError,
    LLMTimeout,
    Message,
    RateLimited,
    ToolSpec,
)
from genway.engines.llm.router import Attempt, ModelRouter, RoutingError, UsageRecord
from genway.ratelimit.usage import Metric
from genway.worker.context import JobFailed


@dataclass(frozen=True)
class JobRef:
    """The job a call is made for: where its events and usage go."""

    job_id: int
    org_id: int
    user_id: int | None


@dataclass
class UsageTally:
    """Tokens used by a job's calls, in total and per `provider:model`."""

    calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost_microusd: int = 0
    by_model: dict[str, dict[str, int]] = field(default_factory=dict)
    unpriced: set[str] = field(default_factory=set)

    def add(self, record: UsageRecord, cost_microusd: int | None = None) -> None:
        """Count one call; `cost_microusd` None means its model has no price."""
        name = f"{record.provider}:{record.model}"
        self._count(name, 1, record.input_tokens, record.output_tokens, cost_microusd or 0)
        if cost_microusd is None:
            self.unpriced.add(name)

    def merge(self, other: UsageTally) -> None:
        for name, counts in other.by_model.items():
            self._count(
                name,
                counts["calls"],
                counts["tokens_in"],
                counts["tokens_out"],
                counts.get("cost_microusd", 0),
            )
        self.unpriced |= other.unpriced

    def _count(self, name: str, calls: int, tokens_in: int, tokens_out: int, cost: int) -> None:
        self.calls += calls
        self.tokens_in += tokens_in
        self.tokens_out += tokens_out
        self.cost_microusd += cost
        model = self.by_model.setdefault(
            name, {"calls": 0, "tokens_in": 0, "tokens_out": 0, "cost_microusd": 0}
        )
        model["calls"] += calls
        model["tokens_in"] += tokens_in
        model["tokens_out"] += tokens_out
        model["cost_microusd"] += cost

    def as_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "cost_usd": self.cost_microusd / MICRO,
            "unpriced_models": sorted(self.unpriced),
            "by_model": self.by_model,
        }


@dataclass(frozen=True)
class _Reporter:
    """Where a call's attempts, streamed text and tokens are recorded."""

    recorder: EventRecorder
    ref: JobRef
    tally: UsageTally
    task: str
    every_attempt: bool
    prices: PriceTable

    def attempt(self, attempt: Attempt) -> None:
        if attempt.index == 0 and not self.every_attempt:
            return
        previous = str(attempt.previous_error) if attempt.previous_error else None
        model = f"{attempt.provider}:{attempt.model}"
        data = {"task": self.task, "model": model, "previous_error": previous}
        self.recorder.output(self.ref.job_id, self.ref.org_id, "attempt", data)

    def delta(self, text: str) -> None:
        self.recorder.output(self.ref.job_id, self.ref.org_id, DELTA, {"text": text})

    def usage(self, record: UsageRecord) -> None:
        cost = self.prices.cost_microusd(
            record.provider, record.model, record.input_tokens, record.output_tokens
        )
        self.tally.add(record, cost)
        model, ref = f"{record.provider}:{record.model}", self.ref
        self.recorder.usage(
            ref.org_id, ref.user_id, f"{Metric.TOKENS_IN}:{model}", record.input_tokens
        )
        self.recorder.usage(
            ref.org_id, ref.user_id, f"{Metric.TOKENS_OUT}:{model}", record.output_tokens
        )
        if cost:
            self.recorder.usage(ref.org_id, ref.user_id, f"{Metric.COST}:{model}", cost)


async def call_model(
    router: ModelRouter,
    recorder: EventRecorder,
    ref: JobRef,
    tally: UsageTally,
    *,
    task: str,
    messages: Sequence[Message],
    system: str,
    model_override: str | None = None,
    stream: bool = True,
    every_attempt: bool = True,
    tools: Sequence[ToolSpec] | None = None,
) -> Completion:
    """Complete `messages` with the task's route, recording each attempt (so a client can
    discard a failed attempt's partial text; only the fallbacks when not `every_attempt`), the
    streamed text and the tokens. Raises LLMError."""
    reporter = _Reporter(recorder, ref, tally, task, every_attempt, router.prices)
    return await router.complete(
        task,
        messages,
        system=system,
        model_override=model_override,
        on_attempt=reporter.attempt,
        on_delta=reporter.delta if stream else None,
        on_usage=reporter.usage,
        tools=tools,
    )


def llm_failure(error: LLMError) -> JobFailed:
    """The job failure for a model error that no route could get past."""
    if isinstance(error, RoutingError):
        code = "llm_not_configured"
    elif isinstance(error, LLMTimeout):
        code = "llm_timeout"
    elif isinstance(error, RateLimited):
        code = "llm_rate_limited"
    elif error.retryable:
        code = "llm_unavailable"
    else:
        code = "llm_error"
    details = {"provider": error.provider, "model": error.model, "status": error.status_code}
    return JobFailed(code, str(error), details)
