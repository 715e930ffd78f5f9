"""What an uploaded file really is, decided by Pillow from its bytes (never by its name)."""

from __future__ import annotations

import io
import mimetypes
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from genway.errors import GenwayError, PayloadTooLarge

# Formats ComfyUI's LoadImage reads and browsers show.
IMAGE_TYPES = {
    "PNG": ("image/png", ".png"),
    "JPEG": ("image/jpeg", ".jpg"),
    "WEBP": ("image/webp", ".webp"),
    "GIF": ("image/gif", ".gif"),
    "BMP": ("image/bmp", ".bmp"),
    "TIFF": ("image/tiff", ".tiff"),
}
_ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg", "image/x-png": "image/png"}
_UNTYPED = {"", "application/octet-stream", "binary/octet-stream"}


class UnsupportedMediaType(GenwayError):
    status_code = 415
    detail = "Unsupported media type"


@dataclass(frozen=True)
class ImageInfo:
    format: str
    content_type: str
    extension: str
    width: int
    height: int


def _normalize(content_type: str | None) -> str:
    base = (content_type or "").split(";", 1)[0].strip().lower()
    return _ALIASES.get(base, base)


def inspect_image(data: bytes, filename: str, declared_type: str | None) -> ImageInfo:
    """The image's real type; raises UnsupportedMediaType (not an image, or a type other than
    the one its name or Content-Type claims) or PayloadTooLarge (too many pixels)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                fmt, (width, height) = str(image.format), image.size
                image.verify()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise PayloadTooLarge(f"The image has too many pixels: {exc}") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise UnsupportedMediaType("The file is not an image Genway accepts") from exc
    if fmt not in IMAGE_TYPES:
        accepted = ", ".join(sorted(IMAGE_TYPES))
        raise UnsupportedMediaType(f"{fmt} images are not accepted; send one of {accepted}")
    content_type, extension = IMAGE_TYPES[fmt]
    declared = _normalize(declared_type)
    if declared not in _UNTYPED and declared != content_type:
        raise UnsupportedMediaType(f"The file was sent as {declared} but is a {fmt} image")
    by_name = _normalize(mimetypes.guess_type(filename)[0])
    if by_name and by_name != content_type:
        raise UnsupportedMediaType(f"'{filename}' is named like {by_name} but is a {fmt} image")
    return ImageInfo(fmt, content_type, extension, width, height)
