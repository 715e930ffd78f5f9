"""Native tool calling through the providers and the router, against the fake vendor servers."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from genway.engines.llm.providers import (
    AssistantToolCalls,
    BadRequest,
    LLMProvider,
    Message,
    ProviderUnavailable,
    ToolCall,
    ToolResult,
    ToolSpec,
    ToolsUnsupported,
)
from genway.engines.llm.router import ModelRouter, UsageRecord
from tests.engines.llm.conftest import FAST_RETRY, HELLO, Vendor
from tests.fakes.openai_server import Reply

READ_FILE = ToolSpec(
    name="read_file",
    description="Read one file of the project.",
    parameters={
        "type": "object",
        "properties": {"path": {"type": "string"}},
        "required": ["path"],
    },
)
LIST_DIR = ToolSpec(
    name="list_dir",
    description="List a directory.",
    parameters={"type": "object", "properties": {"path": {"type": "string"}}},
)
TOOLS = [READ_FILE, LIST_DIR]
ID_PREFIX = {"openai": "call_", "anthropic": "toolu_"}


async def ask(vendor: Vendor, messages: list[Message], **options: Any) -> Any:
    return await vendor.provider().complete(
        vendor.model, messages, max_tokens=256, timeout_s=5, tools=TOOLS, **options
    )


def answer(call: ToolCall, content: str, *, is_error: bool = False) -> ToolResult:
    return {
        "role": "tool",
        "tool_call_id": call.id,
        "name": call.name,
        "content": content,
        "is_error": is_error,
    }


def called(calls: tuple[ToolCall, ...], text: str = "") -> AssistantToolCalls:
    return {"role": "assistant", "content": text, "tool_calls": list(calls)}


async def test_a_tool_call_arrives_parsed_with_the_vendor_id(vendor: Vendor) -> None:
    arguments = {"path": "src/app.py", "lines": [1, 20], "note": 'say "hi" \\ é'}
    vendor.server.reply(text="", tool_calls=[{"name": "read_file", "arguments": arguments}])

    completion = await ask(vendor, HELLO)

    [call] = completion.tool_calls
    assert (call.name, call.arguments, call.arguments_error) == ("read_file", arguments, None)
    assert call.id.startswith(ID_PREFIX[vendor.name])
    assert (completion.text, completion.finish_reason) == ("", "tool_calls")
    body = vendor.server.requests[-1].body
    if vendor.name == "openai":
        assert body["tools"][0] == {
            "type": "function",
            "function": {
                "name": "read_file",
                "description": READ_FILE.description,
                "parameters": READ_FILE.parameters,
            },
        }
    else:
        assert body["tools"][0] == {
            "name": "read_file",
            "description": READ_FILE.description,
            "input_schema": READ_FILE.parameters,
        }


async def test_without_tools_no_tools_field_is_sent(vendor: Vendor) -> None:
    await vendor.provider().complete(vendor.model, HELLO, max_tokens=64, timeout_s=5, tools=[])

    assert "tools" not in vendor.server.requests[-1].body


async def test_a_tool_conversation_is_sent_in_the_vendor_shapes(vendor: Vendor) -> None:
    vendor.server.reply(text="", tool_calls=[{"name": "read_file", "arguments": {"path": "a.py"}}])
    vendor.server.reply("It prints hello.")
    first = await ask(vendor, HELLO)
    [call] = first.tool_calls
    conversation: list[Message] = [
        *HELLO,
        called(first.tool_calls),
        answer(call, "print('hello')"),
    ]

    final = await ask(vendor, conversation, system="Be brief.")

    assert (final.text, final.finish_reason, final.tool_calls) == ("It prints hello.", "stop", ())
    messages = vendor.server.requests[-1].messages
    if vendor.name == "openai":
        assert messages[1:] == [
            {"role": "user", "content": "Say hello"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {"name": "read_file", "arguments": '{"path": "a.py"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": call.id, "content": "print('hello')"},
        ]
    else:
        assert messages == [
            {"role": "user", "content": "Say hello"},
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "tool_use",
                        "id": call.id,
                        "name": "read_file",
                        "input": {"path": "a.py"},
                    }
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": call.id,
                        "content": "print('hello')",
                        "is_error": False,
                    }
                ],
            },
        ]


async def test_two_tool_calls_in_one_turn_are_answered_together(vendor: Vendor) -> None:
    vendor.server.reply(
        "Looking.",
        tool_calls=[
            {"name": "list_dir", "arguments": {"path": "src"}},
            {"name": "read_file", "arguments": {"path": "README.md"}},
        ],
    )
    vendor.server.reply("Done.")
    first = await ask(vendor, HELLO)
    listing, readme = first.tool_calls
    assert [(c.name, c.arguments) for c in first.tool_calls] == [
        ("list_dir", {"path": "src"}),
        ("read_file", {"path": "README.md"}),
    ]
    assert listing.id != readme.id
    conversation: list[Message] = [
        *HELLO,
        called(first.tool_calls, first.text),
        answer(listing, "app.py"),
        answer(readme, "no such file", is_error=True),
        {"role": "user", "content": "Keep going."},
    ]

    final = await ask(vendor, conversation)

    assert final.text == "Done."
    messages = vendor.server.requests[-1].messages
    if vendor.name == "openai":
        assert messages[1]["content"] == "Looking."
        assert [m["role"] for m in messages] == ["user", "assistant", "tool", "tool", "user"]
    else:
        assert [b["type"] for b in messages[1]["content"]] == ["text", "tool_use", "tool_use"]
        # Both results, then the user's text, in the one message after the assistant's.
        assert len(messages) == 3
        results = messages[2]["content"]
        assert [(b["type"], b.get("is_error")) for b in results] == [
            ("tool_result", False),
            ("tool_result", True),
            ("text", None),
        ]


@pytest.mark.parametrize(
    ("raw", "problem"), [('{"path": "a.py",', "not valid JSON"), ("[1, 2]", "JSON object")]
)
async def test_arguments_that_are_not_a_json_object_are_reported(
    vendor: Vendor, raw: str, problem: str
) -> None:
    vendor.server.reply(text="", tool_calls=[{"name": "read_file", "arguments": raw}])

    completion = await ask(vendor, HELLO)

    [call] = completion.tool_calls
    assert (call.name, call.arguments) == ("read_file", {})
    assert call.arguments_error is not None and problem in call.arguments_error


async def test_text_deltas_stream_beside_tool_calls(vendor: Vendor) -> None:
    vendor.server.reply(
        "Let me look.", tool_calls=[{"name": "read_file", "arguments": {"path": "x" * 200}}]
    )
    deltas: list[str] = []

    completion = await ask(vendor, HELLO, on_delta=deltas.append)

    assert deltas == ["Let ", "me ", "look."]
    assert completion.text == "Let me look."
    assert completion.tool_calls[0].arguments == {"path": "x" * 200}


async def test_a_stream_cut_off_mid_tool_call_is_truncated(vendor: Vendor) -> None:
    calls = [{"name": "read_file", "arguments": {"path": "a/long/path/to/a/file.py"}}]
    vendor.server.reply(text="", tool_calls=calls, cut_after=2)
    provider = vendor.provider(retry=dataclasses.replace(FAST_RETRY, max_retries=0))

    with pytest.raises(ProviderUnavailable, match="stream ended"):
        await provider.complete(vendor.model, HELLO, max_tokens=64, timeout_s=5, tools=TOOLS)


async def test_a_tool_result_for_an_unknown_call_is_refused(vendor: Vendor) -> None:
    vendor.server.reply(text="", tool_calls=[{"name": "read_file", "arguments": {"path": "a"}}])
    [call] = (await ask(vendor, HELLO)).tool_calls
    wrong = dataclasses.replace(call, id=ID_PREFIX[vendor.name] + "someone_else")

    with pytest.raises(BadRequest) as caught:
        await ask(vendor, [*HELLO, called((call,)), answer(wrong, "contents")])

    assert not isinstance(caught.value, ToolsUnsupported)
    assert caught.value.status_code == 400
    if vendor.name == "openai":
        assert f"'tool_call_id' of '{wrong.id}' not found" in caught.value.message
    else:
        assert f"unexpected `tool_use_id` found in `tool_result` blocks: {wrong.id}" in (
            caught.value.message
        )
    assert vendor.server.calls == 2


async def test_an_unanswered_tool_call_is_refused(vendor: Vendor) -> None:
    vendor.server.reply(text="", tool_calls=[{"name": "read_file", "arguments": {"path": "a"}}])
    [call] = (await ask(vendor, HELLO)).tool_calls

    with pytest.raises(BadRequest) as caught:
        await ask(vendor, [*HELLO, called((call,)), {"role": "user", "content": "and?"}])

    expected = {
        "openai": "did not have response messages: ",
        "anthropic": "`tool_use` ids were found without `tool_result` blocks immediately after: ",
    }
    assert expected[vendor.name] + call.id in caught.value.message
    assert not isinstance(caught.value, ToolsUnsupported)


async def test_a_malformed_tool_is_a_bad_request_not_unsupported_tools(vendor: Vendor) -> None:
    bad = ToolSpec("read file", "spaces are not allowed", {"type": "object"})

    with pytest.raises(BadRequest) as caught:
        await vendor.provider().complete(
            vendor.model, HELLO, max_tokens=64, timeout_s=5, tools=[bad]
        )

    assert not isinstance(caught.value, ToolsUnsupported)
    assert "name" in caught.value.message


async def test_a_tool_refusal_is_tools_unsupported_only_when_tools_were_sent(
    vendor: Vendor,
) -> None:
    refusal = "registry.ollama.ai/library/gemma:2b does not support tools"
    vendor.server.fail(400, message=refusal, times=2)
    provider = vendor.provider()

    with pytest.raises(BadRequest) as without_tools:
        await provider.complete(vendor.model, HELLO, max_tokens=64, timeout_s=5)
    with pytest.raises(ToolsUnsupported) as with_tools:
        await provider.complete(vendor.model, HELLO, max_tokens=64, timeout_s=5, tools=TOOLS)

    assert not isinstance(without_tools.value, ToolsUnsupported)
    assert refusal in str(with_tools.value)
    assert not with_tools.value.retryable
    assert vendor.server.calls == 2


@pytest.fixture
def router(openai_vendor: Vendor, anthropic_vendor: Vendor) -> ModelRouter:
    providers: dict[str, LLMProvider] = {
        "openai": openai_vendor.provider(),
        "anthropic": anthropic_vendor.provider(),
    }
    table = {
        "code": ["openai:gpt-4o-mini", "anthropic:claude-sonnet-4-6"],
        "qa": ["anthropic:claude-sonnet-4-6", "openai:gpt-4o-mini"],
    }
    return ModelRouter(table, providers, max_tokens=256, timeout_s=5)


@pytest.mark.parametrize(("task", "first", "second"), [("code", 0, 1), ("qa", 1, 0)])
async def test_unsupported_tools_raise_at_once_without_fallback(
    router: ModelRouter,
    openai_vendor: Vendor,
    anthropic_vendor: Vendor,
    task: str,
    first: int,
    second: int,
) -> None:
    vendors = (openai_vendor, anthropic_vendor)
    vendors[first].server.tools_supported = False

    with pytest.raises(ToolsUnsupported) as caught:
        await router.complete(task, HELLO, tools=TOOLS)

    assert caught.value.provider == vendors[first].name
    assert (vendors[first].server.calls, vendors[second].server.calls) == (1, 0)
    assert vendors[first].sleeps == []
    # The caller's fallback: the same model, without tools.
    completion = await router.complete(task, HELLO)
    assert completion.text == "echo: Say hello"


async def test_usage_is_metered_for_a_tool_call_turn(
    router: ModelRouter, anthropic_vendor: Vendor
) -> None:
    usage: list[UsageRecord] = []
    calls = [{"name": "list_dir", "arguments": {"path": "."}}]
    anthropic_vendor.server.reply(text="", tool_calls=calls, prompt_tokens=40, completion_tokens=9)

    completion = await router.complete("qa", HELLO, tools=TOOLS, on_usage=usage.append)

    assert (completion.input_tokens, completion.output_tokens) == (40, 9)
    assert usage == [UsageRecord("qa", "anthropic", "claude-sonnet-4-6", 40, 9)]


def scripted_agent(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Reads files one at a time until it has read two, as a model in an agent loop would."""
    results = [m for m in body["messages"] if m["role"] == "tool"]
    results += [
        block
        for m in body["messages"]
        if isinstance(m["content"], list)
        for block in m["content"]
        if block.get("type") == "tool_result"
    ]
    if len(results) >= 2:
        return []
    return [{"name": "read_file", "arguments": {"path": f"file{len(results)}.py"}}]


async def test_an_agent_loop_runs_against_a_scripted_model(
    router: ModelRouter, openai_vendor: Vendor, anthropic_vendor: Vendor
) -> None:
    for server in (openai_vendor.server, anthropic_vendor.server):
        server.default_reply = Reply(
            text=lambda body: "" if scripted_agent(body) else "Read both.",
            tool_calls=scripted_agent,
        )
    for task in ("code", "qa"):
        conversation: list[Message] = list(HELLO)
        paths = []
        while (completion := await router.complete(task, conversation, tools=TOOLS)).tool_calls:
            conversation.append(called(completion.tool_calls, completion.text))
            for call in completion.tool_calls:
                paths.append(call.arguments["path"])
                conversation.append(answer(call, f"contents of {call.arguments['path']}"))

        assert (completion.text, completion.finish_reason) == ("Read both.", "stop")
        assert paths == ["file0.py", "file1.py"]
    assert (openai_vendor.server.calls, anthropic_vendor.server.calls) == (3, 3)
