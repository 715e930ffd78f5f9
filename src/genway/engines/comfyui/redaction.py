"""Backend error messages made safe for tenants: a message that names a path or a file on the
server is replaced by a generic one (the node id and class stay), and ComfyUI's `node_errors`
lose what can list the server's files (`input_config` holds a combo's choices, i.e. the files
in a shared folder) or echo them (`received_value`, tracebacks)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

WITHHELD = "The node failed on the ComfyUI server (details withheld: they named files there)"

_ABSOLUTE = re.compile(r"(?<![\w.])(?:[A-Za-z]:)?[\\/][^\s'\"\\/]+(?:[\\/][^\s'\"\\/]*)*")
_RELATIVE_FILE = re.compile(r"[\w.()-]+(?:[\\/][\w .()-]+)+\.\w{1,12}\b")
_TRAVERSAL = re.compile(r"\.\.[\\/]")
_ANNOTATED = re.compile(r"\[(?:input|output|temp)\]")


def names_files(text: str) -> bool:
    return any(
        pattern.search(text) for pattern in (_ABSOLUTE, _RELATIVE_FILE, _TRAVERSAL, _ANNOTATED)
    )


def redact_message(text: str) -> str:
    """`text`, or the generic message when it names a path or a file on the server."""
    return WITHHELD if names_files(text) else text


def redact_node_errors(node_errors: Mapping[str, Any]) -> dict[str, Any]:
    """ComfyUI's `node_errors` with messages redacted and only `input_name` kept of
    `extra_info`."""
    redacted: dict[str, Any] = {}
    for node_id, entry in node_errors.items():
        if not isinstance(entry, Mapping):
            continue
        errors = []
        for error in entry.get("errors") or []:
            if not isinstance(error, Mapping):
                continue
            extra = error.get("extra_info")
            input_name = extra.get("input_name") if isinstance(extra, Mapping) else None
            errors.append(
                {
                    "type": str(error.get("type", "")),
                    "message": redact_message(str(error.get("message", ""))),
                    "details": redact_message(str(error.get("details", ""))),
                    "extra_info": {"input_name": input_name} if input_name else {},
                }
            )
        redacted[str(node_id)] = {
            "errors": errors,
            "dependent_outputs": [str(o) for o in entry.get("dependent_outputs") or []],
            "class_type": str(entry.get("class_type", "")),
        }
    return redacted
