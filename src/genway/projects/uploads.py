"""Reading an uploaded git bundle (multipart field `bundle`) under a size limit."""

from __future__ import annotations

from fastapi import Request
from starlette.datastructures import UploadFile

from genway.errors import InvalidInput, PayloadTooLarge
from genway.kit.multipart import MULTIPART_OVERHEAD, bounded_body, replayed


async def read_bundle_upload(request: Request, max_bytes: int) -> bytes:
    """The bytes of the `bundle` file field. Raises PayloadTooLarge, InvalidInput."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise InvalidInput("Send the bundle as multipart/form-data in a field named 'bundle'")
    too_big = f"The bundle exceeds the project size limit of {max_bytes} bytes"
    body = await bounded_body(request, max_bytes + MULTIPART_OVERHEAD, too_big)
    async with replayed(request, body).form(max_files=1, max_fields=5) as form:
        upload = form.get("bundle")
        if not isinstance(upload, UploadFile):
            raise InvalidInput("Send the bundle in a multipart file field named 'bundle'")
        data = await upload.read()
    if len(data) > max_bytes:
        raise PayloadTooLarge(too_big)
    return data
