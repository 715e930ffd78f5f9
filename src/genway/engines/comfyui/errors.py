"""What can go wrong when running a workflow on a ComfyUI server, as typed exceptions.

`BackendUnavailable` is the only one that says nothing about the workflow: the same job may
succeed on another backend. The others are the workflow's own outcome and should not be retried
elsewhere unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class ComfyUIError(Exception):
    """Base of every error raised by the ComfyUI client."""


class BackendUnavailable(ComfyUIError):
    """The backend could not be reached or answered 5xx, timed out, or lost the prompt."""

    def __init__(self, base_url: str, reason: str) -> None:
        self.base_url = base_url
        self.reason = reason
        super().__init__(f"ComfyUI at {base_url} is unavailable: {reason}")


class PromptLost(BackendUnavailable):
    """The backend answers but knows nothing of the prompt any more (it restarted)."""


class UnexpectedResponse(ComfyUIError):
    """A 4xx answer, or a body that is not what ComfyUI sends, for a request we made."""

    def __init__(self, base_url: str, status_code: int, body: str) -> None:
        self.base_url = base_url
        self.status_code = status_code
        self.body = body
        super().__init__(f"ComfyUI at {base_url} answered {status_code}: {body[:300]}")


class NodeErrors(ComfyUIError):
    """`POST /prompt` rejected the workflow (400); nothing was queued."""

    def __init__(self, error: Mapping[str, Any] | str, node_errors: Mapping[str, Any]) -> None:
        details: Mapping[str, Any] = (
            error if isinstance(error, Mapping) else {"type": "invalid_prompt", "message": error}
        )
        self.error_type = str(details.get("type", "invalid_prompt"))
        self.message = str(details.get("message", "Invalid prompt"))
        self.details = str(details.get("details", ""))
        extra_info = details.get("extra_info")
        self.extra_info: Mapping[str, Any] = extra_info if isinstance(extra_info, Mapping) else {}
        self.node_errors: Mapping[str, Any] = (
            node_errors if isinstance(node_errors, Mapping) else {}
        )
        super().__init__(self.summary())

    def summary(self) -> str:
        """One line per problem: the error, then each failing node's errors."""
        lines = [
            f"{self.message} ({self.error_type})" + (f": {self.details}" if self.details else "")
        ]
        for node_id, entry in self.node_errors.items():
            class_type = entry.get("class_type", "?") if isinstance(entry, Mapping) else "?"
            errors = entry.get("errors", []) if isinstance(entry, Mapping) else []
            for error in errors:
                message, details = error.get("message", ""), error.get("details", "")
                lines.append(f"node {node_id} ({class_type}): {message}: {details}")
        return "; ".join(lines)


class ExecutionFailed(ComfyUIError):
    """A node raised while the prompt ran (`execution_error`)."""

    def __init__(
        self,
        prompt_id: str,
        node_id: str,
        node_type: str,
        exception_message: str,
        exception_type: str = "",
        traceback: tuple[str, ...] = (),
    ) -> None:
        self.prompt_id = prompt_id
        self.node_id = node_id
        self.node_type = node_type
        self.exception_message = exception_message
        self.exception_type = exception_type
        self.traceback = traceback
        kind = f"{exception_type}: " if exception_type else ""
        super().__init__(f"{node_type} (node {node_id}) failed: {kind}{exception_message.strip()}")


class Interrupted(ComfyUIError):
    """The prompt was interrupted (`execution_interrupted`), by us or by anyone else."""

    def __init__(self, prompt_id: str, node_id: str = "", node_type: str = "") -> None:
        self.prompt_id = prompt_id
        self.node_id = node_id
        self.node_type = node_type
        where = f" at {node_type} (node {node_id})" if node_id else ""
        super().__init__(f"prompt {prompt_id} was interrupted{where}")
