"""Real webhook payloads from `@octokit/webhooks-examples`, for building and replaying events."""

from __future__ import annotations

import copy
import threading
from typing import Any

import orjson

from tests.fakes.github.npm_cache import webhook_examples_file

_examples: dict[str, list[dict[str, Any]]] | None = None
_lock = threading.Lock()


def _load() -> dict[str, list[dict[str, Any]]]:
    global _examples
    with _lock:
        if _examples is None:
            definitions = orjson.loads(webhook_examples_file().read_bytes())
            _examples = {entry["name"]: entry["examples"] for entry in definitions}
        return _examples


def webhook_example(event: str, action: str | None = None) -> dict[str, Any]:
    """A deep copy of the package's first example of `event` (with `action`, when given).

    Raises KeyError when the package has no such example.
    """
    examples = _load().get(event)
    if not examples:
        raise KeyError(f"no webhook example for event {event!r}")
    for example in examples:
        if action is None or example.get("action") == action:
            return copy.deepcopy(example)
    raise KeyError(f"no webhook example for event {event!r} with action {action!r}")
