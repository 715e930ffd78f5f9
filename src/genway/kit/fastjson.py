"""JSON encoding on hot paths (event rows, the event fan-out, SSE) with orjson, several times
faster than `json`; values orjson refuses (integers beyond 64 bits, which a client's workflow
may hold) fall back to `json`, so nothing a client may send fails to encode."""

from __future__ import annotations

import json
from typing import Any

import orjson

OPTIONS = orjson.OPT_NON_STR_KEYS


def dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value, option=OPTIONS)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(value, separators=(",", ":")).encode()


def dumps_text(value: Any) -> str:
    return dumps(value).decode()


loads = orjson.loads
