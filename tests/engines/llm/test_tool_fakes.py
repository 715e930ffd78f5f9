"""The fake servers' tool calling, read by the vendors' SDKs directly: wire shapes and checks."""

from __future__ import annotations

from typing import Any

import anthropic
import openai
import pytest
from anthropic.types import RawContentBlockDeltaEvent, RawContentBlockStartEvent, ToolUseBlock
from openai.types.chat import ChatCompletionChunk

from tests.engines.llm.conftest import Vendor

ARGUMENTS = {"path": "src/genway/app.py", "mode": "full", "lines": [1, 200]}
CALL = {"name": "read_file", "arguments": ARGUMENTS}
SCHEMA = {"type": "object", "properties": {"path": {"type": "string"}}}
OPENAI_TOOL = {"type": "function", "function": {"name": "read_file", "parameters": SCHEMA}}
ANTHROPIC_TOOL = {"name": "read_file", "description": "Read a file.", "input_schema": SCHEMA}
USER = {"role": "user", "content": "Read the app."}


@pytest.fixture
def openai_client(openai_vendor: Vendor) -> openai.AsyncOpenAI:
    server = openai_vendor.server
    return openai.AsyncOpenAI(base_url=server.base_url, api_key=server.api_key, max_retries=0)


@pytest.fixture
def anthropic_client(anthropic_vendor: Vendor) -> anthropic.AsyncAnthropic:
    server = anthropic_vendor.server
    return anthropic.AsyncAnthropic(base_url=server.base_url, api_key=server.api_key, max_retries=0)


async def test_openai_chunks_parse_as_tool_call_fragments(
    openai_vendor: Vendor, openai_client: openai.AsyncOpenAI
) -> None:
    openai_vendor.server.reply(text="", tool_calls=[CALL])

    stream = await openai_client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[USER],
        tools=[OPENAI_TOOL],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks: list[ChatCompletionChunk] = [chunk async for chunk in stream]

    fragments = [tc for c in chunks for ch in c.choices for tc in ch.delta.tool_calls or ()]
    first, *rest = fragments
    assert first.index == 0 and first.type == "function" and first.id
    assert first.id.startswith("call_")
    assert first.function is not None and first.function.name == "read_file"
    assert len(rest) > 2
    assert all(f.id is None and f.function and f.function.name is None for f in rest)
    assert chunks[0].choices[0].delta.content is None
    assert [ch.finish_reason for c in chunks for ch in c.choices][-1] == "tool_calls"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


async def test_openai_stream_helper_assembles_the_tool_call(
    openai_vendor: Vendor, openai_client: openai.AsyncOpenAI
) -> None:
    openai_vendor.server.reply(text="Reading.", tool_calls=[CALL, {**CALL, "arguments": {}}])

    async with openai_client.chat.completions.stream(
        model="gpt-4o-mini",
        messages=[USER],
        tools=[OPENAI_TOOL],
    ) as stream:
        final = await stream.get_final_completion()

    message = final.choices[0].message
    assert message.content == "Reading."
    assert message.tool_calls is not None
    assert [c.function.arguments for c in message.tool_calls] == [
        '{"path": "src/genway/app.py", "mode": "full", "lines": [1, 200]}',
        "{}",
    ]


async def test_openai_non_streaming_tool_calls(
    openai_vendor: Vendor, openai_client: openai.AsyncOpenAI
) -> None:
    openai_vendor.server.reply(text="", tool_calls=[CALL])

    completion = await openai_client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[USER],
        tools=[OPENAI_TOOL],
    )

    choice = completion.choices[0]
    assert (choice.finish_reason, choice.message.content) == ("tool_calls", None)
    [call] = choice.message.tool_calls or []
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "read_file"


@pytest.mark.parametrize(
    ("tools", "param", "words"),
    [
        ([], "tools", "empty array"),
        ([{"function": {"name": "x"}}], "tools[0].type", "Missing required parameter"),
        ([{"type": "tool", "function": {"name": "x"}}], "tools[0].type", "Supported values"),
        ([{"type": "function", "function": {"name": "a b"}}], "tools[0].function.name", "pattern"),
        (
            [{"type": "function", "function": {"name": "x", "parameters": {"type": "array"}}}],
            "tools[0].function.parameters",
            "Invalid schema",
        ),
    ],
)
async def test_openai_refuses_malformed_tools(
    openai_client: openai.AsyncOpenAI, tools: list[Any], param: str, words: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await openai_client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[USER],
            tools=tools,
        )

    assert caught.value.param == param
    assert words in caught.value.message


@pytest.mark.parametrize(
    ("messages", "words"),
    [
        (
            [USER, {"role": "tool", "tool_call_id": "call_1", "content": "x"}],
            "messages with role 'tool' must be a response to a preceeding message with "
            "'tool_calls'.",
        ),
        (
            [
                USER,
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {"id": "call_1", "type": "function", "function": {"name": "f"}},
                    ],
                },
            ],
            "'messages.[1].tool_calls[0].function.arguments': expected a string",
        ),
        (
            [
                USER,
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": f"call_{n}",
                            "type": "function",
                            "function": {"name": "f", "arguments": "{}"},
                        }
                        for n in (1, 2)
                    ],
                },
                {"role": "tool", "tool_call_id": "call_2", "content": "x"},
            ],
            "The following tool_call_ids did not have response messages: call_1",
        ),
        ([USER, {"role": "assistant", "content": None}], "expected a string, got null"),
    ],
)
async def test_openai_refuses_tool_turns_that_do_not_match(
    openai_client: openai.AsyncOpenAI, messages: list[Any], words: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await openai_client.chat.completions.create(model="gpt-4o-mini", messages=messages)

    assert words in caught.value.message
    assert caught.value.param is not None and caught.value.param.startswith("messages.[")


async def test_anthropic_events_parse_as_tool_use_blocks(
    anthropic_vendor: Vendor, anthropic_client: anthropic.AsyncAnthropic
) -> None:
    anthropic_vendor.server.reply(text="", tool_calls=[CALL])

    stream = await anthropic_client.messages.create(
        model="claude-sonnet-4-6",
        max_tokens=100,
        messages=[USER],
        tools=[ANTHROPIC_TOOL],
        stream=True,
    )
    events = [event async for event in stream]

    [start] = [e for e in events if isinstance(e, RawContentBlockStartEvent)]
    assert isinstance(start.content_block, ToolUseBlock)
    assert start.index == 0 and start.content_block.id.startswith("toolu_")
    assert start.content_block.input == {}
    deltas = [e.delta for e in events if isinstance(e, RawContentBlockDeltaEvent)]
    assert len(deltas) > 2 and all(d.type == "input_json_delta" for d in deltas)
    assert [e.type for e in events][-3:] == ["content_block_stop", "message_delta", "message_stop"]


async def test_anthropic_stream_helper_assembles_the_tool_use(
    anthropic_vendor: Vendor, anthropic_client: anthropic.AsyncAnthropic
) -> None:
    anthropic_vendor.server.reply(text="Reading.", tool_calls=[CALL])

    async with anthropic_client.messages.stream(
        model="claude-sonnet-4-6",
        max_tokens=100,
        messages=[USER],
        tools=[ANTHROPIC_TOOL],
    ) as stream:
        message = await stream.get_final_message()

    assert message.stop_reason == "tool_use"
    text, tool_use = message.content
    assert text.type == "text" and text.text == "Reading."
    assert isinstance(tool_use, ToolUseBlock) and tool_use.input == ARGUMENTS


async def test_anthropic_non_streaming_tool_use(
    anthropic_vendor: Vendor, anthropic_client: anthropic.AsyncAnthropic
) -> None:
    anthropic_vendor.server.reply(text="", tool_calls=[CALL])

    message = await anthropic_client.messages.create(
        model="claude-sonnet-4-6",
        max_tokens=100,
        messages=[USER],
        tools=[ANTHROPIC_TOOL],
    )

    [tool_use] = message.content
    assert isinstance(tool_use, ToolUseBlock)
    assert (tool_use.name, tool_use.input, message.stop_reason) == (
        "read_file",
        ARGUMENTS,
        "tool_use",
    )


def tool_use(call_id: str) -> dict[str, Any]:
    return {"type": "tool_use", "id": call_id, "name": "read_file", "input": {}}


def tool_result(call_id: str) -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": call_id, "content": "x"}


@pytest.mark.parametrize(
    ("tools", "messages", "words"),
    [
        ([{"name": "read_file"}], [USER], "tools.0.custom.input_schema: Field required"),
        (
            [{"name": "read_file", "input_schema": {"type": "string"}}],
            [USER],
            "tools.0.custom.input_schema.type: Input should be 'object'",
        ),
        ([{**ANTHROPIC_TOOL, "name": "a b"}], [USER], "tools.0.custom.name: String should match"),
        (
            [],
            [USER, {"role": "assistant", "content": [tool_use("toolu_1"), tool_use("toolu_2")]}],
            "messages.1: `tool_use` ids were found without `tool_result` blocks immediately "
            "after: toolu_1, toolu_2",
        ),
        (
            [],
            [
                USER,
                {"role": "assistant", "content": [tool_use("toolu_1")]},
                USER,
                {"role": "user", "content": [tool_result("toolu_1")]},
            ],
            "messages.1: `tool_use` ids were found without `tool_result` blocks",
        ),
        (
            [],
            [USER, {"role": "user", "content": [tool_result("toolu_9")]}],
            "messages.1.content.0: unexpected `tool_use_id` found in `tool_result` blocks: toolu_9",
        ),
        (
            [],
            [{"role": "user", "content": [{"type": "text", "text": ""}]}],
            "text content blocks must be non-empty",
        ),
    ],
)
async def test_anthropic_refuses_malformed_tools_and_unmatched_turns(
    anthropic_client: anthropic.AsyncAnthropic,
    tools: list[Any],
    messages: list[Any],
    words: str,
) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        await anthropic_client.messages.create(
            model="claude-sonnet-4-6",
            max_tokens=100,
            messages=messages,
            tools=tools,
        )

    assert caught.value.type == "invalid_request_error"
    assert words in caught.value.api_message


async def test_tools_unsupported_switch_answers_like_the_real_servers(
    openai_vendor: Vendor,
    anthropic_vendor: Vendor,
    openai_client: openai.AsyncOpenAI,
    anthropic_client: anthropic.AsyncAnthropic,
) -> None:
    openai_vendor.server.tools_supported = False
    anthropic_vendor.server.tools_supported = False

    with pytest.raises(openai.BadRequestError) as openai_refusal:
        await openai_client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[USER],
            tools=[OPENAI_TOOL],
        )
    with pytest.raises(anthropic.BadRequestError) as anthropic_refusal:
        await anthropic_client.messages.create(
            model="claude-sonnet-4-6",
            max_tokens=100,
            messages=[USER],
            tools=[ANTHROPIC_TOOL],
        )

    assert openai_refusal.value.body == {
        "message": "registry.ollama.ai/library/gpt-4o-mini does not support tools",
        "type": "api_error",
        "param": None,
        "code": None,
    }
    assert "does not support tool use" in anthropic_refusal.value.api_message
    assert anthropic_refusal.value.type == "invalid_request_error"
