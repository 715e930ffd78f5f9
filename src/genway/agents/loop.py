"""The agent loop: the model calls tools until it finishes, answers, or runs out of budget.

Each turn sends the conversation and the tools through the vendor's native tool calling; the
model's tool calls run one after another and their results go back as the next turn. Every
call and its result is a log entry of the run (the `tool` output event, shown by
`.../agent/run/{id}/logs` in Codegen's log shape). The loop stops when the model calls
`finish` (or `submit_plan` in the planning phase), when it answers without calling a tool (a
question needs no edits), or when a bound is reached: steps, tokens, or the run's deadline
(enforced by the worker around the whole run).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from genway.agents.calls import JobRef, UsageTally, call_model, llm_failure
from genway.agents.recording import EventRecorder
from genway.agents.tools import (
    EDIT_FILE,
    FINISH,
    LIST_FILES,
    READ_FILE,
    RUN_COMMAND,
    SEARCH,
    SUBMIT_PLAN,
    WRITE_FILE,
    ToolError,
    Workspace,
)
from genway.engines.llm.providers import (
    AssistantToolCalls,
    Completion,
    LLMError,
    Message,
    ToolCall,
    ToolResult,
    ToolSpec,
    ToolsUnsupported,
)
from genway.engines.llm.router import ModelRouter
from genway.worker.context import JobContext, until_cancelled

LOGGED_OUTPUT_CHARS = 4000
TOOL = "tool"
THOUGHT = "thought"


@dataclass(frozen=True)
class LoopLimits:
    max_steps: int
    max_tokens: int


@dataclass
class LoopOutcome:
    """How the loop ended: `stop` is finish, answer, plan, max_steps or max_tokens."""

    stop: str
    answer: str
    steps: int
    completion: Completion | None
    plan: str | None = None
    tool_calls: int = 0
    changed: list[str] = field(default_factory=list)


@dataclass
class AgentLoop:
    """One run's loop: the model route, where events go, the workspace and the bounds."""

    ctx: JobContext
    router: ModelRouter
    recorder: EventRecorder
    ref: JobRef
    tally: UsageTally
    workspace: Workspace
    task: str
    system: str
    limits: LoopLimits
    model_override: str | None = None

    async def run(self, messages: list[Message], tools: Sequence[ToolSpec]) -> LoopOutcome:
        """Drive the model until it stops. Raises LLMError's job failure, ToolsUnsupported
        (the caller falls back to structured answers), JobCancelled."""
        outcome = LoopOutcome(stop="max_steps", answer="", steps=0, completion=None)
        while outcome.steps < self.limits.max_steps:
            self.ctx.raise_if_cancelled()
            if self.tally.tokens_in + self.tally.tokens_out >= self.limits.max_tokens:
                outcome.stop = "max_tokens"
                return outcome
            outcome.steps += 1
            completion = await until_cancelled(self.ctx, self._call(messages, tools))
            outcome.completion = completion
            if completion.text.strip():
                self._record(THOUGHT, {"text": completion.text, "step": outcome.steps})
            if not completion.tool_calls:
                outcome.stop, outcome.answer = "answer", completion.text
                return outcome
            turn: AssistantToolCalls = {
                "role": "assistant",
                "content": completion.text,
                "tool_calls": list(completion.tool_calls),
            }
            messages.append(turn)
            stop = None
            for call in completion.tool_calls:
                outcome.tool_calls += 1
                result, ended = await self._use(call, completion.text, outcome)
                messages.append(result)
                stop = stop or ended
            if stop is not None:
                outcome.stop = stop
                return outcome
        return outcome

    async def _call(self, messages: list[Message], tools: Sequence[ToolSpec]) -> Completion:
        try:
            return await call_model(
                self.router,
                self.recorder,
                self.ref,
                self.tally,
                task=self.task,
                messages=messages,
                system=self.system,
                model_override=self.model_override,
                tools=tools,
                every_attempt=False,
            )
        except LLMError as error:
            if isinstance(error, ToolsUnsupported):
                raise
            raise llm_failure(error) from error

    async def _use(
        self, call: ToolCall, thought: str, outcome: LoopOutcome
    ) -> tuple[ToolResult, str | None]:
        """Run one tool call; the result for the model and, for finish/submit_plan, the stop."""
        stop: str | None = None
        is_error = False
        try:
            if call.arguments_error:
                raise ToolError(f"The arguments are not a JSON object: {call.arguments_error}")
            output = await self._dispatch(call, outcome)
            if call.name == FINISH:
                stop, outcome.answer = "finish", str(call.arguments.get("summary", ""))
            elif call.name == SUBMIT_PLAN:
                stop = "plan"
                outcome.plan = outcome.answer = str(call.arguments.get("plan", ""))
        except ToolError as exc:
            output, is_error = f"Error: {exc}", True
        except (TypeError, ValueError) as exc:  # arguments of the wrong type or shape
            output, is_error = f"Error: invalid arguments for {call.name}: {exc}", True
        self._record(
            TOOL,
            {
                "tool_name": call.name,
                "tool_input": call.arguments,
                "tool_output": output[:LOGGED_OUTPUT_CHARS],
                "is_error": is_error,
                "thought": thought[:LOGGED_OUTPUT_CHARS] or None,
                "step": outcome.steps,
            },
        )
        result: ToolResult = {
            "role": "tool",
            "tool_call_id": call.id,
            "name": call.name,
            "content": output,
            "is_error": is_error,
        }
        return result, stop

    async def _dispatch(self, call: ToolCall, outcome: LoopOutcome) -> str:
        args = call.arguments
        space = self.workspace
        if call.name == LIST_FILES:
            return await asyncio.to_thread(space.list_files, _text(args, "path", ""))
        if call.name == READ_FILE:
            start, end = _int(args, "start_line"), _int(args, "end_line")
            return await asyncio.to_thread(space.read_file, _text(args, "path"), start, end)
        if call.name == SEARCH:
            return await space.search(_text(args, "pattern"), _text(args, "path", ""))
        if call.name == WRITE_FILE:
            path = _text(args, "path")
            done = await asyncio.to_thread(space.write_file, path, _text(args, "content"))
            outcome.changed.append(path)
            return done
        if call.name == EDIT_FILE:
            path = _text(args, "path")
            old, new = _text(args, "old_text"), _text(args, "new_text")
            done = await asyncio.to_thread(space.edit_file, path, old, new)
            outcome.changed.append(path)
            return done
        if call.name == RUN_COMMAND:
            timeout = args.get("timeout_s")
            seconds = float(timeout) if isinstance(timeout, int | float) else None
            run = space.run_command(_text(args, "command"), seconds)
            return await until_cancelled(self.ctx, run)
        if call.name == FINISH:
            return "Finished."
        if call.name == SUBMIT_PLAN:
            return "Plan submitted for review."
        raise ToolError(f"There is no tool named '{call.name}'")

    def _record(self, name: str, data: dict[str, Any]) -> None:
        self.recorder.output(self.ref.job_id, self.ref.org_id, name, data)


def _text(args: dict[str, Any], name: str, default: str | None = None) -> str:
    value = args.get(name, default)
    if value is None:
        raise ToolError(f"The argument '{name}' is required")
    if not isinstance(value, str):
        raise ToolError(f"The argument '{name}' must be a string, not {json.dumps(value)[:50]}")
    return value


def _int(args: dict[str, Any], name: str) -> int | None:
    value = args.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ToolError(f"The argument '{name}' must be an integer")
    return value
