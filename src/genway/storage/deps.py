"""Request helpers for artifacts: the blob store and URL signer from settings, reading a
multipart upload under a size limit, and answering with a stored file."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import FileResponse
from starlette.datastructures import UploadFile

from genway.auth.deps import SettingsDep
from genway.config import Settings
from genway.errors import InvalidInput, PayloadTooLarge
from genway.kit.multipart import MULTIPART_OVERHEAD, bounded_body, replayed
from genway.storage.blobs import BlobStore
from genway.storage.images import UnsupportedMediaType
from genway.storage.models import Artifact
from genway.storage.service import ArtifactNotFound, UploadedFile
from genway.storage.signing import UrlSigner

FILE_FIELDS = ("file", "image")


def blob_store_for(settings: Settings) -> BlobStore:
    return BlobStore(settings.data_dir / "blobs")


def signer_for(settings: Settings) -> UrlSigner:
    return UrlSigner(settings.resolved_secret_key, settings.signed_url_ttl_s)


async def blob_store(settings: SettingsDep) -> BlobStore:
    return blob_store_for(settings)


async def url_signer(settings: SettingsDep) -> UrlSigner:
    return signer_for(settings)


BlobStoreDep = Annotated[BlobStore, Depends(blob_store)]
SignerDep = Annotated[UrlSigner, Depends(url_signer)]


def public_base(request: Request, settings: Settings) -> str:
    """Where clients reach Genway: `GENWAY_PUBLIC_URL`, else the address of this request."""
    return (settings.public_url or str(request.base_url)).rstrip("/")


async def read_multipart(request: Request, max_bytes: int) -> tuple[UploadedFile, dict[str, str]]:
    """The file (field `file` or `image`) and the text fields of a multipart request, reading at
    most `max_bytes` of file. Raises PayloadTooLarge, UnsupportedMediaType, InvalidInput."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise UnsupportedMediaType("Send the file as multipart/form-data")
    too_big = f"The upload exceeds the {max_bytes}-byte limit"
    body = await bounded_body(request, max_bytes + MULTIPART_OVERHEAD, too_big)
    async with replayed(request, body).form(max_files=1, max_fields=20) as form:
        fields = {k: v for k, v in form.multi_items() if isinstance(v, str)}
        upload = next(
            (form[name] for name in FILE_FIELDS if isinstance(form.get(name), UploadFile)), None
        )
        if not isinstance(upload, UploadFile):
            raise InvalidInput("Send the image in a multipart field named 'file' or 'image'")
        data = await upload.read()
        filename, content_type = upload.filename or "", upload.content_type
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"The file is {len(data)} bytes; the limit is {max_bytes}")
    return UploadedFile(filename, data, content_type), fields


def file_response(store: BlobStore, artifact: Artifact) -> FileResponse:
    """The artifact's bytes with its content type, shown inline (for `<img>` and browsers)."""
    path = store.path(artifact.sha256)
    if not path.is_file():
        raise ArtifactNotFound(f"The file of artifact {artifact.id} is no longer stored")
    return FileResponse(
        path,
        media_type=artifact.content_type,
        filename=artifact.basename,
        content_disposition_type="inline",
        headers={"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )
