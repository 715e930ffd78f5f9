"""Native tool calling: the conversation types, and each vendor's wire shapes for them.

A conversation is a list of `Message`s: plain text turns (`ChatMessage`), assistant turns that
called tools (`AssistantToolCalls`) and the tools' answers (`ToolResult`). The functions here
turn it into OpenAI chat messages or Anthropic turns, and rebuild `ToolCall`s from the pieces
each vendor streams.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict, TypeGuard

from anthropic.types import (
    MessageParam,
    TextBlockParam,
    ToolParam,
    ToolResultBlockParam,
    ToolUseBlockParam,
)
from openai.types.chat import (
    ChatCompletionFunctionToolParam,
    ChatCompletionMessageFunctionToolCallParam,
    ChatCompletionMessageParam,
)
from openai.types.chat.chat_completion_chunk import ChoiceDeltaToolCall


@dataclass(frozen=True)
class ToolSpec:
    """A tool the model may call; `parameters` is a JSON Schema of `"type": "object"`."""

    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True)
class ToolCall:
    """A call the model made. `arguments_error` says why `arguments` is `{}` despite input."""

    id: str
    name: str
    arguments: dict[str, Any]
    arguments_error: str | None = None


class ChatMessage(TypedDict):
    role: Literal["system", "user", "assistant"]
    content: str


class AssistantToolCalls(TypedDict):
    """An assistant turn that called tools; `content` is any text said alongside ("" if none)."""

    role: Literal["assistant"]
    content: str
    tool_calls: list[ToolCall]


class ToolResult(TypedDict):
    """One tool's answer to the `ToolCall` whose id is `tool_call_id`."""

    role: Literal["tool"]
    tool_call_id: str
    name: str
    content: str
    is_error: bool


Message = ChatMessage | AssistantToolCalls | ToolResult


def calls_tools(message: Message) -> TypeGuard[AssistantToolCalls]:
    """Whether `message` is an assistant turn that called tools."""
    return message["role"] == "assistant" and "tool_calls" in message


# Servers without tools refuse them with a 400 (Ollama, vLLM, OpenAI-compatible gateways), a 404
# (OpenRouter: "No endpoints found that support tool use"), a 422 (validating proxies) or, in
# older llama.cpp builds started without --jinja, a 500.
_TOOL_REFUSAL_STATUSES = frozenset({400, 404, 422, 500})
# Anthropic names the offending field first ("messages.3: ...", "tools.0.custom.name: ...").
_FIELD_PATH = re.compile(r"^\s*(messages|tools)\.\d")


def refuses_tools(status: int, message: str, *, param: str | None = None) -> bool:
    """Whether an error answering a request with tools says the server cannot use tools.

    A complaint about one field of the request (OpenAI's `param`, Anthropic's field path) is a
    malformed tool or conversation, which a server that supports tools also refuses.
    """
    if status not in _TOOL_REFUSAL_STATUSES or "tool" not in message.lower():
        return False
    return not param and _FIELD_PATH.match(message) is None


def tool_call(call_id: str, name: str, raw_arguments: str) -> ToolCall:
    """A `ToolCall` from the JSON text the model wrote; bad JSON is reported, not raised."""
    if not raw_arguments.strip():
        return ToolCall(call_id, name, {})
    try:
        arguments = json.loads(raw_arguments)
    except ValueError as exc:
        error = f"arguments are not valid JSON ({exc}): {raw_arguments[:500]}"
        return ToolCall(call_id, name, {}, error)
    if not isinstance(arguments, dict):
        error = f"arguments must be a JSON object, not {type(arguments).__name__}"
        return ToolCall(call_id, name, {}, error)
    return ToolCall(call_id, name, arguments)


@dataclass
class _PartialCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)
    initial: dict[str, Any] | None = None

    def finish(self) -> ToolCall:
        raw = "".join(self.arguments)
        if not raw.strip() and self.initial:
            return ToolCall(self.id, self.name, dict(self.initial))
        return tool_call(self.id, self.name, raw)


@dataclass
class StreamedToolCalls:
    """Tool calls assembled from streamed fragments, keyed by the vendor's index.

    OpenAI sends the id and name in a call's first fragment and its arguments in string pieces;
    Anthropic starts a `tool_use` block with id, name and (empty) input, then streams
    `partial_json`.
    """

    _calls: dict[int, _PartialCall] = field(default_factory=dict)

    def start(
        self,
        index: int,
        call_id: str | None,
        name: str | None,
        initial: dict[str, Any] | None = None,
    ) -> None:
        partial = self._calls.setdefault(index, _PartialCall())
        partial.id = call_id or partial.id
        partial.name = name or partial.name
        partial.initial = initial if initial is not None else partial.initial

    def extend(self, index: int, arguments: str | None) -> None:
        if arguments:
            self._calls.setdefault(index, _PartialCall()).arguments.append(arguments)

    def add_openai(self, fragments: Sequence[ChoiceDeltaToolCall]) -> None:
        for fragment in fragments:
            index: int | None = getattr(fragment, "index", None)
            if index is None:
                # Some compatible servers (older Ollama) omit `index`: an id starts a new call.
                index = len(self._calls) if fragment.id or not self._calls else max(self._calls)
            function = fragment.function
            self.start(index, fragment.id, function.name if function else None)
            self.extend(index, function.arguments if function else None)

    def calls(self) -> tuple[ToolCall, ...]:
        return tuple(partial.finish() for _, partial in sorted(self._calls.items()))


def openai_tools(tools: Sequence[ToolSpec]) -> list[ChatCompletionFunctionToolParam]:
    return [
        {
            "type": "function",
            "function": {
                "name": tool.name,
                "description": tool.description,
                "parameters": tool.parameters,
            },
        }
        for tool in tools
    ]


def openai_messages(
    messages: Sequence[Message], system: str | None
) -> list[ChatCompletionMessageParam]:
    """Chat Completions messages: `system` first, tool turns in OpenAI's shapes."""
    converted: list[ChatCompletionMessageParam] = []
    if system:
        converted.append({"role": "system", "content": system})
    for message in messages:
        if message["role"] == "tool":
            converted.append(
                {
                    "role": "tool",
                    "tool_call_id": message["tool_call_id"],
                    "content": message["content"],
                }
            )
        elif calls_tools(message):
            calls: list[ChatCompletionMessageFunctionToolCallParam] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
                }
                for call in message["tool_calls"]
            ]
            text = message["content"] or None
            converted.append({"role": "assistant", "content": text, "tool_calls": calls})
        elif message["role"] == "system":
            converted.append({"role": "system", "content": message["content"]})
        elif message["role"] == "user":
            converted.append({"role": "user", "content": message["content"]})
        else:
            converted.append({"role": "assistant", "content": message["content"]})
    return converted


def anthropic_tools(tools: Sequence[ToolSpec]) -> list[ToolParam]:
    return [
        {"name": tool.name, "description": tool.description, "input_schema": tool.parameters}
        for tool in tools
    ]


def anthropic_messages(
    messages: Sequence[Message], system: str | None
) -> tuple[str | None, list[MessageParam]]:
    """The top-level system text and the turns, tool turns as content blocks.

    A run of `ToolResult`s becomes one user turn: Anthropic wants every result of an assistant
    turn in the next message. A user text right after them joins that turn, after the results.
    """
    # System text goes to the top-level `system` field: that works on every API version and
    # Anthropic-compatible gateway, where role "system" inside `messages` does not.
    systems = [system] if system else []
    turns: list[MessageParam] = []
    results: list[ToolResultBlockParam | TextBlockParam] | None = None
    for message in messages:
        if message["role"] == "tool":
            if results is None:
                results = []
                turns.append({"role": "user", "content": results})
            results.append(
                {
                    "type": "tool_result",
                    "tool_use_id": message["tool_call_id"],
                    "content": message["content"],
                    "is_error": message["is_error"],
                }
            )
            continue
        if message["role"] == "system":
            systems.append(message["content"])
        elif message["role"] == "user" and results is not None:
            results.append({"type": "text", "text": message["content"]})
        elif calls_tools(message):
            turns.append({"role": "assistant", "content": _tool_use_blocks(message)})
        elif message["role"] == "user":
            turns.append({"role": "user", "content": message["content"]})
        else:
            turns.append({"role": "assistant", "content": message["content"]})
        results = None
    return "\n\n".join(systems) or None, turns


def _tool_use_blocks(message: AssistantToolCalls) -> list[TextBlockParam | ToolUseBlockParam]:
    blocks: list[TextBlockParam | ToolUseBlockParam] = []
    if message["content"]:
        # Anthropic refuses empty text blocks.
        blocks.append({"type": "text", "text": message["content"]})
    for call in message["tool_calls"]:
        blocks.append(
            {"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments}
        )
    return blocks
