"""Refuse request bodies over a size limit with 413, whether declared or streamed."""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MULTIPART_PREFIX = b"multipart/"


class BodyTooLarge(HTTPException):
    """Raised from `receive`; an HTTPException so FastAPI re-raises it instead of a 400."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"Request body exceeds the {limit}-byte limit")


async def _send_413(send: Send, limit: int) -> None:
    body = json.dumps(
        {"detail": f"Request body exceeds the {limit}-byte limit", "status_code": 413}
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyLimitMiddleware:
    """JSON and form bodies over `limit` bytes get 413; multipart uploads set their own limit,
    and so do the paths in `path_limits` (GitHub's deliveries may be up to 25 MB)."""

    def __init__(self, app: ASGIApp, limit: int, path_limits: dict[str, int] | None = None) -> None:
        self.app = app
        self.default_limit = limit
        self.path_limits = path_limits or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.path_limits.get(scope.get("path", ""), self.default_limit)
        headers = dict(scope.get("headers", []))
        if headers.get(b"content-type", b"").startswith(MULTIPART_PREFIX):
            await self.app(scope, receive, send)
            return
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _send_413(send, limit)
            return
        received = 0
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not response_started:
                await _send_413(send, limit)
