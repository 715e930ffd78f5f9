"""A fake OpenAI Chat Completions server that speaks the real wire protocol over HTTP.

The official `openai` SDK talks to it on 127.0.0.1 exactly as it would to api.openai.com:
`POST /v1/chat/completions` (JSON or SSE `chat.completion.chunk` stream ending in `[DONE]`) and
`GET /v1/models`. Tests script what it answers (replies, tool calls, HTTP failures, hangs,
latency) and read back every request it received. Like the real API it refuses malformed `tools`
and tool turns that do not answer the calls before them; `tools_supported = False` makes it
refuse tools as Ollama does for a model without them. `ScriptedServer`, the scripting and
lifecycle part, is shared with the Anthropic fake.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
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
ReplyToolCalls = list[dict[str, Any]] | Callable[[dict[str, Any]], list[dict[str, Any]]]


@dataclass
class Reply:
    """One scripted answer. `text` and `tool_calls` may be functions of the request body.

    Each tool call is `{"name": str, "arguments": dict | str}`; a str is sent verbatim, to
    script invalid JSON. Token counts default to the fake tokenizer's; `finish_reason` is in
    the protocol's own words (OpenAI `finish_reason`, Anthropic `stop_reason`). `hang_after` /
    `error_after` / `cut_after` (streaming only) send that many pieces (text tokens, then each
    tool call's start and argument fragments), then stall forever, send the protocol's
    in-stream error, or end the response without finishing, to test interrupted streams.
    """

    text: ReplyText = "ok"
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None
    latency_s: float = 0.0
    hang_after: int | None = None
    error_after: int | None = None
    cut_after: int | None = None
    tool_calls: ReplyToolCalls | None = None


@dataclass(frozen=True)
class ScriptedToolCall:
    """A tool call about to be sent: its id and its arguments as JSON text."""

    id: str
    name: str
    arguments: str

    def pieces(self) -> list[str]:
        """The arguments in the fragments a stream sends, cut anywhere, as models do."""
        size = max(5, len(self.arguments) // 8)
        return [self.arguments[i : i + size] for i in range(0, len(self.arguments), size)]

    @property
    def tokens(self) -> int:
        return 1 + len(split_tokens(self.arguments))


# A stream as a list of SSE payloads, with an int (the count of pieces sent so far) at each point
# where a scripted reply may hang, fail or be cut off.
Playlist = list[bytes | int]


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
    """The text of a message content: a string, or a list of text (or tool result) parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p for p in content if isinstance(p, dict)]
        return " ".join(str(p.get("text", "")) or text_of(p.get("content")) for p in parts)
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
        self.tools_supported = True
        self.requests: list[RecordedRequest] = []
        self._steps: deque[Step] = deque()
        self._forever: Step | None = None
        self._released: asyncio.Event | None = None
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._url: str | None = None

    def reply(self, text: ReplyText = "ok", **options: Any) -> None:
        """Queue a reply; `options` are `Reply` fields (tool_calls, tokens, latency_s, ...)."""
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

    def reply_tool_calls(
        self, reply: Reply, body: dict[str, Any], id_prefix: str
    ) -> list[ScriptedToolCall]:
        """The reply's tool calls for this request, each with a fresh vendor-style id."""
        calls = reply.tool_calls(body) if callable(reply.tool_calls) else reply.tool_calls
        scripted = []
        for call in calls or []:
            arguments = call.get("arguments", {})
            text = arguments if isinstance(arguments, str) else json.dumps(arguments)
            call_id = f"{id_prefix}{secrets.token_hex(12)}"
            scripted.append(ScriptedToolCall(call_id, str(call["name"]), text))
        return scripted

    async def play(self, reply: Reply, playlist: Playlist, error: bytes) -> AsyncIterator[bytes]:
        """Send `playlist`, interrupting it where the reply's `*_after` says."""
        for item in playlist:
            if isinstance(item, bytes):
                yield item
            elif reply.hang_after == item:
                await self.wait_forever()
                return
            elif reply.error_after == item:
                yield error
                return
            elif reply.cut_after == item:
                return


def sse_data(payload: Any) -> bytes:
    return f"data: {json.dumps(payload)}\n\n".encode()


_OPENAI_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]+$")
BadParam = tuple[str, str]  # OpenAI's error message and its `param`


def openai_tools_error(tools: Any) -> BadParam | None:
    """Why the API would refuse `tools`, as its error message and `param`."""
    if not isinstance(tools, list):
        return "Invalid type for 'tools': expected an array.", "tools"
    if not tools:
        message = "Invalid 'tools': empty array. Expected an array with minimum length 1, but got"
        return f"{message} an empty array instead.", "tools"
    for index, tool in enumerate(tools):
        where = f"tools[{index}]"
        if not isinstance(tool, dict) or "type" not in tool:
            return f"Missing required parameter: '{where}.type'.", f"{where}.type"
        if tool["type"] != "function":
            message = f"Invalid value: '{tool['type']}'. Supported values are: 'function' and"
            return f"{message} 'custom'.", f"{where}.type"
        function = tool.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        if not isinstance(function, dict) or not isinstance(name, str):
            return f"Missing required parameter: '{where}.function.name'.", f"{where}.function.name"
        if not _OPENAI_TOOL_NAME.match(name):
            message = "string does not match pattern. Expected a string that matches the pattern"
            return f"Invalid '{where}.function.name': {message} '^[a-zA-Z0-9_-]+$'.", (
                f"{where}.function.name"
            )
        if len(name) > 64:
            message = "string too long. Expected a string with maximum length 64"
            return f"Invalid '{where}.function.name': {message}.", f"{where}.function.name"
        schema = function.get("parameters")
        if schema is not None and (not isinstance(schema, dict) or schema.get("type") != "object"):
            got = schema.get("type") if isinstance(schema, dict) else schema
            message = f"schema must be a JSON Schema of 'type: \"object\"', got 'type: \"{got}\"'."
            return f"Invalid schema for function '{name}': {message}", (
                f"{where}.function.parameters"
            )
    return None


def _assistant_tool_call_ids(index: int, message: dict[str, Any]) -> list[str] | BadParam:
    calls = message.get("tool_calls")
    if not isinstance(calls, list):
        return f"Invalid type for 'messages.[{index}].tool_calls': expected an array.", (
            f"messages.[{index}].tool_calls"
        )
    ids = []
    for number, call in enumerate(calls):
        where = f"messages.[{index}].tool_calls[{number}]"
        function = call.get("function") if isinstance(call, dict) else None
        for field_name, value in (
            ("id", call.get("id") if isinstance(call, dict) else None),
            ("function.name", function.get("name") if isinstance(function, dict) else None),
        ):
            if not isinstance(value, str):
                return f"Missing required parameter: '{where}.{field_name}'.", (
                    f"{where}.{field_name}"
                )
        assert isinstance(call, dict) and isinstance(function, dict)
        if not isinstance(function.get("arguments"), str):
            got = type(function.get("arguments")).__name__
            message = f"Invalid type for '{where}.function.arguments': expected a string"
            return f"{message}, but got {got} instead.", f"{where}.function.arguments"
        ids.append(call["id"])
    return ids


def openai_tool_turns_error(messages: list[dict[str, Any]]) -> BadParam | None:
    """Why the API would refuse the conversation's tool turns, as message and `param`.

    Every `tool` message answers a call of the assistant message just before the run of tool
    messages it is in, and that assistant message's calls must all be answered.
    """
    called: list[str] = []  # the calls of the assistant message before this run of tool messages
    answered: set[str] = set()
    for index, message in enumerate([*messages, {"role": "end"}]):
        if message.get("role") == "tool":
            call_id = message.get("tool_call_id")
            if not isinstance(call_id, str):
                where = f"messages.[{index}].tool_call_id"
                return f"Missing required parameter: '{where}'.", where
            if not called:
                return (
                    "Invalid parameter: messages with role 'tool' must be a response to a "
                    "preceeding message with 'tool_calls'.",
                    f"messages.[{index}].role",
                )
            if call_id not in called:
                message_text = f"Invalid parameter: 'tool_call_id' of '{call_id}' not found in"
                return f"{message_text} 'tool_calls' of previous message.", (
                    f"messages.[{index}].tool_call_id"
                )
            answered.add(call_id)
            continue
        if missing := [c for c in called if c not in answered]:
            return (
                "An assistant message with 'tool_calls' must be followed by tool messages "
                "responding to each 'tool_call_id'. The following tool_call_ids did not have "
                f"response messages: {', '.join(missing)}",
                f"messages.[{index}].role",
            )
        called, answered = [], set()
        if message.get("role") == "assistant" and message.get("tool_calls") is not None:
            ids = _assistant_tool_call_ids(index, message)
            if isinstance(ids, tuple):
                return ids
            called = ids
        elif message.get("role") == "assistant" and message.get("content") is None:
            where = f"messages.[{index}].content"
            return "Invalid value for 'content': expected a string, got null.", where
    return None


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
        kind: str | None = None,
    ) -> JSONResponse:
        """An error body in OpenAI's shape: `{"error": {message, type, param, code}}`."""
        default_kind, code, default = _OPENAI_ERRORS.get(status, ("server_error", None, "Error."))
        kind = kind or default_kind
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
        if "tools" in body and (bad := openai_tools_error(body["tools"])) is not None:
            return self.error(400, bad[0], param=bad[1])
        if (bad := openai_tool_turns_error(messages)) is not None:
            return self.error(400, bad[0], param=bad[1])
        if model not in self.models:
            return self.error(
                404, f"The model `{model}` does not exist or you do not have access to it."
            )
        if body.get("tools") and not self.tools_supported:
            # What Ollama's OpenAI-compatible endpoint answers for a model without tools.
            message = f"registry.ollama.ai/library/{model} does not support tools"
            return self.error(400, message, kind="api_error")
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
        calls = self.reply_tool_calls(step, body, "call_")
        finish = step.finish_reason or ("tool_calls" if calls else "stop")
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        if isinstance(limit, int) and len(tokens) > limit:
            # The limit came before the model got to its tool calls.
            tokens, calls, finish = tokens[:limit], [], "length"
        prompt = count_prompt_tokens(body) if step.prompt_tokens is None else step.prompt_tokens
        completion = len(tokens) + sum(call.tokens for call in calls)
        if step.completion_tokens is not None:
            completion = step.completion_tokens
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
            playlist = _stream_playlist(tokens, calls, finish, common, include_usage, usage)
            message = "The server had an error while processing your request."
            error = {"message": message, "type": "server_error", "param": None, "code": None}
            events = self.play(step, playlist, sse_data({"error": error}))
            return StreamingResponse(events, media_type="text/event-stream", headers=headers)
        text = "".join(tokens)
        message = {"role": "assistant", "content": text or None if calls else text, "refusal": None}
        if calls:
            message["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
                for call in calls
            ]
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
        completion_body = {**common, "object": "chat.completion", "choices": [choice]}
        return JSONResponse({**completion_body, "usage": usage}, headers=headers)


def _stream_deltas(tokens: list[str], calls: list[ScriptedToolCall]) -> list[dict[str, Any]]:
    """The `delta`s after the first: text tokens, then each call's start and argument pieces."""
    deltas: list[dict[str, Any]] = [{"content": token} for token in tokens]
    for index, call in enumerate(calls):
        function = {"name": call.name, "arguments": ""}
        start = {"index": index, "id": call.id, "type": "function", "function": function}
        deltas.append({"tool_calls": [start]})
        deltas.extend(
            {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}
            for piece in call.pieces()
        )
    return deltas


def _stream_playlist(
    tokens: list[str],
    calls: list[ScriptedToolCall],
    finish: str,
    common: dict[str, Any],
    include_usage: bool,
    usage: dict[str, int],
) -> Playlist:
    def chunk(delta: dict[str, Any] | None, finish_reason: str | None = None) -> bytes:
        choices = []
        if delta is not None:
            choice = {"index": 0, "delta": delta, "logprobs": None}
            choices.append({**choice, "finish_reason": finish_reason})
        payload: dict[str, Any] = {**common, "object": "chat.completion.chunk", "choices": choices}
        if include_usage:
            # With include_usage every chunk carries `usage`: null, the last one the totals.
            payload["usage"] = usage if delta is None else None
        return sse_data(payload)

    # A reply that only calls tools has `content: null`, as the real API sends it.
    content = None if calls and not tokens else ""
    playlist: Playlist = [chunk({"role": "assistant", "content": content, "refusal": None})]
    sent = itertools.count()
    for delta in _stream_deltas(tokens, calls):
        playlist += [next(sent), chunk(delta)]
    playlist += [next(sent), chunk({}, finish)]
    if include_usage:
        playlist.append(chunk(None))
    playlist.append(b"data: [DONE]\n\n")
    return playlist
