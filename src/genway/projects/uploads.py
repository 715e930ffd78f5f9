"""Reading an uploaded git bundle (multipart field `bundle`) under a size limit."""

from __future__ import annotations

from fastapi import Request
from starlette.datastructures import UploadFile
from starlette.types import Message

from genway.errors import InvalidInput, PayloadTooLarge

MULTIPART_OVERHEAD = 64 * 1024


async def read_bundle_upload(request: Request, max_bytes: int) -> bytes:
    """The bytes of the `bundle` file field. Raises PayloadTooLarge, InvalidInput."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise InvalidInput("Send the bundle as multipart/form-data in a field named 'bundle'")
    limit = max_bytes + MULTIPART_OVERHEAD
    declared = request.headers.get("content-length", "")
    too_big = f"The bundle exceeds the project size limit of {max_bytes} bytes"
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(too_big)
    chunks, received = [], 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise PayloadTooLarge(too_big)
        chunks.append(chunk)
    body, sent = b"".join(chunks), False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async with Request(request.scope, replay).form(max_files=1, max_fields=5) as form:
        upload = form.get("bundle")
        if not isinstance(upload, UploadFile):
            raise InvalidInput("Send the bundle in a multipart file field named 'bundle'")
        data = await upload.read()
    if len(data) > max_bytes:
        raise PayloadTooLarge(too_big)
    return data
