"""Passwords inside URLs (`http://user:secret@host`) never leave the process: not in logs, not
in answers such as `/health`."""

from __future__ import annotations

import re
from collections.abc import MutableMapping
from typing import Any

_CREDENTIALS = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://[^/@:\s]*):[^/@\s]*@")


def redact_urls(text: str) -> str:
    """`text` with the password of every URL in it replaced by `***`."""
    return _CREDENTIALS.sub(r"\1:***@", text) if "@" in text else text


def redact_log_values(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor: `redact_urls` on every string value of a log line."""
    for key, value in event.items():
        if isinstance(value, str):
            event[key] = redact_urls(value)
    return event
