"""A fake OpenAI Chat Completions server that speaks the real wire protocol over HTTP.

The official `openai` SDK talks to it on 127.0.0.1 exactly as it would to api.openai.com:
`POST /v1/chat/completions` (JSON or SSE `chat.completion.chunk` stream ending in `[DONE]`) and
`GET /v1/models`. Tests script what it answers (replies, HTTP failures, hangs, latency) and read
back every request it received. `ScriptedServer`, the scripting and lifecycle part, is shared
with the Anthropic fake.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

ReplyText = str | Callable[[dict[str, Any]], str]


@dataclass
class Reply:
    """One scripted answer. `text` may be a function of the request body.

    Token counts default to the fake tokenizer's; `finish_reason` is in the protocol's own
    words (OpenAI `finish_reason`, Anthropic `stop_reason`). `hang_after` / `error_after`
    (streaming only) send that many tokens, then stall forever or send the protocol's
    in-stream error, to test interrupted streams.
    """

    text: ReplyText = "ok"
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None
    latency_s: float = 0.0
    hang_after: int | None = None
    error_after: int | None = None


@dataclass
class Failure:
    """Answer with this HTTP status (and `retry-after` header, if set) instead of a reply."""

    status: int
    retry_after: str | None = None
    message: str | None = None


@dataclass
class Hang:
    """Never answer (until the server stops)."""


Step = Reply | Failure | Hang


@dataclass
class RecordedRequest:
    """A request as the server received it."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any] = field(default_factory=dict)

    @property
    def model(self) -> str | None:
        model = self.body.get("model")
        return model if isinstance(model, str) else None

    @property
    def messages(self) -> list[dict[str, Any]]:
        messages = self.body.get("messages")
        return messages if isinstance(messages, list) else []

    @property
    def stream(self) -> bool:
        return self.body.get("stream") is True


def split_tokens(text: str) -> list[str]:
    """The fake's tokenizer: words with their trailing whitespace, so tokens join back to text."""
    return re.findall(r"\s*\S+\s*", text) or ([text] if text else [])


def text_of(content: Any) -> str:
    """The text of a message content: a string or a list of `{"type": "text"}` parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def count_prompt_tokens(body: dict[str, Any]) -> int:
    """Prompt tokens as the fakes count them: words in every message and the system prompt."""
    texts = [text_of(m.get("content")) for m in body.get("messages", []) if isinstance(m, dict)]
    texts.append(text_of(body.get("system")))
    return sum(len(t.split()) for t in texts)


def echo_last_user_message(body: dict[str, Any]) -> str:
    """The default reply: `echo: <last user message>`."""
    users = [m for m in body.get("messages", []) if isinstance(m, dict) and m.get("role") == "user"]
    return f"echo: {text_of(users[-1].get('content')) if users else ''}"


class ScriptedServer:
    """Script queue, request log and uvicorn lifecycle shared by the fake LLM servers.

    Each model call takes the next scripted step; with the queue empty it answers
    `default_reply`. `latency_s` delays every call before it answers.
    """

    api_prefix = ""
    call_path = ""

    def __init__(self, *, api_key: str | None, models: Sequence[str]) -> None:
        self.api_key = api_key
        self.models = list(models)
        self.latency_s = 0.0
        self.default_reply = Reply(text=echo_last_user_message)
        self.requests: list[RecordedRequest] = []
        self._steps: deque[Step] = deque()
        self._forever: Step | None = None
        self._released: asyncio.Event | None = None
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._url: str | None = None

    def reply(self, text: ReplyText = "ok", **options: Any) -> None:
        """Queue a reply; `options` are `Reply` fields (tokens, finish_reason, latency_s, ...)."""
        self._queue(Reply(text=text, **options), 1)

    def fail(
        self,
        status: int,
        *,
        times: int | None = 1,
        retry_after: float | str | None = None,
        message: str | None = None,
    ) -> None:
        """Answer the next `times` calls (None: every call from now on) with HTTP `status`."""
        after = None if retry_after is None else str(retry_after)
        self._queue(Failure(status, retry_after=after, message=message), times)

    def hang(self, *, times: int | None = 1) -> None:
        """Never answer the next `times` calls (None: every call from now on)."""
        self._queue(Hang(), times)

    def reset(self) -> None:
        """Forget the script and the request log."""
        self._steps.clear()
        self._forever = None
        self.requests.clear()

    @property
    def calls(self) -> int:
        """How many model calls (not model listings) the server has received."""
        return sum(1 for r in self.requests if r.path == self.call_path)

    @property
    def base_url(self) -> str:
        if self._url is None:
            raise RuntimeError("the fake server is not started")
        return self._url + self.api_prefix

    async def start(self) -> str:
        """Serve on a free 127.0.0.1 port in the running event loop; returns `base_url`."""
        self._released = asyncio.Event()
        config = uvicorn.Config(
            self.app(),
            host="127.0.0.1",
            port=0,
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self._url = f"http://127.0.0.1:{port}"
        return self.base_url

    async def stop(self) -> None:
        """Release hanging calls and shut the server down."""
        if self._released is not None:
            self._released.set()
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = self._server = None

    async def __aenter__(self) -> ScriptedServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def app(self) -> Starlette:
        raise NotImplementedError

    def _queue(self, step: Step, times: int | None) -> None:
        if times is None:
            self._forever = step
        else:
            self._steps.extend(step for _ in range(times))

    def next_step(self) -> Step:
        """The step that answers the current call."""
        if self._steps:
            return self._steps.popleft()
        return self._forever or self.default_reply

    async def wait_forever(self) -> None:
        """Block until the server stops, like a provider that never answers."""
        assert self._released is not None
        await self._released.wait()

    async def record(self, request: Request) -> RecordedRequest:
        """Log the request; a body that is not a JSON object is logged as `{}`."""
        body: Any = {}
        if request.method == "POST":
            with contextlib.suppress(ValueError):
                body = json.loads(await request.body())
        recorded = RecordedRequest(
            path=request.url.path,
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body if isinstance(body, dict) else {},
        )
        self.requests.append(recorded)
        return recorded

    def reply_text(self, reply: Reply, body: dict[str, Any]) -> str:
        return reply.text(body) if callable(reply.text) else reply.text


def sse_data(payload: Any) -> bytes:
    return f"data: {json.dumps(payload)}\n\n".encode()


_OPENAI_ERRORS = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("invalid_request_error", "unsupported_country_region_territory", "Forbidden."),
    404: ("invalid_request_error", "model_not_found", "The model does not exist."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests."),
    500: ("server_error", None, "The server had an error while processing your request."),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}


class FakeOpenAIServer(ScriptedServer):
    """`POST /v1/chat/completions` and `GET /v1/models`, as the OpenAI API answers them."""

    api_prefix = "/v1"
    call_path = "/v1/chat/completions"

    def __init__(
        self,
        *,
        api_key: str | None = "test-openai-key",
        models: Sequence[str] = ("gpt-4o-mini", "gpt-4o", "gpt-4.1", "gpt-4.1-mini"),
    ) -> None:
        super().__init__(api_key=api_key, models=models)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat_completions, methods=["POST"]),
                Route("/v1/models", self._list_models, methods=["GET"]),
            ]
        )

    def error(
        self,
        status: int,
        message: str | None = None,
        *,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> JSONResponse:
        """An error body in OpenAI's shape: `{"error": {message, type, param, code}}`."""
        kind, code, default = _OPENAI_ERRORS.get(status, ("server_error", None, "Error."))
        body = {
            "error": {"message": message or default, "type": kind, "param": param, "code": code}
        }
        headers = {"x-request-id": f"req_{secrets.token_hex(8)}", **(headers or {})}
        return JSONResponse(body, status_code=status, headers=headers)

    async def _list_models(self, request: Request) -> Response:
        await self.record(request)
        if (denied := self._check_auth(request)) is not None:
            return denied
        data = [
            {"id": m, "object": "model", "created": 1686935002, "owned_by": "openai"}
            for m in self.models
        ]
        return JSONResponse({"object": "list", "data": data})

    def _check_auth(self, request: Request) -> Response | None:
        if self.api_key is None:
            return None
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return self.error(401, "Incorrect API key provided.")
        return None

    def _validate(self, body: dict[str, Any]) -> Response | None:
        model, messages = body.get("model"), body.get("messages")
        if not isinstance(model, str) or not model:
            return self.error(400, "you must provide a model parameter", param="model")
        if not isinstance(messages, list) or not messages:
            return self.error(400, "'messages' must be a non-empty array", param="messages")
        roles = {"system", "developer", "user", "assistant", "tool"}
        if any(not isinstance(m, dict) or m.get("role") not in roles for m in messages):
            return self.error(400, "Invalid value for 'messages[].role'.", param="messages")
        if body.get("stream_options") is not None and body.get("stream") is not True:
            return self.error(
                400,
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                param="stream_options",
            )
        if model not in self.models:
            return self.error(
                404, f"The model `{model}` does not exist or you do not have access to it."
            )
        return None

    async def _chat_completions(self, request: Request) -> Response:
        recorded = await self.record(request)
        if (denied := self._check_auth(request)) is not None:
            return denied
        body = recorded.body
        if (invalid := self._validate(body)) is not None:
            return invalid
        step = self.next_step()
        await asyncio.sleep(self.latency_s + (step.latency_s if isinstance(step, Reply) else 0))
        if isinstance(step, Hang):
            await self.wait_forever()
            return self.error(503)
        if isinstance(step, Failure):
            headers = {"retry-after": step.retry_after} if step.retry_after else None
            return self.error(step.status, step.message, headers=headers)
        tokens = split_tokens(self.reply_text(step, body))
        finish = step.finish_reason or "stop"
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        if isinstance(limit, int) and len(tokens) > limit:
            tokens, finish = tokens[:limit], "length"
        prompt = count_prompt_tokens(body) if step.prompt_tokens is None else step.prompt_tokens
        completion = len(tokens) if step.completion_tokens is None else step.completion_tokens
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
        common = {
            "id": f"chatcmpl-{secrets.token_hex(12)}",
            "created": int(time.time()),
            "model": body["model"],
            "system_fingerprint": "fp_fake",
            "service_tier": "default",
        }
        headers = {"x-request-id": f"req_{secrets.token_hex(8)}"}
        if recorded.stream:
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            events = self._stream(step, tokens, finish, common, usage if include_usage else None)
            return StreamingResponse(events, media_type="text/event-stream", headers=headers)
        message = {"role": "assistant", "content": "".join(tokens), "refusal": None}
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
        completion_body = {**common, "object": "chat.completion", "choices": [choice]}
        return JSONResponse({**completion_body, "usage": usage}, headers=headers)

    async def _stream(
        self,
        reply: Reply,
        tokens: list[str],
        finish: str,
        common: dict[str, Any],
        usage: dict[str, int] | None,
    ) -> AsyncIterator[bytes]:
        def chunk(delta: dict[str, Any] | None, finish_reason: str | None = None) -> bytes:
            choices = []
            if delta is not None:
                choice = {"index": 0, "delta": delta, "logprobs": None}
                choices.append({**choice, "finish_reason": finish_reason})
            payload: dict[str, Any] = {
                **common,
                "object": "chat.completion.chunk",
                "choices": choices,
            }
            if usage is not None:
                # With include_usage every chunk carries `usage`: null, the last one the totals.
                payload["usage"] = usage if delta is None else None
            return sse_data(payload)

        yield chunk({"role": "assistant", "content": "", "refusal": None})
        for index in range(len(tokens) + 1):
            if reply.hang_after == index:
                await self.wait_forever()
                return
            if reply.error_after == index:
                message = "The server had an error while processing your request."
                error = {"message": message, "type": "server_error", "param": None, "code": None}
                yield sse_data({"error": error})
                return
            if index < len(tokens):
                yield chunk({"content": tokens[index]})
        yield chunk({}, finish)
        if usage is not None:
            yield chunk(None)
        yield b"data: [DONE]\n\n"
