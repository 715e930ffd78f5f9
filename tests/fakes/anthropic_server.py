"""A fake Anthropic Messages server that speaks the real wire protocol over HTTP.

`POST /v1/messages` answers a JSON `message` or, with `"stream": true`, the SSE sequence
`message_start`, `content_block_start`, `ping`, `content_block_delta`..., `content_block_stop`,
`message_delta` (stop reason and usage), `message_stop`. `GET /v1/models` lists models. Like the
real API it requires the `anthropic-version` header and the key, which it accepts in `x-api-key`
or, as anthropic SDK 2.x sends it, `Authorization: Bearer`. `base_url` has no `/v1`: the SDK
adds it. Scripting (`reply`, `fail`, `hang`, `latency_s`, `requests`) is `ScriptedServer`'s.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.openai_server import (
    Failure,
    Hang,
    Reply,
    ScriptedServer,
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
        if model not in self.models:
            return self.error(404, f"model: {model}")
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
        stop_reason = step.finish_reason or "end_turn"
        if len(tokens) > body["max_tokens"]:
            tokens, stop_reason = tokens[: body["max_tokens"]], "max_tokens"
        input_tokens = (
            count_prompt_tokens(body) if step.prompt_tokens is None else step.prompt_tokens
        )
        output_tokens = len(tokens) if step.completion_tokens is None else step.completion_tokens
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
            events = self._stream(step, tokens, stop_reason, message)
            return StreamingResponse(events, media_type="text/event-stream", headers=headers)
        content = [{"type": "text", "text": "".join(tokens)}]
        return JSONResponse(
            {**message, "content": content, "stop_reason": stop_reason}, headers=headers
        )

    async def _stream(
        self, reply: Reply, tokens: list[str], stop_reason: str, message: dict[str, Any]
    ) -> AsyncIterator[bytes]:
        usage = message["usage"]
        start = {**message, "usage": {"input_tokens": usage["input_tokens"], "output_tokens": 1}}
        yield event("message_start", {"type": "message_start", "message": start})
        block = {"type": "text", "text": ""}
        start_block = {"type": "content_block_start", "index": 0, "content_block": block}
        yield event("content_block_start", start_block)
        yield event("ping", {"type": "ping"})
        for index in range(len(tokens) + 1):
            if reply.hang_after == index:
                await self.wait_forever()
                return
            if reply.error_after == index:
                error = {"type": "overloaded_error", "message": "Overloaded"}
                yield event("error", {"type": "error", "error": error})
                return
            if index < len(tokens):
                text = {"type": "text_delta", "text": tokens[index]}
                block_delta = {"type": "content_block_delta", "index": 0, "delta": text}
                yield event("content_block_delta", block_delta)
        yield event("content_block_stop", {"type": "content_block_stop", "index": 0})
        delta = {"stop_reason": stop_reason, "stop_sequence": None}
        # Usage on message_delta is cumulative: the final output token count.
        yield event("message_delta", {"type": "message_delta", "delta": delta, "usage": usage})
        yield event("message_stop", {"type": "message_stop"})
