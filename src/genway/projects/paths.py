"""Normalizing and validating paths of the virtual file system.

A stored path is relative, uses `/`, has no empty, `.` or `..` segment, and is in Unicode NFC, so
one file has exactly one spelling and no path can name anything outside its project (the same
rules apply whether a path arrives in a URL, a JSON body or an agent's edits). Anything
suspicious is refused rather than repaired: `a/../b` is an error, not `b`.
"""

from __future__ import annotations

import re
import unicodedata

from genway.errors import InvalidInput

MAX_PATH_LENGTH = 512
MAX_SEGMENT_LENGTH = 255
MAX_DEPTH = 32
_DRIVE = re.compile(r"^[A-Za-z]:")


class InvalidPath(InvalidInput):
    detail = "Invalid file path"


def _has_control_characters(text: str) -> bool:
    # Cc covers C0, DEL and C1; Cf adds invisible format characters (bidi overrides, zero-width
    # joiners) that make two different paths look identical in a listing.
    return any(unicodedata.category(char) in ("Cc", "Cf") for char in text)


def _check_text(raw: str, what: str) -> str:
    if "\x00" in raw:
        raise InvalidPath(f"{what} must not contain NUL bytes")
    if _has_control_characters(raw):
        raise InvalidPath(f"{what} must not contain control characters")
    if "\\" in raw:
        raise InvalidPath(f"{what} must use '/' as separator, not '\\'")
    text = unicodedata.normalize("NFC", raw)
    if len(text) > MAX_PATH_LENGTH:
        raise InvalidPath(f"{what} is longer than {MAX_PATH_LENGTH} characters")
    if text.startswith("/") or _DRIVE.match(text):
        raise InvalidPath(f"{what} must be relative to the project (no leading '/' or drive)")
    return text


def _segments(text: str, what: str) -> list[str]:
    segments = [segment for segment in text.split("/") if segment not in ("", ".")]
    for segment in segments:
        if segment == "..":
            raise InvalidPath(f"{what} must not contain '..'")
        if len(segment) > MAX_SEGMENT_LENGTH:
            raise InvalidPath(f"{what} has a name longer than {MAX_SEGMENT_LENGTH} characters")
        if segment != segment.strip():
            raise InvalidPath(f"{what} has a name with leading or trailing spaces")
    if len(segments) > MAX_DEPTH:
        raise InvalidPath(f"{what} is nested deeper than {MAX_DEPTH} directories")
    return segments


def normalize_path(raw: str) -> str:
    """The canonical form of a file path (`./src//a.py` → `src/a.py`). Raises InvalidPath."""
    text = _check_text(raw, "Path")
    if text.endswith("/"):
        raise InvalidPath("Path names a directory; a file path must not end with '/'")
    segments = _segments(text, "Path")
    if not segments:
        raise InvalidPath("Path is empty")
    return "/".join(segments)


def normalize_prefix(raw: str | None) -> str:
    """A listing filter: '' for everything, else a normalized directory or name prefix.

    `src/` matches everything under `src`; `src/ma` matches `src/main.py`. Raises InvalidPath."""
    if raw is None or raw in ("", ".", "./"):
        return ""
    text = _check_text(raw, "Prefix")
    segments = _segments(text, "Prefix")
    prefix = "/".join(segments)
    return prefix + "/" if prefix and text.endswith("/") else prefix
