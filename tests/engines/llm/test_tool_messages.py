"""Tool-call assembly, conversation conversion and tool-refusal detection, without a server."""

from __future__ import annotations

import pytest
from openai._models import construct_type
from openai.types.chat.chat_completion_chunk import ChoiceDeltaToolCall

from genway.engines.llm.tools import (
    Message,
    StreamedToolCalls,
    ToolCall,
    anthropic_messages,
    openai_messages,
    refuses_tools,
    tool_call,
)


def fragment(**fields: object) -> ChoiceDeltaToolCall:
    """A tool-call delta as the SDK builds it from a chunk (without validation)."""
    return construct_type(type_=ChoiceDeltaToolCall, value=fields)


def test_openai_fragments_are_joined_by_index() -> None:
    calls = StreamedToolCalls()
    first = {"name": "read_file", "arguments": ""}
    calls.add_openai([fragment(index=0, id="call_a", type="function", function=first)])
    calls.add_openai([fragment(index=1, id="call_b", type="function", function={"name": "ls"})])
    calls.add_openai([fragment(index=0, function={"arguments": '{"pa'})])
    calls.add_openai([fragment(index=1, function={"arguments": "{}"})])
    calls.add_openai([fragment(index=0, function={"arguments": 'th": "a"}'})])

    assert calls.calls() == (
        ToolCall("call_a", "read_file", {"path": "a"}),
        ToolCall("call_b", "ls", {}),
    )


def test_fragments_without_an_index_start_a_call_at_each_id() -> None:
    calls = StreamedToolCalls()
    calls.add_openai([fragment(id="call_a", function={"name": "f", "arguments": '{"x":'})])
    calls.add_openai([fragment(function={"arguments": " 1}"})])
    calls.add_openai([fragment(id="call_b", function={"name": "g", "arguments": "{}"})])

    assert calls.calls() == (ToolCall("call_a", "f", {"x": 1}), ToolCall("call_b", "g", {}))


def test_an_anthropic_tool_use_without_deltas_keeps_its_start_input() -> None:
    calls = StreamedToolCalls()
    calls.start(1, "toolu_1", "ls", {"path": "."})

    assert calls.calls() == (ToolCall("toolu_1", "ls", {"path": "."}),)


def test_arguments_are_parsed_or_reported() -> None:
    assert tool_call("c", "f", "") == ToolCall("c", "f", {})
    assert tool_call("c", "f", '{"a": [1]}') == ToolCall("c", "f", {"a": [1]})
    assert "not valid JSON" in (tool_call("c", "f", "{'a': 1}").arguments_error or "")
    assert "not str" in (tool_call("c", "f", '"text"').arguments_error or "")


CALL = ToolCall("id_1", "read_file", {"path": "a.py"})
CONVERSATION: list[Message] = [
    {"role": "system", "content": "Project rules."},
    {"role": "user", "content": "Fix it."},
    {"role": "assistant", "content": "Reading.", "tool_calls": [CALL]},
    {
        "role": "tool",
        "tool_call_id": "id_1",
        "name": "read_file",
        "content": "x",
        "is_error": False,
    },
    {"role": "assistant", "content": "Fixed."},
]


def test_openai_conversion_keeps_order_and_sends_arguments_as_json_text() -> None:
    converted = openai_messages(CONVERSATION, "Be brief.")

    assert [m["role"] for m in converted] == [
        "system",
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
    ]
    assert converted[3] == {
        "role": "assistant",
        "content": "Reading.",
        "tool_calls": [
            {
                "id": "id_1",
                "type": "function",
                "function": {"name": "read_file", "arguments": '{"path": "a.py"}'},
            }
        ],
    }


def test_anthropic_conversion_moves_system_text_up_and_blocks_tool_turns() -> None:
    system, turns = anthropic_messages(CONVERSATION, "Be brief.")

    assert system == "Be brief.\n\nProject rules."
    assert [t["role"] for t in turns] == ["user", "assistant", "user", "assistant"]
    assert turns[1]["content"] == [
        {"type": "text", "text": "Reading."},
        {"type": "tool_use", "id": "id_1", "name": "read_file", "input": {"path": "a.py"}},
    ]
    assert turns[2]["content"] == [
        {"type": "tool_result", "tool_use_id": "id_1", "content": "x", "is_error": False}
    ]


@pytest.mark.parametrize(
    ("status", "message", "param", "refused"),
    [
        (400, "registry.ollama.ai/library/gemma:2b does not support tools", None, True),
        (
            400,
            '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to '
            "be set",
            None,
            True,
        ),
        (404, "No endpoints found that support tool use.", None, True),
        (500, "tools param requires --jinja flag", None, True),
        (400, "tools: claude-x does not support tool use", None, True),
        (400, "messages: too long", None, False),
        (503, "tool server overloaded", None, False),
        (429, "too many tool calls", None, False),
        (400, "Invalid 'tools[0].function.name': bad", "tools[0].function.name", False),
        (400, "messages.1: `tool_use` ids were found without `tool_result` blocks", None, False),
        (400, "tools.0.custom.name: String should match pattern", None, False),
    ],
)
def test_tool_refusals_are_told_from_other_errors(
    status: int, message: str, param: str | None, refused: bool
) -> None:
    assert refuses_tools(status, message, param=param) is refused
