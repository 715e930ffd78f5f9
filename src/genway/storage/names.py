"""File names clients send, made safe to store, show and hand to ComfyUI."""

from __future__ import annotations

import re
import unicodedata

_UNSAFE = re.compile(r"[^A-Za-z0-9._()\- ]+")
MAX_STEM = 100
MAX_SUFFIX = 10


def sanitize_filename(raw: str, default: str = "upload") -> str:
    """A base name of letters, digits, `._()- ` only: no directories, no hidden-file dot, no
    control characters, at most ~110 characters."""
    name = unicodedata.normalize("NFKC", raw).replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable())
    name = _UNSAFE.sub("_", name).strip(" .")
    stem, dot, suffix = name.rpartition(".")
    if not dot or not stem or len(suffix) > MAX_SUFFIX:
        return name[:MAX_STEM] or default
    return f"{stem[:MAX_STEM].rstrip(' .')}.{suffix}"


def sanitize_folder(raw: str | None) -> str:
    """A relative folder path of sanitized parts; `..`, `.` and empty parts are dropped."""
    parts = (raw or "").replace("\\", "/").split("/")
    clean = [sanitize_filename(part, default="") for part in parts if part not in ("", ".", "..")]
    return "/".join(part for part in clean if part)[:120]


def join_name(folder: str, filename: str) -> str:
    return f"{folder}/{filename}" if folder else filename


def with_extension(filename: str, extension: str) -> str:
    """`filename` ending in `extension` (added when the name has no image extension)."""
    if (
        filename.lower().endswith(extension)
        or (extension == ".jpg" and filename.lower().endswith(".jpeg"))
        or (extension == ".tiff" and filename.lower().endswith(".tif"))
    ):
        return filename
    return filename + extension


def numbered(filename: str, n: int) -> str:
    """ComfyUI's name for the n-th different file uploaded under one name: `photo (n).png`."""
    stem, dot, suffix = filename.rpartition(".")
    return f"{stem} ({n}).{suffix}" if dot and stem else f"{filename} ({n})"
