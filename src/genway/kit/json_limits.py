"""Bounds for free-form JSON fields (settings, metadata, agent context): size and nesting depth.

Free-form objects are stored and later fed to models and clients; an unbounded one is a cheap
way to make every later read expensive, and deep nesting a way to exhaust recursion."""

from __future__ import annotations

import json
from typing import Any


def json_depth(value: Any) -> int:
    """Nesting depth: 0 for a scalar, 1 for a flat list or object."""
    depth, frontier = 0, [value]
    while frontier:
        containers = [v for v in frontier if isinstance(v, dict | list)]
        if not containers:
            return depth
        depth += 1
        frontier = [
            child
            for container in containers
            for child in (container.values() if isinstance(container, dict) else container)
        ]
    return depth


def bounded_json(value: Any, *, max_bytes: int, max_depth: int) -> Any:
    """`value` unchanged if within bounds. Raises ValueError (a pydantic validation error)."""
    if json_depth(value) > max_depth:
        raise ValueError(f"nested deeper than {max_depth} levels")
    size = len(json.dumps(value, separators=(",", ":")))
    if size > max_bytes:
        raise ValueError(f"{size} bytes of JSON; the limit is {max_bytes}")
    return value
