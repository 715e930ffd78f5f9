"""A fake Anthropic Messages server that speaks the real wire protocol over HTTP.

`POST /v1/messages` answers a JSON `message` or, with `"stream": true`, the SSE sequence
`message_start`, `content_block_start`, `ping`, `content_block_delta`..., `content_block_stop`,
`message_delta` (stop reason and usage), `message_stop`. `GET /v1/models` lists models. Like the
real API it requires the `anthropic-version` header and the key, which it accepts in `x-api-key`
or, as anthropic SDK 2.x sends it, `Authorization: Bearer`. `base_url` has no `/v1`: the SDK
adds it. Scripting (`reply`, `fail`, `hang`, `latency_s`, `requests`) is `ScriptedServer`'s.

Scripted tool calls stream as `tool_use` blocks whose input arrives in `input_json_delta`
pieces, ending with stop reason `tool_use`. Like the real API it refuses malformed `tools`, and
`tool_use` blocks not answered by `tool_result` blocks in the very next message (or results
answering nothing); `tools_supported = False` refuses any request with tools.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import secrets
from collections.abc import Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.openai_server import (
    Failure,
    Hang,
    Playlist,
    Reply,
    ScriptedServer,
    ScriptedToolCall,
    count_prompt_tokens,
    split_tokens,
)

_ANTHROPIC_ERRORS = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    403: ("permission_error", "Your API key does not have permission to use this resource."),
    404: ("not_found_error", "Not found."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of request tokens has exceeded your rate limit."),
    500: ("api_error", "Internal server error"),
    529: ("overloaded_error", "Overloaded"),
}


def event(name: str, payload: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(payload)}\n\n".encode()


_TOOL_NAME_PATTERN = "^[a-zA-Z0-9_-]{1,64}$"


def anthropic_tools_error(tools: Any) -> str | None:
    """Why the API would refuse `tools`, in its words (field path, then the complaint)."""
    if not isinstance(tools, list):
        return "tools: Input should be a valid list"
    for index, tool in enumerate(tools):
        where = f"tools.{index}.custom"
        if not isinstance(tool, dict):
            return f"tools.{index}: Input should be a valid dictionary"
        if not isinstance(tool.get("name"), str):
            return f"{where}.name: Field required"
        if not re.match(_TOOL_NAME_PATTERN, tool["name"]):
            return f"{where}.name: String should match pattern '{_TOOL_NAME_PATTERN}'"
        if "description" in tool and not isinstance(tool["description"], str):
            return f"{where}.description: Input should be a valid string"
        schema = tool.get("input_schema")
        if not isinstance(schema, dict):
            return f"{where}.input_schema: Field required"
        if schema.get("type") != "object":
            return f"{where}.input_schema.type: Input should be 'object'"
    return None


def _block_error(where: str, role: str, block: Any) -> str | None:
    if not isinstance(block, dict):
        return f"{where}: Input should be a valid dictionary"
    kind = block.get("type")
    if kind == "text" and not block.get("text"):
        return "messages: text content blocks must be non-empty"
    if kind == "tool_use":
        if role != "assistant":
            return f"{where}: `tool_use` blocks can only be in `assistant` messages"
        for name, valid in (("id", str), ("name", str), ("input", dict)):
            if not isinstance(block.get(name), valid):
                return f"{where}.tool_use.{name}: Field required"
    if kind == "tool_result":
        if role != "user":
            return f"{where}: `tool_result` blocks can only be in `user` messages"
        if not isinstance(block.get("tool_use_id"), str):
            return f"{where}.tool_result.tool_use_id: Field required"
        if not isinstance(block.get("is_error", False), bool):
            return f"{where}.tool_result.is_error: Input should be a valid boolean"
    return None


def anthropic_tool_turns_error(messages: list[dict[str, Any]]) -> str | None:
    """Why the API would refuse the conversation's tool turns, in its words.

    The `tool_use` ids of an assistant message must each be answered by a `tool_result` block
    in the next message, and every `tool_result` must answer one of them.
    """
    called: list[str] = []  # tool_use ids of the previous message, if it was the assistant's
    for index, message in enumerate([*messages, {"role": "end", "content": []}]):
        role, content = str(message.get("role")), message.get("content")
        blocks = content if isinstance(content, list) else []
        for number, block in enumerate(blocks):
            if (
                error := _block_error(f"messages.{index}.content.{number}", role, block)
            ) is not None:
                return error
        results = [b["tool_use_id"] for b in blocks if b.get("type") == "tool_result"]
        if unexpected := [r for r in results if r not in called]:
            return (
                f"messages.{index}.content.0: unexpected `tool_use_id` found in `tool_result` "
                f"blocks: {', '.join(unexpected)}. Each `tool_result` block must have a "
                "corresponding `tool_use` block in the previous message."
            )
        if missing := [c for c in called if c not in results]:
            return (
                f"messages.{index - 1}: `tool_use` ids were found without `tool_result` blocks "
                f"immediately after: {', '.join(missing)}. Each `tool_use` block must have a "
                "corresponding `tool_result` block in the next message."
            )
        called = [b["id"] for b in blocks if b.get("type") == "tool_use"]
    return None


class FakeAnthropicServer(ScriptedServer):
    """`POST /v1/messages` and `GET /v1/models`, as the Anthropic API answers them."""

    call_path = "/v1/messages"

    def __init__(
        self,
        *,
        api_key: str | None = "test-anthropic-key",
        models: Sequence[str] = (
            "claude-sonnet-4-6",
            "claude-haiku-4-5",
            "claude-opus-4-6",
        ),
    ) -> None:
        super().__init__(api_key=api_key, models=models)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/messages", self._messages, methods=["POST"]),
                Route("/v1/models", self._list_models, methods=["GET"]),
            ]
        )

    def error(
        self, status: int, message: str | None = None, *, headers: dict[str, str] | None = None
    ) -> JSONResponse:
        """An error body in Anthropic's shape: `{"type": "error", "error": {type, message}}`."""
        kind, default = _ANTHROPIC_ERRORS.get(status, ("api_error", "Internal server error"))
        request_id = f"req_{secrets.token_hex(12)}"
        body = {
            "type": "error",
            "error": {"type": kind, "message": message or default},
            "request_id": request_id,
        }
        headers = {"request-id": request_id, **(headers or {})}
        return JSONResponse(body, status_code=status, headers=headers)

    def _check_headers(self, request: Request) -> Response | None:
        if not request.headers.get("anthropic-version"):
            return self.error(400, "anthropic-version: header is required")
        if self.api_key is None:
            return None
        keys = {request.headers.get("x-api-key"), request.headers.get("authorization")}
        if self.api_key not in keys and f"Bearer {self.api_key}" not in keys:
            return self.error(401, "invalid x-api-key")
        return None

    async def _list_models(self, request: Request) -> Response:
        await self.record(request)
        if (denied := self._check_headers(request)) is not None:
            return denied
        data = [
            {"type": "model", "id": m, "display_name": m, "created_at": "2024-10-22T00:00:00Z"}
            for m in self.models
        ]
        first, last = (self.models[0], self.models[-1]) if self.models else (None, None)
        return JSONResponse({"data": data, "has_more": False, "first_id": first, "last_id": last})

    def _validate(self, body: dict[str, Any]) -> Response | None:
        model, messages, max_tokens = (
            body.get("model"),
            body.get("messages"),
            body.get("max_tokens"),
        )
        if not isinstance(model, str) or not model:
            return self.error(400, "model: Field required")
        if not isinstance(max_tokens, int) or max_tokens < 1:
            return self.error(400, "max_tokens: Field required")
        if not isinstance(messages, list) or not messages:
            return self.error(400, "messages: at least one message is required")
        roles = {"user", "assistant", "system"}
        for index, message in enumerate(messages):
            if not isinstance(message, dict) or message.get("role") not in roles:
                return self.error(
                    400, f"messages.{index}.role: Input should be 'user' or 'assistant'"
                )
        if "tools" in body and (bad := anthropic_tools_error(body["tools"])) is not None:
            return self.error(400, bad)
        if (bad := anthropic_tool_turns_error(messages)) is not None:
            return self.error(400, bad)
        if model not in self.models:
            return self.error(404, f"model: {model}")
        if body.get("tools") and not self.tools_supported:
            return self.error(400, f"tools: {model} does not support tool use")
        return None

    async def _messages(self, request: Request) -> Response:
        recorded = await self.record(request)
        if (denied := self._check_headers(request)) is not None:
            return denied
        body = recorded.body
        if (invalid := self._validate(body)) is not None:
            return invalid
        step = self.next_step()
        await asyncio.sleep(self.latency_s + (step.latency_s if isinstance(step, Reply) else 0))
        if isinstance(step, Hang):
            await self.wait_forever()
            return self.error(529)
        if isinstance(step, Failure):
            headers = {"retry-after": step.retry_after} if step.retry_after else None
            return self.error(step.status, step.message, headers=headers)
        tokens = split_tokens(self.reply_text(step, body))
        calls = self.reply_tool_calls(step, body, "toolu_01")
        stop_reason = step.finish_reason or ("tool_use" if calls else "end_turn")
        if len(tokens) > body["max_tokens"]:
            # The limit came before the model got to its tool calls.
            tokens, calls, stop_reason = tokens[: body["max_tokens"]], [], "max_tokens"
        input_tokens = (
            count_prompt_tokens(body) if step.prompt_tokens is None else step.prompt_tokens
        )
        output_tokens = len(tokens) + sum(call.tokens for call in calls)
        if step.completion_tokens is not None:
            output_tokens = step.completion_tokens
        message = {
            "id": f"msg_{secrets.token_hex(12)}",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
        }
        headers = {"request-id": f"req_{secrets.token_hex(12)}"}
        if recorded.stream:
            playlist = _stream_playlist(tokens, calls, stop_reason, message)
            error = {"type": "overloaded_error", "message": "Overloaded"}
            events = self.play(step, playlist, event("error", {"type": "error", "error": error}))
            return StreamingResponse(events, media_type="text/event-stream", headers=headers)
        content: list[dict[str, Any]] = []
        if tokens or not calls:
            content.append({"type": "text", "text": "".join(tokens)})
        content += [
            {"type": "tool_use", "id": call.id, "name": call.name, "input": _input(call)}
            for call in calls
        ]
        return JSONResponse(
            {**message, "content": content, "stop_reason": stop_reason}, headers=headers
        )


def _input(call: ScriptedToolCall) -> Any:
    # Scripted invalid JSON is sent as it is: there is no other way to send it.
    try:
        return json.loads(call.arguments)
    except ValueError:
        return call.arguments


def _stream_playlist(
    tokens: list[str], calls: list[ScriptedToolCall], stop_reason: str, message: dict[str, Any]
) -> Playlist:
    usage = message["usage"]
    start = {**message, "usage": {"input_tokens": usage["input_tokens"], "output_tokens": 1}}
    playlist: Playlist = [event("message_start", {"type": "message_start", "message": start})]
    sent = itertools.count()

    def block(index: int, content_block: dict[str, Any], deltas: list[dict[str, Any]]) -> None:
        start_block = {
            "type": "content_block_start",
            "index": index,
            "content_block": content_block,
        }
        playlist.append(event("content_block_start", start_block))
        if index == 0:
            playlist.append(event("ping", {"type": "ping"}))  # the real API pings here too
        for delta in deltas:
            block_delta = {"type": "content_block_delta", "index": index, "delta": delta}
            playlist.extend([next(sent), event("content_block_delta", block_delta)])
        playlist.append(event("content_block_stop", {"type": "content_block_stop", "index": index}))

    # A reply that only calls tools has no text block, as the real API sends it.
    has_text = bool(tokens or not calls)
    if has_text:
        block(0, {"type": "text", "text": ""}, [{"type": "text_delta", "text": t} for t in tokens])
    for index, call in enumerate(calls, start=int(has_text)):
        playlist.append(next(sent))
        tool_use = {"type": "tool_use", "id": call.id, "name": call.name, "input": {}}
        pieces = [{"type": "input_json_delta", "partial_json": p} for p in call.pieces()]
        block(index, tool_use, pieces)
    delta = {"stop_reason": stop_reason, "stop_sequence": None}
    playlist.append(next(sent))
    # Usage on message_delta is cumulative: the final output token count.
    playlist.append(
        event("message_delta", {"type": "message_delta", "delta": delta, "usage": usage})
    )
    playlist.append(event("message_stop", {"type": "message_stop"}))
    return playlist
