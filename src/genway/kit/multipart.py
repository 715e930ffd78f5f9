"""A multipart upload read whole under a size limit, then parsed.

Starlette's form parser spools files to disk as it reads and has no limit of its own, so the
body is read first, counting bytes (a `Content-Length` over the limit is refused before any),
and the form is parsed from that buffer.
"""

from __future__ import annotations

from fastapi import Request
from starlette.types import Message

from genway.errors import PayloadTooLarge

# Room for the multipart boundaries, headers and small form fields around the file itself.
MULTIPART_OVERHEAD = 64 * 1024


async def bounded_body(request: Request, limit: int, too_big: str) -> bytes:
    """The request body, at most `limit` bytes. Raises PayloadTooLarge(`too_big`)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(too_big)
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise PayloadTooLarge(too_big)
        chunks.append(chunk)
    return b"".join(chunks)


def replayed(request: Request, body: bytes) -> Request:
    """The same request, its body `body` (already read), for the form parser."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(request.scope, replay)
